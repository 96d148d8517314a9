"""The backtester: the bot's own core against the simulator's engine in virtual time. It is
deterministic, its accounts add up, latency matters, and the CLI runs single backtests and
ranked sweeps. Scenarios on the synthetic market make the risk guards act."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from decimal import Decimal

import orjson
import pytest

from mmkit.backtest import Backtest, Latency
from mmkit.config import load_config
from mmkit.lines import check_line
from mmkit.sim.instruments import default_specs
from mmkit.sim.market import SyntheticMarket, open_market

ETHUSDT = default_specs(["ETHUSDT"])["ETHUSDT"]
ETHUSDC = default_specs(["ETHUSDC"])["ETHUSDC"]
RECORDING = "market/binance_usdm_hftbacktest/ethusdt_20240808.gz"


def symbol_config(symbol: str, **strategy):
    tree = {"symbols": {symbol: {"strategy": {k: str(v) for k, v in strategy.items()}}}}
    return load_config(None, env={}, overrides=tree).symbols[symbol]


def replay(shared_data, latency: Latency | None = None, **strategy):
    lines: list[dict] = []
    bt = Backtest(ETHUSDT, symbol_config("ETHUSDT", **strategy), latency=latency or Latency(),
                  emit=lines.append)
    summary = bt.run(open_market(shared_data / RECORDING, ETHUSDT))
    return bt, summary, lines


def test_replay_is_deterministic_and_its_accounts_add_up(shared_data):
    bt, first, lines = replay(shared_data, model="fixed", spreadTicks=2)
    _, second, _ = replay(shared_data, model="fixed", spreadTicks=2)
    assert first.as_line() == second.as_line()
    fills = [line for line in lines if line["type"] == "fill"]
    assert first.fills == len(fills) > 0
    assert all(check_line(line) == [] for line in lines)
    signed = sum((1 if f["side"] == "BUY" else -1) * ETHUSDT.to_steps(f["qty"]) for f in fills)
    assert bt.engine.positions["ETHUSDT"].amount == signed
    # fill lines carry 8 decimals, as the venue's do; the summary is exact
    rounding = Decimal("0.000000005") * len(fills)
    assert abs(first.fees - sum(Decimal(f["commission"]) for f in fills)) <= rounding
    assert abs(first.realized_pnl - sum(Decimal(f["realizedPnl"]) for f in fills)) <= rounding
    wallet = bt.engine.balances["USDT"].wallet
    expected = Decimal(100) + first.realized_pnl - first.fees + first.funding
    assert abs(wallet - expected) < Decimal("1e-18")  # Decimal's 28 digits, step by step


def test_latency_changes_what_fills(shared_data):
    _, fast, _ = replay(shared_data, Latency(1, 1), model="fixed", spreadTicks=2)
    _, slow, _ = replay(shared_data, Latency(250, 250), model="fixed", spreadTicks=2)
    assert (fast.fills, fast.orders) != (slow.fills, slow.orders)


def test_inventory_builds_until_the_guards_hold_it():
    """A tight position limit on 20 minutes of synthetic market: position never exceeds it, and
    the guards say so."""
    config = load_config(None, env={}, overrides={"symbols": {"ETHUSDC": {
        "strategy": {"model": "fixed", "spreadTicks": "2", "staticFraction": "0",
                     "maxInventory": "0.02"},
        "risk": {"maxPosition": "0.02", "dailyMax": "100"}}}}).symbols["ETHUSDC"]
    lines: list[dict] = []
    bt = Backtest(ETHUSDC, config, emit=lines.append)
    positions = []
    original = bt._on_update

    def watch(line, fill):
        original(line, fill)
        positions.append(bt.engine.positions["ETHUSDC"].amount)

    bt._on_update = watch
    summary = bt.run(SyntheticMarket(ETHUSDC, seed=4, duration_ms=1_200_000))
    assert summary.fills > 10
    assert max(abs(p) for p in positions) <= ETHUSDC.to_steps("0.02")
    guards = {line["guard"] for line in lines if line["type"] == "risk"}
    assert guards & {"max_position", "reduce_only"}


def mmkit(*args: str, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
    return subprocess.run([sys.executable, "-m", "mmkit", *args], capture_output=True, env=env,
                          cwd=cwd, timeout=120)


def test_cli_single_run_and_ranked_grid(shared_data, tmp_path):
    data = str(shared_data / RECORDING)
    single = mmkit("backtest", "--data", data, "--set", "strategy.model=fixed", cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    (row,) = [orjson.loads(x) for x in single.stdout.splitlines()]
    assert row["type"] == "backtest" and row["symbol"] == "ETHUSDT" and row["events"] > 20_000
    out = tmp_path / "grid.csv"
    grid = mmkit("backtest", "--data", data, "--grid", "strategy.spreadTicks=2,6",
                 "--grid", "strategy.model=fixed", "--workers", "2", "--csv", str(out),
                 cwd=tmp_path)
    assert grid.returncode == 0, grid.stderr
    rows = [orjson.loads(x) for x in grid.stdout.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2]
    assert float(rows[0]["netPnl"]) >= float(rows[1]["netPnl"])
    assert {r["params"]["strategy.spreadTicks"] for r in rows} == {"2", "6"}
    with open(out) as fh:
        assert len(list(csv.DictReader(fh))) == 2


@pytest.mark.parametrize("args, message", [
    (["--data", "/nonexistent/eth.gz"], "cannot read"),
    (["--grid", "strategy.spreadTicks"], "--grid"),
    (["--set", "strategy.spreadTicks=-1"], "spreadTicks"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = mmkit("backtest", "--duration", "1m", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr.decode() and result.stderr.count(b"\n") == 1


def test_cli_recording_of_another_symbol_is_refused(shared_data, tmp_path):
    result = mmkit("backtest", "--data", str(shared_data / RECORDING), "--symbol", "ETHUSDC",
                   cwd=tmp_path)
    assert result.returncode == 2 and b"holds ETHUSDT, not ETHUSDC" in result.stderr



def test_funding_is_paid_and_journaled_as_a_funding_line():
    """A long position held over the funding time pays the feed's rate: a `funding` line with
    the payment, and the summary's funding, agree with the engine's income."""
    from mmkit.model import DepthDiff, DepthSnapshot, MarketTrade, MarkPrice, Timed

    bid, ask = ETHUSDC.to_ticks("3000.00"), ETHUSDC.to_ticks("3000.01")
    book = DepthSnapshot("ETHUSDC", 0, 1, [(bid - i, 1000) for i in range(20)],
                         [(ask + i, 1000) for i in range(20)])
    funding_at = 60_000
    market = [Timed(0, book),
              Timed(10, MarkPrice("ETHUSDC", 10, Decimal("3000"), Decimal("3000"),
                                  Decimal("0.0001"), funding_at))]
    # sellers hit the bid for a while: our resting bid fills, we are long at funding time
    market += [Timed(t, MarketTrade("ETHUSDC", t, t, bid - k, 5000, True))
               for t in range(1_000, 50_000, 1_000) for k in range(0, 6)]
    # the book itself keeps ticking (a far level), so the bot keeps deciding
    market += [Timed(t, DepthDiff("ETHUSDC", t, t, t, t, t - 500 if t > 500 else 1,
                                  [(bid - 30, 1000 + t % 7)], []))
               for t in range(500, 55_000, 500)]
    market.sort(key=lambda timed: timed.at)
    market.append(Timed(funding_at + 1_000, MarkPrice("ETHUSDC", funding_at + 1_000,
                                                      Decimal("3000"), Decimal("3000"),
                                                      Decimal("0.0001"), funding_at + 28_800_000)))
    lines: list[dict] = []
    bt = Backtest(ETHUSDC, symbol_config("ETHUSDC", model="fixed", spreadTicks=2),
                  emit=lines.append)
    summary = bt.run(market)
    funding = [line for line in lines if line["type"] == "funding"]
    assert summary.fills > 0 and funding
    assert all(check_line(line) == [] for line in funding)
    assert sum(Decimal(line["amount"]) for line in funding) == summary.funding < 0


def write_measured_journal(root, order_rtts: list[int], book_lags: list[int],
                           symbol: str = "ETHUSDT") -> None:
    """A journal as `run` writes it (the real writer): order lines with measured latencies."""
    from mmkit.journal import Journal

    journal = Journal(root, "run-measured")
    ts = 1723161300000
    for i, (rtt, lag) in enumerate(zip(order_rtts, book_lags, strict=True)):
        common = {"symbol": symbol, "ts": ts + i, "tag": "b0", "clientOrderId": f"mm-{i}",
                  "side": "BUY", "price": "2680.00", "qty": "0.008", "dryRun": False}
        journal.write({**common, "type": "order_new", "orderId": None, "timeInForce": "GTX",
                       "reduceOnly": False, "bookTs": ts + i - lag, "bookRecvTs": ts + i})
        journal.write({**common, "type": "order_ack", "orderId": i + 1, "status": "NEW",
                       "latencyMs": rtt, "settled": False})
    journal.close()


def test_latency_replayed_from_a_journal(shared_data, tmp_path):
    """`--latency journal:DIR` draws order entry (half of each measured round trip) and market
    data latency (bookRecvTs − bookTs) from what a run measured: seeded, so repeatable."""
    write_measured_journal(tmp_path / "measured", [40, 60, 60, 400], [20, 30, 30, 90])
    data = str(shared_data / RECORDING)
    args = ("backtest", "--data", data, "--latency", f"journal:{tmp_path / 'measured'}",
            "--seed", "3")
    first, second = mmkit(*args, cwd=tmp_path), mmkit(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    row = orjson.loads(first.stdout)
    assert row["latency"] == {"orderMs": 30, "marketMs": 30, "model": "journal"}  # medians
    strip = ("wallSeconds", "eventsPerSecond")
    assert {k: v for k, v in row.items() if k not in strip} == {
        k: v for k, v in orjson.loads(second.stdout).items() if k not in strip}
    constant = orjson.loads(mmkit("backtest", "--data", data, "--latency", "30ms",
                                  "--market-latency", "30ms", cwd=tmp_path).stdout)
    assert constant["latency"]["model"] == "constant"
    assert (row["orders"], row["fills"]) != (constant["orders"], constant["fills"])

    # measured on another symbol (a run on ETHUSDC, the recording is ETHUSDT): the same
    # connection's latency, said so in the row
    write_measured_journal(tmp_path / "usdc", [40, 60, 60, 400], [20, 30, 30, 90], "ETHUSDC")
    borrowed = orjson.loads(mmkit("backtest", "--data", data, "--latency",
                                  f"journal:{tmp_path / 'usdc'}", "--seed", "3",
                                  cwd=tmp_path).stdout)
    assert borrowed["latency"] == {"orderMs": 30, "marketMs": 30,
                                   "model": "journal (other symbols)"}
    assert (borrowed["orders"], borrowed["fills"]) == (row["orders"], row["fills"])


def test_latency_journal_without_measurements_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    for root, message in ((tmp_path / "empty", "no order acknowledgements"),
                          (tmp_path / "missing", "no journal directory")):
        result = mmkit("backtest", "--duration", "1m", "--latency", f"journal:{root}",
                       cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr.decode()
        assert result.stderr.count(b"\n") == 1


BTC_SMALL = {"strategy": {"baseSize": "0.001"},
             "risk": {"maxPosition": "0.003", "maxOrderNotional": "80", "maxOrderQty": "0.001",
                      "dailyMax": "100000"}}


def test_two_symbols_trade_one_account(shared_data):
    """ETHUSDT and BTCUSDT recordings merged by time, one bot each over one engine: one USDT
    wallet pays both; with margin to spare each symbol fills as it does alone."""
    import heapq

    from mmkit.backtest import Backtest
    from mmkit.config import SymbolConfig

    config = load_config(None, env={}, overrides={"symbols": {"BTCUSDT": BTC_SMALL}})
    btc = default_specs(["BTCUSDT"])["BTCUSDT"]
    files = {"ETHUSDT": RECORDING, "BTCUSDT": RECORDING.replace("eth", "btc")}
    specs = {"ETHUSDT": ETHUSDT, "BTCUSDT": btc}

    def market(symbols):
        return heapq.merge(*(open_market(shared_data / files[s], specs[s]) for s in symbols),
                           key=lambda timed: timed.at)

    def fills_of(bots, symbols):
        lines: list[dict] = []
        for bot in bots:
            bot.emit = lines.append
        bots[0].run(market(symbols))
        return [(x["symbol"], x["ts"], x["side"], x["price"], x["qty"]) for x in lines
                if x["type"] == "fill"]

    configs = {s: config.symbols.get(s, SymbolConfig()) for s in files}
    both = Backtest.together([(specs[s], configs[s]) for s in files])
    together = fills_of(both, list(files))
    alone = {s: fills_of(Backtest.together([(specs[s], configs[s])]), [s]) for s in files}
    for symbol in files:
        assert [f for f in together if f[0] == symbol] == alone[symbol] != []
    wallet = both[0].engine.balances["USDT"].wallet
    paid = sum(b.summary.realized_pnl - b.summary.fees + b.summary.funding for b in both)
    assert abs(wallet - (Decimal(100) + paid)) < Decimal("1e-18")
    assert [b.summary.events for b in both] == [20_657, 27_857]


def test_cli_two_recordings_give_a_row_per_symbol(shared_data, tmp_path):
    data = [str(shared_data / RECORDING), str(shared_data / RECORDING.replace("eth", "btc"))]
    result = mmkit("backtest", "--data", data[0], "--data", data[1], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [orjson.loads(x) for x in result.stdout.splitlines()]
    assert [r["symbol"] for r in rows] == ["ETHUSDT", "BTCUSDT"]
    refused = mmkit("backtest", "--data", data[0], "--data", data[1], "--symbol", "ETHUSDT",
                    cwd=tmp_path)
    assert refused.returncode == 2 and b"holds ETHUSDT, BTCUSDT, not ETHUSDT" in refused.stderr


def test_a_decision_never_sees_a_book_still_on_its_way(shared_data):
    """With 20 ms of market-data latency, every book a decision reads changed at least 20 ms
    before it (no look-ahead: later changes are still travelling)."""
    bt = Backtest(ETHUSDT, symbol_config("ETHUSDT"), latency=Latency(5, 20))
    seen: list[tuple[int, int]] = []
    on_book = bt.strategy.on_book

    def watch(book):
        seen.append((bt.now, book.ts))
        return on_book(book)

    bt.strategy.on_book = watch
    bt.run(open_market(shared_data / RECORDING, ETHUSDT))
    assert len(seen) > 1000
    assert all(now - changed >= 20 for now, changed in seen)
