"""The `mmkit` command group: global options, lazy sub-command loading, error → exit code.

Each sub-command lives in its own module and is imported only when it runs, so a pipe stage
starts fast. Modules here stay thin: parse options, build objects from the core, loop, print.
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass

import click

from mmkit.errors import EXIT_INTERRUPTED, EXIT_RUNTIME, EXIT_USAGE, MmkitError

# name → (module, attribute, one-line summary shown by `mmkit --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "config": ("mmkit.cli.config_cmd", "config", "Check or show the effective configuration."),
    "time": ("mmkit.cli.account", "time_cmd", "Venue time and the local clock offset."),
    "balance": ("mmkit.cli.account", "balance", "Balances per asset."),
    "position": ("mmkit.cli.account", "position", "Open positions (all symbols with --all)."),
    "account": ("mmkit.cli.account", "account", "Account totals and leverage brackets."),
    "symbol": ("mmkit.cli.account", "symbol", "A symbol's trading constraints."),
    "exchange": ("mmkit.cli.exchange", "exchange", "The local Binance-compatible venue."),
    "quote": ("mmkit.cli.quote", "quote", "Book lines in, quote lines (the orders the strategy "
              "wants) out."),
    "send": ("mmkit.cli.send", "send", "Keep the venue's orders equal to the latest quote "
             "(--dry-run to only print)."),
    "backtest": ("mmkit.cli.backtest_cmd", "backtest", "The bot against the simulator's "
                 "engine in virtual time; --grid sweeps parameters."),
    "pnl-report": ("mmkit.cli.pnl_report", "pnl_report", "Did it make money after fees, and "
                   "why: SQL over the journal."),
    "journal": ("mmkit.cli.journal_cmd", "journal", "What the journal holds; compact it to "
                "Parquet."),
    "run": ("mmkit.cli.run_cmd", "run_cmd", "The whole bot in one process (paper trading on an "
            "embedded simulator by default)."),
    "depth": ("mmkit.cli.market_data", "depth", "The local order book as book lines (live or "
              "--replay)."),
    "userstream": ("mmkit.cli.userstream_cmd", "userstream", "Order, fill, position and "
                   "balance lines from the user data stream."),
    "trades": ("mmkit.cli.market_data", "trades", "Public trades as trade lines (live or "
               "--replay)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        try:
            return _with_global_options(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):
            return _unavailable(name, COMMANDS[name][2])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


# The group's options, also taken after the sub-command (`mmkit run --venue testnet`,
# `mmkit backtest --config c.yaml`): the later place wins, as the nearer one.
GLOBAL_OPTIONS = (
    ("config_path", ("--config",), {"metavar": "FILE"}),
    ("venue", ("--venue",), {"type": click.Choice(["live", "testnet", "sim"])}),
    ("base_url", ("--base-url",), {"metavar": "URL"}),
    ("ws_url", ("--ws-url",), {"metavar": "URL"}),
)


def _with_global_options(command: click.Command) -> click.Command:
    """Add the group's options to a sub-command and to its own sub-commands, once."""
    if getattr(command, "_global_options", False):
        return command
    command._global_options = True
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_global_options(sub)
    taken = {opt for param in command.params for opt in param.opts}
    for field, opts, extra in GLOBAL_OPTIONS:
        if not taken.intersection(opts):
            command.params.append(click.Option(
                opts, expose_value=False, callback=_set_global(field), hidden=True,
                is_eager=True, **extra))
    if "-v" not in taken:
        command.params.append(click.Option(("-v", "--verbose"), count=True, hidden=True,
                                           expose_value=False, is_eager=True,
                                           callback=_set_global("verbose")))
    return command


def _set_global(field: str):
    def callback(ctx: click.Context, _param: click.Parameter, value):
        if value:  # given here: overrides what the group had
            options = ctx.find_root().obj
            setattr(options, field, options.verbose + value if field == "verbose" else value)
        return value

    return callback


def _unavailable(name: str, summary: str) -> click.Command:
    @click.command(name, help=summary + " (not available in this build)",
                   context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def stub(args: tuple[str, ...]) -> None:
        raise click.UsageError(f"'{name}' is not available in this build of mmkit")

    return stub


@dataclass
class GlobalOptions:
    config_path: str | None
    venue: str | None
    base_url: str | None
    ws_url: str | None
    verbose: int


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="FILE", envvar="MMKIT_CONFIG",
              help="YAML config (default: configs/config.yaml when present).")
@click.option("--venue", type=click.Choice(["live", "testnet", "sim"]), default=None,
              help="Which venue's URLs to use (default from config; sim = local simulator).")
@click.option("--base-url", metavar="URL", help="REST base URL, overriding --venue.")
@click.option("--ws-url", metavar="URL", help="WebSocket base URL, overriding --venue.")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.version_option(package_name="mmkit")
@click.pass_context
def cli(ctx: click.Context, config_path, venue, base_url, ws_url, verbose) -> None:
    """mmkit: market making on Binance USDⓈ-M futures, with a local venue to practise on.

    \b
    Examples:
      mmkit exchange serve                   # a local Binance-compatible venue
      mmkit --venue sim balance --table      # ask it what the account holds
      mmkit --venue sim symbol ETHUSDC       # tick, step and filters of a symbol

    Data goes to stdout as JSON lines (--table for humans); logs go to stderr. The options
    above also work after the command (mmkit run --venue testnet).
    Exit codes: 0 ok, 1 runtime failure, 2 usage or config error, 3 exchange rejected,
    4 network.
    """
    from mmkit.ops import logs

    logs.setup("text", logging.WARNING - 10 * min(verbose, 2))
    ctx.obj = GlobalOptions(config_path, venue, base_url, ws_url, verbose)


def main() -> None:
    """Entry point: run the group and turn every expected error into one line and an exit code."""
    try:
        sys.exit(cli.main(standalone_mode=False) or 0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # click's word for Ctrl-C
            sys.exit(EXIT_INTERRUPTED)
        click.echo("Aborted.", err=True)
        sys.exit(EXIT_RUNTIME)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code)
    except MmkitError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
