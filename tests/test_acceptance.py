"""The dry-run acceptance script passes on a short accelerated run with faults injected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "acceptance.py"


def test_acceptance_passes_on_a_short_faulty_run():
    result = subprocess.run([sys.executable, str(SCRIPT), "--minutes", "2", "--speed", "20",
                             "--drop-every", "2", "--error-rate", "0.05", "--json"],
                            capture_output=True, timeout=120)
    verdict = orjson.loads(result.stdout.splitlines()[-1])
    assert result.returncode == 0, verdict
    assert verdict["pass"] and verdict["quotes"] > 0
    reconnects = next(c for c in verdict["checks"] if c["check"].startswith("WS reconnects"))
    assert not reconnects["detail"].startswith("0 reconnects")  # drops were injected and seen
