"""The product end to end against the simulator: the three-process pipe
`depth | quote | send` and the one-process `run`, each trading a sped-up synthetic market
until SIGTERM; then nothing of ours rests, and our fill lines are exactly the venue's fills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import orjson
import pytest

from mmkit.lines import check_line
from mmkit.sim.engine import EngineConfig
from mmkit.sim.instruments import default_specs
from mmkit.sim.market import SyntheticMarket
from mmkit.sim.server import ServerThread
from mmkit.sim.venue import Venue, VenueClock
from tests.simkit import SignedHttp, finish

TIGHT = ("strategy.model=fixed", "strategy.spreadTicks=2", "strategy.staticFraction=0",
         "strategy.refreshInterval=200")


def fast_venue(seed: int = 11, speed: float = 10.0) -> Venue:
    specs = default_specs(["ETHUSDC"])
    clock = VenueClock(speed=speed)
    market = iter(SyntheticMarket(specs["ETHUSDC"], seed=seed, start_ms=clock.now()))
    return Venue(specs, market, config=EngineConfig(seed=seed), clock=clock, seed=seed)


def env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}


def venue_args(sim) -> list[str]:
    return ["--venue", "sim", "--base-url", sim.base_url, "--ws-url", sim.ws_url]


def stop(procs, timeout: float = 30) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=timeout)


def kill_while_quoting(proc, http, timeout: float = 30) -> None:
    """SIGKILL a run at a moment its orders rest on the venue. It is stopped (SIGSTOP) to look,
    so it cannot cancel meanwhile; a run may have pulled its quotes for a moment (a shock
    pause, a fill being replaced), so it goes on until it has some."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, "the run ended"
        proc.send_signal(signal.SIGSTOP)
        if http.signed("GET", "/fapi/v1/openOrders", symbol="ETHUSDC").json():
            proc.kill()
            return
        proc.send_signal(signal.SIGCONT)
        assert time.monotonic() < deadline, f"no order rested in {timeout} s"
        time.sleep(0.1)


def after_the_run(sim, out_lines: list[dict]) -> None:
    """Nothing of ours rests, and the fill lines are exactly the venue's fills."""
    from mmkit.sim.venue import Faults

    sim.venue.faults = Faults()  # the checks below must not meet the injected errors
    http = SignedHttp(sim.base_url)
    assert http.signed("GET", "/fapi/v1/openOrders", symbol="ETHUSDC").json() == []
    truth = httpx.get(f"{sim.base_url}/_sim/fills").json()
    seen = [line["tradeId"] for line in out_lines if line["type"] == "fill"]
    assert sorted(seen) == sorted(f["tradeId"] for f in truth)
    assert len(seen) == len(set(seen))


def test_depth_quote_send_pipeline_trades_and_cleans_up(tmp_path):
    """The documented pipe, `depth --user` bringing the position and fills to `quote`; send
    writes each fill once (its own stream's) and passes the position lines on."""
    with ServerThread(fast_venue(), "127.0.0.1", 0) as sim:
        out = tmp_path / "send.jsonl"
        settings = [a for s in TIGHT for a in ("--set", s)]
        with open(out, "wb") as sink:
            depth = subprocess.Popen([sys.executable, "-m", "mmkit", *venue_args(sim), "depth",
                                      "ETHUSDC", "--levels", "5", "--user"],
                                     stdout=subprocess.PIPE, env=env())
            quote = subprocess.Popen([sys.executable, "-m", "mmkit", "quote", *settings],
                                     stdin=depth.stdout, stdout=subprocess.PIPE, env=env())
            send = subprocess.Popen([sys.executable, "-m", "mmkit", *venue_args(sim), "send"],
                                    stdin=quote.stdout, stdout=sink, stderr=subprocess.PIPE,
                                    env=env(), cwd=tmp_path)
            depth.stdout.close()
            quote.stdout.close()
            try:
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline and b'"fill"' not in out.read_bytes():
                    time.sleep(0.5)
            finally:
                stop([depth])  # end of input: send cancels what rests and exits
                stop([quote, send])
        assert send.returncode == 0, send.stderr.read()
        lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        kinds = {line["type"] for line in lines}
        assert {"order_new", "order_ack", "fill", "position"} <= kinds
        assert lines[0]["type"] == "position" and lines[0]["reason"] == "SNAPSHOT"
        after_the_run(sim, lines)  # among others: no fill twice


