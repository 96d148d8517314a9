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
    checks = {c["check"]: c["detail"] for c in verdict["checks"]}
    assert set(checks) == {
        "bot exited 0 after SIGTERM", "no error-level log records", "no quote_error",
        "WS disconnects within injected drops", "WS reconnects bounded",
        "book never stale beyond the limit", "nothing of ours left resting",
        "metrics were served"}
    # drops were injected and the bot saw them: the check compared real numbers
    assert not checks["WS disconnects within injected drops"].startswith("0 market-stream")
    assert checks["book never stale beyond the limit"].startswith("largest book age ")


def test_ports_can_be_chosen():
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True,
                            text=True, timeout=30)
    assert "--port PORT" in result.stdout and "--metrics-port METRICS_PORT" in result.stdout
