from mmkit.cli import main

main()