@pytest.mark.parametrize("faults", [None, {"error_rate": 0.05, "delay_ms": 5}])
def test_run_trades_until_sigterm_then_leaves_nothing(tmp_path, faults):
    from mmkit.sim.venue import Faults

    venue = fast_venue(seed=13)
    if faults:
        venue.faults = Faults.from_mapping(faults)
    config = tmp_path / "config.yaml"
    config.write_text("symbols:\n  ETHUSDC:\n    strategy:\n" + "".join(
        f"      {key.split('.')[1]}: {value}\n" for key, value in
        (s.split("=") for s in TIGHT)))
    with ServerThread(venue, "127.0.0.1", 0) as sim:
        proc = subprocess.Popen([sys.executable, "-m", "mmkit", "--config", str(config),
                                 *venue_args(sim), "run", "--lines", "--metrics", "off"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(),
                                cwd=tmp_path)
        lines = []
        try:
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                raw = proc.stdout.readline()
                if not raw:
                    break
                lines.append(orjson.loads(raw))
                if lines[-1]["type"] == "fill":
                    break
        finally:
            rest, stderr = finish(proc)
        assert proc.returncode == 0, stderr
        lines += [orjson.loads(line) for line in rest.splitlines()]
        assert any(line["type"] == "fill" for line in lines)
        summaries = [line for line in lines if line["type"] == "summary"]
        assert len(summaries) == 1, stderr
        (summary,) = summaries
        assert summary["fills"] == sum(line["type"] == "fill" for line in lines)
        assert all(check_line(line) == [] for line in lines)
        after_the_run(sim, lines)


def test_lost_order_responses_are_settled_without_a_second_order(tmp_path):
    """The venue accepts orders but loses a third of the responses (503 -1007): send queries
    each by its client order id and never places a second order for the slot meanwhile."""
    from mmkit.sim.venue import Faults

    venue = fast_venue(seed=17)
    venue.faults = Faults(lose_order_response_rate=0.3)
    slots = 2  # b0 and a0: static orders are off in TIGHT
    with ServerThread(venue, "127.0.0.1", 0) as sim:
        out = tmp_path / "send.jsonl"
        settings = [a for s in TIGHT for a in ("--set", s)]
        http = SignedHttp(sim.base_url)
        most_resting = 0
        with open(out, "wb") as sink:
            depth = subprocess.Popen([sys.executable, "-m", "mmkit", *venue_args(sim), "depth",
                                      "ETHUSDC", "--levels", "5"], stdout=subprocess.PIPE,
                                     env=env())
            quote = subprocess.Popen([sys.executable, "-m", "mmkit", "quote", *settings],
                                     stdin=depth.stdout, stdout=subprocess.PIPE, env=env())
            send = subprocess.Popen([sys.executable, "-m", "mmkit", *venue_args(sim), "send"],
                                    stdin=quote.stdout, stdout=sink, stderr=subprocess.PIPE,
                                    env=env(), cwd=tmp_path)
            depth.stdout.close()
            quote.stdout.close()
            try:
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline:
                    resting = http.signed("GET", "/fapi/v1/openOrders", symbol="ETHUSDC").json()
                    most_resting = max(most_resting, len(resting))
                    text = out.read_bytes()
                    if text.count(b'"settled":true') >= 2 and b'"fill"' in text:
                        break
                    time.sleep(0.1)
            finally:
                stop([depth])
                stop([quote, send])
        assert send.returncode == 0, send.stderr.read()
        lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        unknown = [line for line in lines if line["type"] == "order_reject" and line["unknown"]]
        settled = [line for line in lines if line["type"] == "order_ack" and line["settled"]]
        assert unknown and settled
        assert most_resting <= slots
        after_the_run(sim, lines)


def test_sigkill_then_restart_resumes_without_duplicate_orders(tmp_path):
    """Killed with SIGKILL, the bot leaves its orders resting (until the venue's countdown
    fires); restarted, it cancels them before quoting, adopts the venue's position, and never
    has more orders resting than ladder slots."""
    config = tmp_path / "config.yaml"
    config.write_text("symbols:\n  ETHUSDC:\n    strategy:\n" + "".join(
        f"      {key.split('.')[1]}: {value}\n" for key, value in
        (s.split("=") for s in TIGHT)))
    slots = 3  # b0, a0 and, with a position, the take-profit tp
    with ServerThread(fast_venue(seed=23, speed=2.0), "127.0.0.1", 0) as sim:
        http = SignedHttp(sim.base_url)
        args = [sys.executable, "-m", "mmkit", "--config", str(config), *venue_args(sim),
                "run", "--lines", "--metrics", "off"]
        first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env=env(), cwd=tmp_path)
        try:
            kill_while_quoting(first, http)
        finally:
            first.kill()
            first.wait()
        left = http.signed("GET", "/fapi/v1/openOrders", symbol="ETHUSDC").json()
        assert left, "a killed run leaves its orders to the dead-man's switch"
        second = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=env(), cwd=tmp_path)
        old = {o["clientOrderId"] for o in left}
        most, mixed = 0, False
        try:
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                resting = http.signed("GET", "/fapi/v1/openOrders", symbol="ETHUSDC").json()
                ids = {o["clientOrderId"] for o in resting}
                most = max(most, len(resting))
                mixed |= bool(ids & old) and bool(ids - old)
                if ids and not ids & old:
                    break  # the new run quotes, the old orders are gone
                time.sleep(0.05)
        finally:
            second.send_signal(signal.SIGTERM)
            out, stderr = second.communicate(timeout=30)
        assert second.returncode == 0, stderr
        assert most <= slots and not mixed  # old orders went before new ones came
        assert b"run_start" in stderr
        assert http.signed("GET", "/fapi/v1/openOrders", symbol="ETHUSDC").json() == []
        # the restarted run adopted the venue's position and followed it to the end
        (summary,) = [orjson.loads(x) for x in out.splitlines() if b'"summary"' in x]
        final = http.signed("GET", "/fapi/v2/positionRisk", symbol="ETHUSDC").json()[0]
        assert summary["position"] == final["positionAmt"]
        # no lost fill: the journal (deduplicated by trade id) holds every fill of the venue,
        # including those made while the bot was down
        journaled = {orjson.loads(x)["tradeId"] for part in (tmp_path / "journal").rglob(
            "fills/**/*.jsonl") for x in part.read_bytes().splitlines()}
        truth = {f["tradeId"] for f in httpx.get(f"{sim.base_url}/_sim/fills").json()}
        assert journaled == truth
