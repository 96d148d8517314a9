"""`quote` and `send` as pipe stages: bad and out-of-order lines are reported by line number and
skipped, `--dry-run` writes nothing to the venue, `--position` and `--live` guard the start."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal

import orjson

from mmkit.lines import check_line
from tests.simkit import SignedHttp, serve

BOOK = {"type": "book", "symbol": "ETHUSDC", "ts": 1_000, "recvTs": 1_000, "updateId": 7,
        "stale": False, "bids": [["3000.00", "1.000"], ["2999.99", "2.000"]],
        "asks": [["3000.01", "1.000"], ["3000.02", "2.000"]], "bestBid": "3000.00",
        "bestAsk": "3000.01", "mid": "3000.005", "microprice": "3000.005", "spreadTicks": 1,
        "imbalance": 0.0}


def mmkit(*args: str, stdin: bytes = b"", cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
    return subprocess.run([sys.executable, "-m", "mmkit", *args], input=stdin,
                          capture_output=True, env=env, cwd=cwd, timeout=60)


def books(*times: int) -> bytes:
    return b"".join(orjson.dumps({**BOOK, "ts": t, "recvTs": t}) + b"\n" for t in times)


def test_quote_reports_bad_and_late_lines_and_goes_on(tmp_path):
    stdin = books(1_000) + b"{not json\n" + books(900, 2_500)
    result = mmkit("quote", "--set", "strategy.model=fixed", "--set", "strategy.spreadTicks=3",
                   stdin=stdin, cwd=tmp_path)
    assert result.returncode == 0
    stderr = result.stderr.decode()
    assert "2" in stderr and "not valid JSON" in stderr
    assert "line 3: out of order" in stderr
    lines = [orjson.loads(x) for x in result.stdout.splitlines()]
    quotes = [x for x in lines if x["type"] == "quote"]
    assert quotes and all(check_line(q) == [] for q in quotes)
    assert [x["ts"] for x in lines if x["type"] == "book"] == [1_000, 900, 2_500]  # passed on
    bid = next(lv for lv in quotes[0]["levels"] if lv["tag"] == "b0")
    ask = next(lv for lv in quotes[0]["levels"] if lv["tag"] == "a0")
    assert Decimal(bid["price"]) < Decimal("3000.01") and Decimal(ask["price"]) > Decimal("3000")
    assert Decimal(ask["price"]) - Decimal(bid["price"]) >= Decimal("0.03")  # spreadTicks=3


def test_send_dry_run_writes_nothing_to_the_venue(tmp_path):
    with serve() as sim:
        quote = mmkit("quote", "--set", "strategy.model=fixed", "--set",
                      "strategy.spreadTicks=3", stdin=books(1_000, 2_000), cwd=tmp_path)
        result = mmkit("--venue", "sim", "--base-url", sim.base_url, "--ws-url", sim.ws_url,
                       "send", "--dry-run", stdin=quote.stdout, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        lines = [orjson.loads(x) for x in result.stdout.splitlines()]
        new = [x for x in lines if x["type"] == "order_new"]
        assert new and all(x["dryRun"] for x in new)
        assert all(check_line(x) == [] for x in lines)
        open_orders = SignedHttp(sim.base_url).signed("GET", "/fapi/v1/openOrders",
                                                       symbol="ETHUSDC").json()
        assert open_orders == []


def test_send_refuses_a_position_it_did_not_expect(tmp_path):
    with serve() as sim:
        result = mmkit("--venue", "sim", "--base-url", sim.base_url, "--ws-url", sim.ws_url,
                       "send", "--position", "0.5", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.decode().count("\n") == 1 and "refusing to start" in \
        result.stderr.decode()


def test_live_venue_needs_live(tmp_path):
    for command in (["send"], ["run"]):
        result = mmkit("--venue", "live", *command, cwd=tmp_path)
        assert result.returncode == 2 and b"--live" in result.stderr


def test_post_only_reject_is_repriced_and_recovers(tmp_path):
    """A bid quoted at the ask is refused post-only (-5022); send steps it a tick away and the
    order rests, without the strategy doing anything."""
    crossing = {"type": "quote", "symbol": "ETHUSDC", "levels": [
        {"tag": "b0", "side": "BUY", "price": "3000.01", "qty": "0.010", "timeInForce": "GTX",
         "reduceOnly": False}], "reasons": {}, "paused": None}
    stdin = b"".join(books(t) + orjson.dumps({**crossing, "ts": t}) + b"\n"
                     for t in (1_000, 1_100, 1_200))
    with serve() as sim:
        result = mmkit("--venue", "sim", "--base-url", sim.base_url, "--ws-url", sim.ws_url,
                       "send", stdin=stdin, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(x) for x in result.stdout.splitlines()]
    rejects = [x for x in lines if x["type"] == "order_reject"]
    acks = [x for x in lines if x["type"] == "order_ack"]
    news = [x for x in lines if x["type"] == "order_new"]
    assert [x["code"] for x in rejects] == [-5022]
    assert [x["price"] for x in news] == ["3000.01", "3000.00"] and len(acks) == 1
    assert b"1 post-only" in result.stderr


def test_quote_feeds_mark_price_lines_to_the_funding_signal(tmp_path):
    mark = {"type": "markPrice", "symbol": "ETHUSDC", "ts": 1_500, "markPrice": "3000.005",
            "indexPrice": "3000.00", "fundingRate": "0.00050000", "nextFundingTime": 9_000_000}
    stdin = books(1_000) + orjson.dumps(mark) + b"\n" + books(2_500)
    result = mmkit("quote", "--set", "strategy.model=fixed", stdin=stdin, cwd=tmp_path)
    quotes = [orjson.loads(x) for x in result.stdout.splitlines() if b'"quote"' in x]
    assert quotes[0]["reasons"]["funding"] == 0 and quotes[-1]["reasons"]["funding"] != 0


def quote_line_for(symbol: str, price: str, ts: int = 1_000, qty: str = "0.010") -> bytes:
    return orjson.dumps({"type": "quote", "symbol": symbol, "ts": ts, "levels": [
        {"tag": "b0", "side": "BUY", "price": price, "qty": qty, "timeInForce": "GTX",
         "reduceOnly": False}], "reasons": {}, "paused": None}) + b"\n"


def one_error(result) -> str:
    """The usage error of a run that stopped: exit 2, an `Error:` line, no traceback."""
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr
    (error,) = [line for line in stderr.splitlines() if line.startswith("Error:")]
    return error


def test_send_prefix_must_make_valid_client_order_ids(tmp_path):
    """Binance's newClientOrderId is [.A-Z:/a-z0-9_-]{1,36}: a prefix that cannot make one is
    a usage error (it was a traceback, or every order rejected -4015 in a loop)."""
    long = mmkit("send", "--dry-run", "--prefix", "p" * 28, cwd=tmp_path)
    assert "--prefix" in one_error(long) and "at most" in one_error(long)
    for bad in ("a b", "mm#1", "mm-b"):  # a "-" would make it another prefix's run id
        assert "--prefix" in one_error(mmkit("send", "--dry-run", "--prefix", bad, cwd=tmp_path))


def test_send_position_must_be_a_quantity(tmp_path):
    for bad in ("abc", "nan"):
        error = one_error(mmkit("send", "--position", bad, cwd=tmp_path))
        assert "--position" in error and "not a quantity" in error


def test_send_on_an_unconfigured_symbol_uses_the_defaults_and_passes_others_through(tmp_path):
    """ETHUSDT has no settings: send says so and uses the default limits (not the first
    configured symbol's, here a 0.005 ETH order cap); book and quote lines of another symbol
    pass through as --help says."""
    config = tmp_path / "config.yaml"
    config.write_text("symbols:\n  ETHUSDC:\n    risk:\n      maxOrderQty: 0.005\n")
    eth_usdt = books(1_000).replace(b'"ETHUSDC"', b'"ETHUSDT"') + \
        quote_line_for("ETHUSDT", "2999.90", qty="0.015")
    others = books(1_000) + quote_line_for("ETHUSDC", "2999.90")
    with serve() as sim:
        result = mmkit("--config", str(config), "--venue", "sim", "--base-url", sim.base_url,
                       "--ws-url", sim.ws_url, "send", "--symbol", "ETHUSDT", "--dry-run",
                       stdin=eth_usdt + others, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert b"ETHUSDT has no settings in the config" in result.stderr
    lines = [orjson.loads(x) for x in result.stdout.splitlines()]
    (new,) = [x for x in lines if x["type"] == "order_new"]
    assert (new["symbol"], new["qty"]) == ("ETHUSDT", "0.015")
    assert not [x for x in lines if x["type"] == "risk" and x["guard"] == "order_size"]
    assert others in result.stdout  # ETHUSDC's book and quote, unchanged


def test_strict_stops_at_any_line_it_would_skip(tmp_path):
    """--strict stops with exit 2 and one error line on every line the stage would skip, not
    only on invalid JSON; what came before was handled, the bad line is not passed on."""
    bad_ts = books(1_000) + books(2_000).replace(b'"ts":2000', b'"ts":"x"') + books(3_000)
    result = mmkit("quote", "--strict", stdin=bad_ts, cwd=tmp_path)
    assert "stdin:2" in one_error(result) and "'ts'" in one_error(result)
    assert [orjson.loads(x)["ts"] for x in result.stdout.splitlines()
            if b'"book"' in x] == [1_000]
    late = mmkit("quote", "--strict", stdin=books(1_000, 900), cwd=tmp_path)
    assert "stdin:2: out of order" in one_error(late)
    with serve() as sim:
        venue = ["--venue", "sim", "--base-url", sim.base_url, "--ws-url", sim.ws_url]
        for price, why in (("abc", "not a decimal"), ("2999.995", "not on the tick")):
            stdin = books(1_000) + quote_line_for("ETHUSDC", price)
            error = one_error(mmkit(*venue, "send", "--dry-run", "--strict", stdin=stdin,
                                    cwd=tmp_path))
            assert "stdin:2" in error and why in error


def test_set_warns_for_keys_another_stage_reads_and_send_takes_its_own(tmp_path):
    """quote --set of a risk or post-only key says send reads it (it had silently no
    effect); send --set applies the keys send reads and is validated like quote's."""
    result = mmkit("quote", "--set", "risk.dailyMax=100", "--set", "strategy.postOnlyRetries=1",
                   "--set", "strategy.spreadTicks=2", stdin=books(1_000), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.decode().splitlines()
    assert len(warnings) == 2 and all("`mmkit send` reads it" in w for w in warnings)
    assert "risk.dailyMax" in warnings[0] and "strategy.postOnlyRetries" in warnings[1]
    assert "unknown key" in one_error(mmkit("send", "--set", "risk.dailyMaxx=1", cwd=tmp_path))
    assert "--set" in one_error(mmkit("send", "--set", "maxPosition", cwd=tmp_path))
    with serve() as sim:
        result = mmkit("--venue", "sim", "--base-url", sim.base_url, "--ws-url", sim.ws_url,
                       "send", "--dry-run", "--set", "risk.maxOrderQty=0.004", "--set",
                       "strategy.spreadTicks=3", stdin=books(1_000) +
                       quote_line_for("ETHUSDC", "2999.90"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert b"strategy.spreadTicks has no effect on send: `mmkit quote` reads it" in \
        result.stderr
    (new,) = [orjson.loads(x) for x in result.stdout.splitlines() if b'"order_new"' in x]
    assert new["qty"] == "0.004"  # shrunk by the order_size guard to the --set cap


def test_a_dry_run_takes_the_position_from_upstream_and_passes_fills_on(tmp_path):
    """Upstream position lines (`depth --user`) reach a dry run's risk guards: 0.045 of a
    0.05 max is reduce-only, so the bid is dropped; a dry run has no user stream of its own,
    so an upstream fill passes on, once."""
    position = {"type": "position", "symbol": "ETHUSDC", "ts": 900, "qty": "0.045",
                "entryPrice": "3000.00", "breakEvenPrice": "3000.00", "unrealizedPnl": "0",
                "accumulatedRealized": "0", "marginType": "cross", "positionSide": "BOTH",
                "reason": "SNAPSHOT"}
    fill = {"type": "fill", "symbol": "ETHUSDC", "ts": 950, "tradeId": 1, "orderId": 2,
            "clientOrderId": "x", "side": "BUY", "price": "3000.00", "qty": "0.005",
            "maker": True, "commission": "0", "commissionAsset": "USDC", "realizedPnl": "0",
            "source": "stream"}
    stdin = orjson.dumps(position) + b"\n" + orjson.dumps(fill) + b"\n" + books(1_000) + \
        quote_line_for("ETHUSDC", "2999.90")
    with serve() as sim:
        result = mmkit("--venue", "sim", "--base-url", sim.base_url, "--ws-url", sim.ws_url,
                       "send", "--dry-run", stdin=stdin, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(x) for x in result.stdout.splitlines()]
    assert [x for x in lines if x["type"] in ("position", "fill")] == [position, fill]
    risk = [(x["guard"], x["action"]) for x in lines if x["type"] == "risk"]
    assert ("reduce_only", "reduce_only") in risk and ("reduce_only", "drop") in risk
    assert not [x for x in lines if x["type"] == "order_new"]


def test_quote_counts_a_fill_once_whichever_comes_first_fill_or_position(tmp_path):
    """A position line is the venue's absolute amount: a fill line that comes after a
    position line already counting it (ts not later) does not move the inventory again."""
    def position(qty: str, ts: int) -> bytes:
        return orjson.dumps({"type": "position", "symbol": "ETHUSDC", "ts": ts, "qty": qty,
                             "entryPrice": "3000.00", "reason": "ORDER"}) + b"\n"

    def fill(trade_id: int, ts: int) -> bytes:
        return orjson.dumps({"type": "fill", "symbol": "ETHUSDC", "ts": ts, "tradeId": trade_id,
                             "orderId": 1, "side": "BUY", "price": "3000.00", "qty": "0.010",
                             "maker": True, "commission": "0"}) + b"\n"

    stdin = (position("0.010", 1_000) + fill(1, 999) + books(1_100)  # position first
             + fill(2, 1_200) + position("0.020", 1_201) + books(1_300))  # fill first
    result = mmkit("quote", "--set", "strategy.model=fixed", stdin=stdin, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    quotes = [orjson.loads(x) for x in result.stdout.splitlines() if b'"quote"' in x]
    assert [q["reasons"]["position"] for q in quotes] == ["0.010", "0.020"]
