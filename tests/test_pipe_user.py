"""`depth --user`: the account's position and fill lines merged into the book stream, so
`quote` in `depth --user | quote | send` quotes on the real inventory (skew, take-profit,
maxInventory), and `send`, which has its own user stream, writes each fill once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal

import orjson

from mmkit.lines import check_line
from tests.simkit import SignedHttp, serve


def env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}


def read_until(proc, wanted, seen: list, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = proc.stdout.readline()
        assert raw, "the pipe ended"
        seen.append(orjson.loads(raw))
        if wanted(seen[-1]):
            return seen[-1]
    raise AssertionError(f"not seen in {timeout} s")


def moving_venue():
    """A synthetic market, so books (and quotes) keep coming."""
    from mmkit.sim.instruments import default_specs
    from mmkit.sim.market import SyntheticMarket
    from mmkit.sim.venue import Venue

    specs = default_specs(["ETHUSDC"])
    return Venue(specs, iter(SyntheticMarket(specs["ETHUSDC"], seed=3)))


def quoting(position: str):
    return lambda x: x["type"] == "quote" and x["reasons"].get("position") == position \
        and not x["paused"]


def test_quote_skews_on_the_position_depth_user_brings(tmp_path):
    with serve(moving_venue()) as sim:
        http = SignedHttp(sim.base_url)

        def buy(qty: str) -> None:
            http.signed("POST", "/fapi/v1/order", symbol="ETHUSDC", side="BUY", type="MARKET",
                        quantity=qty)

        buy("0.030")  # before depth starts: only the snapshot can tell
        venue = ["--venue", "sim", "--base-url", sim.base_url, "--ws-url", sim.ws_url]
        depth = subprocess.Popen([sys.executable, "-m", "mmkit", *venue, "depth", "ETHUSDC",
                                  "--user", "--levels", "5"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=env(), cwd=tmp_path)
        quote = subprocess.Popen([sys.executable, "-m", "mmkit", "quote", "--set",
                                  "strategy.model=fixed", "--set", "strategy.staticFraction=0"],
                                 stdin=depth.stdout, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=env(), cwd=tmp_path)
        depth.stdout.close()
        seen: list[dict] = []
        try:
            deadline = time.monotonic() + 20  # until depth's user stream is connected
            while not any(sub.listen_keys for sub in sim.venue.subscribers):
                assert time.monotonic() < deadline and depth.poll() is None
                time.sleep(0.05)
            skewed = read_until(quote, quoting("0.030"), seen)
            buy("0.020")  # a fill and a position from the user stream
            full = read_until(quote, quoting("0.050"), seen)
        finally:
            for proc in (depth, quote):
                proc.send_signal(signal.SIGTERM)
            for proc in (depth, quote):
                proc.wait(timeout=30)
    assert depth.returncode == 0, depth.stderr.read()
    assert seen[0]["type"] == "position" and seen[0]["reason"] == "SNAPSHOT"
    assert seen[0]["qty"] == "0.030" and seen[0]["entryPrice"] != "0"
    levels = {lv["tag"]: lv for lv in skewed["levels"]}
    assert levels["tp"]["side"] == "SELL" and levels["tp"]["reduceOnly"]  # take-profit
    assert levels["b0"]["qty"] < levels["a0"]["qty"]  # sizes skewed against the long
    # the fills and positions from the user stream, merged in
    fills = [x for x in seen if x["type"] == "fill"]
    assert sum(Decimal(x["qty"]) for x in fills) == Decimal("0.020")
    assert [x["qty"] for x in seen if x["type"] == "position"][-1] == "0.050"
    assert not [lv for lv in full["levels"] if lv["side"] == "BUY"]  # maxInventory 0.05
    assert all(check_line(x) == [] for x in seen)
