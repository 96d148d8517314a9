"""The backtester and `run` are the same bot: over the real ETHUSDT recording, with zero latency
and the same seed, `mmkit backtest` makes exactly the fills that `mmkit run --lockstep` makes
against `mmkit exchange serve --step --market replay` of the same file."""

from __future__ import annotations

import subprocess
import sys

import orjson

from tests.test_exchange_cli import ETH_0808, serving

FILL_FIELDS = ("ts", "side", "price", "qty", "maker", "commission", "realizedPnl")


def mmkit(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmkit", *args], capture_output=True,
                          cwd=cwd, timeout=600)


def lines(stdout: bytes) -> list[dict]:
    return [orjson.loads(x) for x in stdout.splitlines() if x.startswith(b"{")]


def fills(rows: list[dict]) -> list[tuple]:
    return [tuple(row[f] for f in FILL_FIELDS) for row in rows if row["type"] == "fill"]


def test_backtest_makes_the_fills_run_makes_against_the_replayed_venue(shared_data, tmp_path):
    recording = str(shared_data / ETH_0808)
    backtest = mmkit("backtest", "--data", recording, "--latency", "0", "--market-latency",
                     "0", "--seed", "7", "--lines", cwd=tmp_path)
    assert backtest.returncode == 0, backtest.stderr.decode()
    expected = lines(backtest.stdout)

    with serving(tmp_path, "--step", "--seed", "7", "--market", "replay", recording) as (
            http, _):
        base = str(http.base_url).rstrip("/")
        run = mmkit("--venue", "sim", "--base-url", base, "--ws-url",
                    base.replace("http", "ws"), "run", "--symbol", "ETHUSDT", "--lockstep",
                    "--lines", "--metrics", "off", cwd=tmp_path)
        assert run.returncode == 0, run.stderr.decode()[-2000:]
        venue_fills = http.get("/_sim/fills").json()
        resting = http.get("/_sim/state").json()

    got = lines(run.stdout)
    assert len(fills(expected)) >= 10  # enough to mean something
    assert fills(got) == fills(expected)
    assert len(venue_fills) == len(fills(got))
    summary = next(row for row in expected if row["type"] == "backtest")
    run_summary = next(row for row in got if row["type"] == "summary")
    assert run_summary["orders"] == summary["orders"]
    assert run_summary["quotes"] == summary["quotes"]
    assert resting["openOrders"] == []  # run stopped at the recording's end, cancelled all


def test_lockstep_refuses_a_venue_that_is_not_stepped(tmp_path):
    with serving(tmp_path) as (http, _):
        base = str(http.base_url).rstrip("/")
        run = mmkit("--venue", "sim", "--base-url", base, "--ws-url",
                    base.replace("http", "ws"), "run", "--lockstep", "--lines", "--metrics",
                    "off", cwd=tmp_path)
    assert run.returncode == 2
    err = run.stderr.decode()
    assert "--lockstep needs `mmkit exchange serve --step`" in err
    assert "Traceback" not in err
