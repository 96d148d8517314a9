"""The embedded simulator and the backtester trade the same synthetic market: `mmkit run
--lockstep` makes the backtest's fills. (Its own file so that the test runs beside the replayed
equivalence, the suite's longest, on another worker.)"""

from __future__ import annotations

from tests.test_equivalence import fills, lines, mmkit


def test_embedded_lockstep_run_is_the_synthetic_backtest(tmp_path):
    """`mmkit run --lockstep` on its embedded simulator trades the backtester's synthetic
    market: the same orders, quotes and fills as `mmkit backtest` with zero latency."""
    run = mmkit("run", "--lockstep", "--duration", "3m", "--lines", "--metrics", "off",
                cwd=tmp_path)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    backtest = mmkit("backtest", "--duration", "3m", "--latency", "0", "--market-latency", "0",
                     "--lines", cwd=tmp_path)
    assert backtest.returncode == 0, backtest.stderr.decode()
    got, expected = lines(run.stdout), lines(backtest.stdout)
    assert fills(got) == fills(expected) != []
    run_summary = next(row for row in got if row["type"] == "summary")
    summary = next(row for row in expected if row["type"] == "backtest")
    assert (run_summary["orders"], run_summary["quotes"]) == (summary["orders"],
                                                              summary["quotes"])
