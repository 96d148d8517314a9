"""`send`'s wall-clock watchdog: decisions run on the data's clock, which stops when the data
stops, so a live `send` whose books stop coming cancels everything after the risk's
maxBookAgeMs and places nothing until a fresh book arrives; a dry run over a replay keeps
the replay's clock."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time

import orjson

from mmkit.lines import check_line
from tests.simkit import SignedHttp, serve

BOOK = {"type": "book", "symbol": "ETHUSDC", "updateId": 7, "stale": False,
        "bids": [["3000.00", "1.000"]], "asks": [["3000.01", "1.000"]], "bestBid": "3000.00",
        "bestAsk": "3000.01", "mid": "3000.005", "microprice": "3000.005", "spreadTicks": 1,
        "imbalance": 0.0}


def book(ts: int) -> bytes:
    return orjson.dumps({**BOOK, "ts": ts, "recvTs": ts}) + b"\n"


def quote(ts: int, price: str = "2999.90") -> bytes:
    return orjson.dumps({"type": "quote", "symbol": "ETHUSDC", "ts": ts, "levels": [
        {"tag": "b0", "side": "BUY", "price": price, "qty": "0.010", "timeInForce": "GTX",
         "reduceOnly": False}], "reasons": {}, "paused": None}) + b"\n"


class Stage:
    """`mmkit send` with a stdin we hold open, and its stdout lines as they come."""

    def __init__(self, *args: str, cwd):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
        self.proc = subprocess.Popen([sys.executable, "-m", "mmkit", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=cwd)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self.lines.put(orjson.loads(raw))
        self.lines.put(None)

    def write(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def until(self, wanted, timeout: float = 20) -> list[dict]:
        """The lines up to and including the first for which `wanted(line)` holds."""
        got, deadline = [], time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"send ended before: {self.proc.stderr.read()!r}"
            got.append(line)
            self.seen.append(line)
            if wanted(line):
                return got

    def finish(self) -> list[dict]:
        self.proc.stdin.close()
        stderr = self.proc.stderr.read()
        assert self.proc.wait(timeout=30) == 0, stderr
        rest = []
        while (line := self.lines.get(timeout=10)) is not None:
            rest.append(line)
        self.seen += rest
        return rest


def resting(http: SignedHttp, until_none: bool = False) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        orders = http.signed("GET", "/fapi/v1/openOrders", symbol="ETHUSDC").json()
        if not orders or not until_none or time.monotonic() > deadline:
            return orders
        time.sleep(0.05)


def kind(name: str, **fields):
    return lambda line: line["type"] == name and all(line.get(k) == v for k, v in fields.items())


def first_order(send: Stage, price: str = "2999.90") -> int:
    """A fresh book and quote every 0.2 s until send has placed one (it decides on the wall
    clock: a book written while it was still starting up may already be too old); the last
    book's time."""
    deadline = time.monotonic() + 20
    while True:
        now = int(time.time() * 1000)
        send.write(book(now) + quote(now, price))
        try:
            send.until(kind("order_ack"), timeout=0.2)
            return now
        except queue.Empty:
            if time.monotonic() > deadline:
                raise


def test_books_that_stop_coming_cancel_everything_until_fresh_ones_arrive(tmp_path):
    with serve() as sim:
        http = SignedHttp(sim.base_url)
        send = Stage("--venue", "sim", "--base-url", sim.base_url, "--ws-url", sim.ws_url,
                     "send", "--set", "risk.maxBookAgeMs=400", cwd=tmp_path)
        now = first_order(send)
        assert len(resting(http)) == 1
        # stdin stays open, nothing more comes: the watchdog fires on the wall clock
        got = send.until(kind("order_cancel", reason="data latency"))
        (risk,) = [x for x in got if x["type"] == "risk"]
        assert (risk["guard"], risk["action"]) == ("data_latency", "cancel_all")
        assert "ms ago (max 400)" in risk["detail"]
        assert resting(http, until_none=True) == []  # the cancel follows its line
        # a quote without a fresh book places nothing; a fresh book and quote place again
        send.write(quote(now + 1, "2999.80"))
        later = int(time.time() * 1000)
        send.write(book(later) + quote(later, "2999.70"))
        got = send.until(kind("order_ack"))
        (new,) = [x for x in got if x["type"] == "order_new"]
        assert (new["price"], new["bookRecvTs"]) == ("2999.70", later)
        send.finish()
        assert resting(http) == []
    assert all(check_line(line) == [] for line in send.seen)


def test_a_dry_run_over_a_replay_keeps_the_replays_clock(tmp_path):
    """Recorded books (receive times long past) with a pause longer than maxBookAgeMs
    between them: the watchdog stays out of it."""
    with serve() as sim:
        send = Stage("--venue", "sim", "--base-url", sim.base_url, "--ws-url", sim.ws_url,
                     "send", "--dry-run", "--set", "risk.maxBookAgeMs=100", cwd=tmp_path)
        send.write(book(1_000) + quote(1_000))
        send.until(kind("order_ack"))
        time.sleep(0.5)
        send.write(book(1_050) + quote(1_050, "2999.80"))
        send.until(kind("order_modify", price="2999.80"))
        send.finish()
    assert not [x for x in send.seen if x["type"] == "risk"]
    assert [x["reason"] for x in send.seen if x["type"] == "order_cancel"] == ["shutdown"]
