"""Shutdown never hangs on a swallowed cancellation (Python 3.11's wait_for, gh-86296), and the
README's quick look, `mmkit run --duration … --speed …`, ends by itself on either event loop."""

from __future__ import annotations

import asyncio
import gzip
import importlib.util
import os
import subprocess
import sys

import orjson
import pytest

from mmkit.tasks import cancel_and_wait


def test_cancel_and_wait_outlasts_a_swallowed_cancellation():
    async def stubborn(log: list[str]) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            log.append("swallowed")  # what a racing wait_for does to a cancellation
        await asyncio.sleep(30)

    async def main() -> list[str]:
        log: list[str] = []
        task = asyncio.create_task(stubborn(log))
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_and_wait(task, recancel_s=0.05), 5)
        assert task.cancelled()
        return log

    assert asyncio.run(main()) == ["swallowed"]


def test_cancel_and_wait_keeps_quiet_about_failures():
    async def failing() -> None:
        raise ValueError("already failed")

    async def main() -> None:
        task = asyncio.create_task(failing())
        await asyncio.sleep(0)
        await cancel_and_wait(task)

    asyncio.run(main())


LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(
    importlib.util.find_spec("uvloop") is None, reason="uvloop not installed (mmkit[fast])"))]


@pytest.mark.parametrize("loop", LOOPS)
def test_embedded_run_ends_after_its_duration(tmp_path, loop):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
    env["MMKIT_LOOP"] = loop
    result = subprocess.run([sys.executable, "-m", "mmkit", "run", "--duration", "90s",
                             "--speed", "10", "--lines", "--metrics", "off",
                             "--set", "strategy.spreadTicks=2"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    summary = lines[-1]
    assert summary["type"] == "summary"
    assert 90 <= summary["venueSeconds"] < 600, summary  # ended, not hung
    assert summary["quotes"] > 0 and summary["orders"] > 0
    assert "mmkit pnl-report" in result.stderr
    # the timers keep venue time at 10x: the dead-man's switch is renewed before it fires
    # (else the venue cancels our orders and modifying them fails with -2013; the other ways
    # are a modify racing a fill, or racing the venue's expiry of a reduce-only take-profit
    # when the position closes), and the journal's marks come every venue second
    gone = {x["clientOrderId"] for x in lines if x["type"] == "fill"
            or (x["type"] == "order_new" and x["reduceOnly"])}
    assert not [x for x in lines if x["type"] == "order_reject" and x["code"] == -2013
                and x["clientOrderId"] not in gone]
    marks = [orjson.loads(line) for path in sorted((tmp_path / "journal").rglob("*.jsonl*"))
             for line in _read(path) if b'"mark"' in line]
    gaps = sorted(b["ts"] - a["ts"] for a, b in zip(marks, marks[1:], strict=False))
    assert len(marks) > 60 and gaps[len(gaps) // 2] < 2000, gaps[:5]


def _read(path) -> list[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        return f.read().splitlines()


def test_a_run_against_a_sped_up_served_venue_takes_its_speed(tmp_path):
    """`mmkit exchange serve --speed 10`: the run reads the speed from /_sim/published, so its
    duration, heartbeat and marks are venue time there too."""
    from mmkit.sim.server import ServerThread
    from tests.test_pipeline import fast_venue, venue_args

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
    with ServerThread(fast_venue(seed=5, speed=10.0), "127.0.0.1", 0) as sim:
        result = subprocess.run([sys.executable, "-m", "mmkit", *venue_args(sim), "run",
                                 "--duration", "60s", "--lines", "--metrics", "off"],
                                capture_output=True, text=True, env=env, cwd=tmp_path,
                                timeout=120)
    assert result.returncode == 0, result.stderr
    summary = [orjson.loads(line) for line in result.stdout.splitlines()][-1]
    assert 60 <= summary["venueSeconds"] < 300, summary  # 6 s of wall time, not 60
    marks = [orjson.loads(line) for path in sorted((tmp_path / "journal").rglob("*.jsonl*"))
             for line in _read(path) if b'"mark"' in line]
    gaps = sorted(b["ts"] - a["ts"] for a, b in zip(marks, marks[1:], strict=False))
    assert len(marks) > 30 and gaps[len(gaps) // 2] < 2000, gaps[:5]
