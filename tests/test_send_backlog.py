"""`send` behind a backlog: only the newest quote is acted on (a quote with a newer one already
queued is skipped and counted), while every book, position and fill line is still applied in
order; on a live feed decisions run on the wall clock, so books read late are as old as they
are and the data-latency guard pulls the orders. A dry run over a recording keeps acting on
every quote, on the recording's clock."""

from __future__ import annotations

import time

import orjson
import pytest

from mmkit.lines import check_line
from tests.simkit import SignedHttp, serve
from tests.test_pipe_watchdog import Stage, book, first_order, kind, quote, resting
from tests.test_quote_send_cli import mmkit


def two_sided(ts: int, bid: str, ask: str = "3000.10") -> bytes:
    return orjson.dumps({"type": "quote", "symbol": "ETHUSDC", "ts": ts, "levels": [
        {"tag": "b0", "side": "BUY", "price": bid, "qty": "0.010", "timeInForce": "GTX",
         "reduceOnly": False},
        {"tag": "a0", "side": "SELL", "price": ask, "qty": "0.010", "timeInForce": "GTX",
         "reduceOnly": False}], "reasons": {}, "paused": None}) + b"\n"


def position(qty: str, ts: int) -> dict:
    return {"type": "position", "symbol": "ETHUSDC", "ts": ts, "qty": qty,
            "entryPrice": "3000.00", "breakEvenPrice": "3000.00", "unrealizedPnl": "0",
            "accumulatedRealized": "0", "marginType": "cross", "positionSide": "BOTH",
            "reason": "ORDER"}


@pytest.fixture(scope="module")
def sim():
    with serve() as running:
        yield running


def venue(sim) -> list[str]:
    return ["--venue", "sim", "--base-url", sim.base_url, "--ws-url", sim.ws_url]


def lines_of(result) -> list[dict]:
    return [orjson.loads(x) for x in result.stdout.splitlines()]


def test_a_queued_backlog_is_acted_on_at_its_newest_quote_only(sim, tmp_path):
    """Five quotes queued at once on a venue: one order, at the last quote's price."""
    now = int(time.time() * 1000)
    stdin = book(now) + b"".join(quote(now + i, f"2999.{90 - i}") for i in range(5))
    result = mmkit(*venue(sim), "send", "--set", "risk.maxBookAgeMs=60000", stdin=stdin,
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = lines_of(result)
    assert [x["price"] for x in lines if x["type"] == "order_new"] == ["2999.86"]
    assert not [x for x in lines if x["type"] == "order_modify"]
    assert b"4 superseded quotes skipped (skippedQuotes)" in result.stderr
    assert all(check_line(x) == [] for x in lines)
    assert resting(SignedHttp(sim.base_url), until_none=True) == []  # cancelled at the end


def test_positions_and_fills_between_skipped_quotes_are_still_applied(sim, tmp_path):
    """A dry run on a live feed: the quotes before the last are skipped, but the position
    line between them reaches the risk guards (0.045 of a 0.05 max: reduce-only, the bid of
    the last quote is dropped) and every position and fill line passes on in order."""
    now = int(time.time() * 1000)
    fill = {"type": "fill", "symbol": "ETHUSDC", "ts": now + 2, "tradeId": 1, "orderId": 2,
            "clientOrderId": "x", "side": "BUY", "price": "3000.00", "qty": "0.045",
            "maker": True, "commission": "0", "commissionAsset": "USDC", "realizedPnl": "0",
            "source": "stream"}
    account = [position("0", now), position("0.045", now + 2), fill]
    stdin = (orjson.dumps(account[0]) + b"\n" + book(now) + two_sided(now, "2999.90") +
             two_sided(now + 1, "2999.89") + orjson.dumps(account[1]) + b"\n" +
             orjson.dumps(fill) + b"\n" + two_sided(now + 3, "2999.88", "3000.09"))
    result = mmkit(*venue(sim), "send", "--dry-run", "--set", "risk.maxBookAgeMs=60000",
                   stdin=stdin, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = lines_of(result)
    assert [x for x in lines if x["type"] in ("position", "fill")] == account
    assert [x["tag"] for x in lines if x["type"] == "order_new"] == ["a0"]  # the last quote's
    assert ("reduce_only", "drop") in [(x["guard"], x["action"]) for x in lines
                                       if x["type"] == "risk"]
    assert b"2 superseded quotes skipped" in result.stderr


@pytest.mark.parametrize("settings", [[], ["--set", f"risk.maxBookAgeMs={10**15}"]],
                         ids=["defaults", "any book age"])
def test_a_dry_run_over_a_recording_acts_on_every_quote(sim, tmp_path, settings):
    """However old a book the guards accept, a recording is not a live feed."""
    stdin = book(1_000) + b"".join(quote(1_000 + i, f"2999.{90 - i}") for i in range(3))
    result = mmkit(*venue(sim), "send", "--dry-run", *settings, stdin=stdin, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = lines_of(result)
    assert [(x["type"], x["price"]) for x in lines if x["type"] in ("order_new",
                                                                     "order_modify")] == \
        [("order_new", "2999.90"), ("order_modify", "2999.89"), ("order_modify", "2999.88")]
    assert b"0 superseded quotes skipped" in result.stderr
    assert not [x for x in lines if x["type"] == "risk"]


def test_books_read_late_trip_the_data_latency_guard_on_the_wall_clock(sim, tmp_path):
    """Books keep arriving at the door (so the watchdog sees no silence), but each was
    received long before it is read, like a backlog drained after a slow venue call: the
    data-latency guard, asked at the wall clock, pulls the order and nothing new is placed
    (on the books' own clock they were all fresh, and send kept modifying)."""
    send = Stage(*venue(sim), "send", "--set", "risk.maxBookAgeMs=400", cwd=tmp_path)
    now = first_order(send)
    for i in range(1, 9):
        time.sleep(0.15)
        send.write(book(now + i) + quote(now + i, f"2999.{80 - i}"))
    got = send.until(kind("risk", guard="data_latency"))
    assert "ms ago (max 400)" in got[-1]["detail"]
    send.until(kind("order_cancel"))
    assert resting(SignedHttp(sim.base_url), until_none=True) == []
    send.finish()
    guard = next(i for i, x in enumerate(send.seen) if x["type"] == "risk")
    after = [x for x in send.seen[guard:] if x["type"] in ("order_new", "order_modify")]
    assert after == []  # nothing placed or moved on the old books
