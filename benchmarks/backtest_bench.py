"""Backtest throughput on a real Binance USDⓈ-M recording: `mmkit.backtest.Backtest` (the bot's
own strategy, risk guards and order manager against the simulator's engine, in virtual time)
against a plain grid market maker in hftbacktest, over a 4-point spread grid.

    python benchmarks/backtest_bench.py [--repeats N] [--quick] [--skip-cli] [--skip-peer]

Timings are the best of N runs (`--repeats`, default 3; `--quick`: 1, and the CLI grid once).
Ratios are "mmkit / peer": the peer's time over mmkit's for the same recording (above 1: mmkit
is faster).

Data: ETHUSDT 2024-08-08 (`market/binance_usdm_hftbacktest/ethusdt_20240808.gz`, 345 s).

The strategies are comparable, not identical, and their fills are not expected to match:
mmkit's "fixed" model prices around a fair value moved by its signals (microprice, book
imbalance, trade flow, funding) and skewed by inventory, at most `improveTicks` inside the
touch, behind the risk guards (which can pause quoting) and an order manager that modifies
rather than cancels; the hftbacktest side is a plain grid at the touch ± N ticks with no
signals, skew or risk. The two matching engines also differ (see sim_bench.py). Fill counts
and PnL are printed to show that both sides traded, not as a comparison.

1. mmkit (`mmkit.backtest`)
---------------------------
The recording is read with `list(mmkit.sim.market.open_market(path, spec))` before timing:
1 REST snapshot + 6,581 `depthUpdate` + 14,075 trades = 20,657 market events after snapshot
alignment (venue time = each message's exchange time `E`). spec =
`default_specs(["ETHUSDT"])["ETHUSDT"]`; the symbol config is
`load_config(None, env={}, overrides={"symbols": {"ETHUSDT": {"strategy": {"model": "fixed",
"spreadTicks": N, "staticFraction": "0", "levels": "1"}}}}).symbols["ETHUSDT"]` (every other
setting at its default: base size 0.010, the default risk guards), built outside the timed
region. A timed run is `Backtest(spec, cfg, latency=Latency(5, 5)).run(events)` (order entry
5 ms each way, market and user events 5 ms; default `EngineConfig`: RiskAverse queue, maker fee
0.02 %, partial fills). Reported per N: events/s = 20,657 / run time, fills, orders (places +
modifies sent) and net PnL from `summary.as_line()`; the full line is printed for N = 2.
With the default risk settings the daily_notional guard (dailyMax 5 x accountEquity 100 =
500 USDT of volume) stops new orders ~46 s into the 345 s recording, so that row mostly times
a bot that decides but no longer trades. A second row per N ("risk limits lifted") adds
`risk: {dailyMax: 1000000, maxOrdersPerWindow: 1000000, maxPosition: 1000}` to the same
overrides, so the bot quotes and trades through the whole recording (the strategy's own
maxInventory 0.05 still bounds the position).
Grid of 4 (N = 1, 2, 4, 8):
- sequentially in this process: config + `Backtest` + `run` for each N, timed as a whole;
- through the CLI: `python -m mmkit backtest --data FILE --grid strategy.spreadTicks=1,2,4,8
  --grid strategy.model=fixed --workers 2 --set strategy.staticFraction=0 --set
  strategy.levels=1` (the two `--set`s make the same configs as above), run in a temporary
  directory (no configs/config.yaml) with no MMKIT_* variables. Wall time from process start
  to exit: interpreter and CLI start, two worker processes, each reading and aligning the
  recording itself for each of its runs. Its rows' fills are checked against the in-process
  runs.

2. hftbacktest (peer)
---------------------
hftbacktest 2.4 (PyPI `hftbacktest`, Rust core driven from a numba `@njit` loop). The same
file is converted with its own `data.utils.binancefutures.convert` outside the timed region
(one row per changed price level, trade or snapshot level; exch_ts = the messages' transaction
time `T`; local_ts = the recorder's receive time shifted by the converter's
`correct_local_timestamp`, which gives feed latencies of p50 ~4 ms, max ~90 ms). To give it
the same constant 5 ms feed latency as mmkit, the rows are stably sorted by exch_ts and
local_ts is set to exch_ts + 5 ms (untimed). Asset:
`linear_asset(1)`, tick 0.01, lot 0.001, `constant_order_latency(5 ms, 5 ms)` (entry and
response: the same 5 ms each way as mmkit), `risk_adverse_queue_model()`,
`partial_fill_exchange()`, fees 0.02 % / 0.05 % of traded value (`trading_value_fee_model`).
The backtester is built before timing (it loads the array). The strategy: one BUY at best bid
- N ticks and one SELL at best ask + N ticks, 0.010 ETH, GTX LIMIT; at every step a resting
order whose price is no longer the target is cancelled and a new one submitted (an order with
a request in flight counts as present, so at most one live order per side besides those being
cancelled); inactive orders are cleared every 256 steps. Steps:
- per message: `elapse` to each distinct local_ts of the rewritten data (one step per
  exchange timestamp, so the grid requotes on every market change as mmkit's bot may);
- 100 ms: `elapse(100 ms)` over the recording's span (requote every 100 ms).
Steps in one timed run: `wait_next_feed` to the first message, then the loop (both njit).
events/s = 20,657 / run time on both sides: the same recording's aligned messages, so the
ratio is the inverse of the time ratio (hftbacktest also processes the 5 diffs before the
snapshot and the second snapshot that mmkit's alignment drops, 0.03 % more). Fills =
`state_values(0).num_trades`, orders = submits; net PnL = balance + position × mid − fees at
the end. numba compiles in an untimed warm-up run. The mmkit/peer column (on the mmkit rows)
is hftbacktest's per-message time over mmkit's for the same N; the grid summary gives the sum
of the four per-message runs against mmkit's sequential grid. About 40 s in all; `--quick`
about 20 s.

The data comes from ../shared/data (or $MMKIT_DATA); see its README.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mmkit.sim.market  # noqa: E402
from mmkit.backtest import Backtest, Latency  # noqa: E402
from mmkit.config import load_config  # noqa: E402
from mmkit.sim.instruments import default_specs  # noqa: E402

RECORDINGS = "market/binance_usdm_hftbacktest"
RECORDING = "ethusdt_20240808.gz"
SYMBOL = "ETHUSDT"
SPEC = default_specs([SYMBOL])[SYMBOL]
GRID = (1, 2, 4, 8)
SINGLE = 2
ORDER_QTY = 0.010
LATENCY_MS = 5
STEP_MS = 100
LIFTED = {"dailyMax": "1000000", "maxOrdersPerWindow": "1000000", "maxPosition": "1000"}


def data_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    path = Path(os.environ.get("MMKIT_DATA", default))
    if not (path / RECORDINGS / RECORDING).is_file():
        sys.exit(f"backtest_bench: recording not found: {path / RECORDINGS / RECORDING} "
                 "(set MMKIT_DATA)")
    return path


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def best_of(repeats: int, fn, *args):
    results = [fn(*args) for _ in range(repeats)]
    return min(results, key=lambda r: r[0])


# -- 1. mmkit -----------------------------------------------------------------------------------


def symbol_config(spread_ticks: int, lifted: bool = False):
    strategy = {"model": "fixed", "spreadTicks": str(spread_ticks), "staticFraction": "0",
                "levels": "1"}
    tree = {"strategy": strategy, "risk": LIFTED} if lifted else {"strategy": strategy}
    return load_config(None, env={}, overrides={"symbols": {SYMBOL: tree}}).symbols[SYMBOL]


def run_mmkit(events: list, spread_ticks: int, lifted: bool = False) -> tuple[float, dict]:
    """One timed backtest (config built untimed); (seconds, summary line)."""
    cfg = symbol_config(spread_ticks, lifted)
    start = time.perf_counter()
    summary = Backtest(SPEC, cfg, latency=Latency(LATENCY_MS, LATENCY_MS)).run(events)
    seconds = time.perf_counter() - start
    return seconds, summary.as_line()


def run_mmkit_grid(events: list) -> tuple[float, list[dict]]:
    """The 4 grid points back to back, config and Backtest construction included."""
    start = time.perf_counter()
    lines = [Backtest(SPEC, symbol_config(n), latency=Latency(LATENCY_MS, LATENCY_MS))
             .run(events).as_line() for n in GRID]
    return time.perf_counter() - start, lines


def run_cli_grid(path: Path, work: str) -> tuple[float, list[dict] | str]:
    cmd = [sys.executable, "-m", "mmkit", "backtest", "--data", str(path),
           "--grid", "strategy.spreadTicks=" + ",".join(map(str, GRID)),
           "--grid", "strategy.model=fixed", "--workers", "2",
           "--set", "strategy.staticFraction=0", "--set", "strategy.levels=1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMKIT_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return seconds, f"exit {proc.returncode}: {proc.stderr.strip()[-400:]}"
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return seconds, rows


# -- 2. hftbacktest -----------------------------------------------------------------------------


def hftbacktest_peer(path: Path):
    """(runner, info) or the reason it cannot run here."""
    try:
        import numpy as np
        from hftbacktest import (
            GTX,
            LIMIT,
            BacktestAsset,
            HashMapMarketDepthBacktest,
        )
        from hftbacktest.data.utils.binancefutures import convert
        from hftbacktest.order import BUY, NEW, NONE, PARTIALLY_FILLED
        from numba import njit
    except Exception as exc:  # not installed, or numba/numpy mismatch
        return f"{type(exc).__name__}: {exc}"

    with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
        raw = convert(str(path), buffer_size=2_000_000)
    data = raw[np.argsort(raw["exch_ts"], kind="stable")]
    data["local_ts"] = data["exch_ts"] + LATENCY_MS * 1_000_000
    steps = np.unique(data["local_ts"]).astype(np.int64)
    tick = float(SPEC.tick_size)
    lot = float(SPEC.step_size)
    latency_ns = LATENCY_MS * 1_000_000

    @njit
    def requote(hbt, n, qty, tick, next_id):
        """The grid's one step; returns the next order id."""
        depth = hbt.depth(0)
        bid, ask = depth.best_bid_tick, depth.best_ask_tick
        if bid >= ask:
            return next_id
        want_bid, want_ask = bid - n, ask + n
        have_bid = have_ask = False
        orders = hbt.orders(0)
        values = orders.values()
        while values.has_next():
            o = values.get()
            if o.req != NONE:  # in flight: a new one counts as present, a cancel does not
                if o.req == NEW:
                    if o.side == BUY:
                        have_bid = True
                    else:
                        have_ask = True
                continue
            if o.status != NEW and o.status != PARTIALLY_FILLED:
                continue
            target = want_bid if o.side == BUY else want_ask
            if o.price_tick == target:
                if o.side == BUY:
                    have_bid = True
                else:
                    have_ask = True
            else:
                hbt.cancel(0, o.order_id, False)
        if not have_bid:
            hbt.submit_buy_order(0, next_id, want_bid * tick, qty, GTX, LIMIT, False)
            next_id += 1
        if not have_ask:
            hbt.submit_sell_order(0, next_id, want_ask * tick, qty, GTX, LIMIT, False)
            next_id += 1
        return next_id

    @njit
    def per_message(hbt, steps, n, qty, tick):
        next_id = 1
        done = 0
        hbt.wait_next_feed(False, 1_000_000_000_000)  # to the first message
        for i in range(len(steps)):
            now = hbt.current_timestamp
            if steps[i] > now and hbt.elapse(steps[i] - now) != 0:
                break
            done += 1
            next_id = requote(hbt, n, qty, tick, next_id)
            if done % 256 == 0:
                hbt.clear_inactive_orders(0)
        return done, next_id - 1

    @njit
    def per_interval(hbt, end, step_ns, n, qty, tick):
        next_id = 1
        done = 0
        hbt.wait_next_feed(False, 1_000_000_000_000)  # to the first message
        while hbt.current_timestamp < end:
            if hbt.elapse(step_ns) != 0:
                break
            done += 1
            next_id = requote(hbt, n, qty, tick, next_id)
            if done % 256 == 0:
                hbt.clear_inactive_orders(0)
        return done, next_id - 1

    def build():
        asset = (BacktestAsset().data(data).linear_asset(1.0)
                 .constant_order_latency(latency_ns, latency_ns)
                 .tick_size(tick).lot_size(lot)
                 .trading_value_fee_model(0.0002, 0.0005).partial_fill_exchange()
                 .risk_adverse_queue_model().last_trades_capacity(0))
        return HashMapMarketDepthBacktest([asset])

    first, last = int(steps[0]), int(steps[-1])
    recorded = raw["local_ts"] - raw["exch_ts"]

    def run(n: int, mode: str) -> tuple[float, int, int, int, float]:
        """(seconds, strategy steps, fills, orders submitted, net PnL)."""
        hbt = build()
        start = time.perf_counter()
        if mode == "message":
            done, placed = per_message(hbt, steps, n, ORDER_QTY, tick)
        else:
            done, placed = per_interval(hbt, last, STEP_MS * 1_000_000, n, ORDER_QTY, tick)
        seconds = time.perf_counter() - start
        state = hbt.state_values(0)
        depth = hbt.depth(0)
        mid = (depth.best_bid + depth.best_ask) / 2
        net = state.balance + state.position * mid - state.fee
        fills = state.num_trades
        hbt.close()
        return seconds, done, fills, placed, net

    compile_start = time.perf_counter()
    run(GRID[0], "message")  # numba compiles here
    run(GRID[0], "interval")
    compile_s = time.perf_counter() - compile_start
    info = {"rows": len(raw), "rows_sorted": len(data), "steps": len(steps),
            "compile_s": compile_s, "span_s": (last - first) / 1e9,
            "feed_p50_ms": float(np.median(recorded)) / 1e6,
            "feed_max_ms": float(recorded.max()) / 1e6}
    return run, info


# -- output -------------------------------------------------------------------------------------


def row(n, engine: str, events: int, seconds: float, fills, orders, net, ratio=None) -> str:
    ratio_text = f"{ratio:>10.3f}" if ratio is not None else ""
    return (f"  {n:>3}  {engine:<34} {events / seconds:>10,.0f} {1e6 * seconds / events:>9.2f} "
            f"{fills:>6,} {orders:>7,} {float(net):>9.4f}  {ratio_text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="best of N (default 3)")
    parser.add_argument("--quick", action="store_true", help="1 repeat, the CLI grid once")
    parser.add_argument("--skip-cli", action="store_true", help="no CLI grid")
    parser.add_argument("--skip-peer", action="store_true", help="no hftbacktest")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    cli_repeats = 1 if args.quick else min(repeats, 2)

    path = data_dir() / RECORDINGS / RECORDING
    load_start = time.perf_counter()
    events = list(mmkit.sim.market.open_market(path, SPEC))
    load_s = time.perf_counter() - load_start
    count = len(events)
    span_s = (events[-1].at - events[0].at) / 1000
    print(f"Backtest throughput: ETHUSDT 2024-08-08, {count:,} market events over {span_s:.0f} s "
          f"(read + aligned in {load_s:.2f} s, untimed); latency {LATENCY_MS} ms order / "
          f"{LATENCY_MS} ms market; best of {repeats}; {os.cpu_count()} CPUs")

    peer = None
    if not args.skip_peer:
        peer = hftbacktest_peer(path)
        if isinstance(peer, str):
            print(f"  hftbacktest: not measured ({peer})")
            peer = None
        else:
            peer_run, info = peer
            print(f"  hftbacktest {_version('hftbacktest')}: {info['rows']:,} rows, "
                  f"{info['steps']:,} message steps over {info['span_s']:.0f} s; feed latency "
                  f"set to {LATENCY_MS} ms (converter's: p50 {info['feed_p50_ms']:.1f} ms, max "
                  f"{info['feed_max_ms']:.0f} ms); numba compile {info['compile_s']:.1f} s, "
                  "untimed")
    print("  strategies comparable, not identical: mmkit = its fixed model (signals, skew, "
          "risk); hftbacktest = plain grid at touch ± N; fills are not expected to match.")
    print("  mmkit/peer = hftbacktest per-message time / mmkit time, same N (above 1: mmkit "
          "faster)")
    print()

    header = (f"  {'N':>3}  {'engine':<34} {'events/s':>10} {'µs/event':>9} {'fills':>6} "
              f"{'orders':>7} {'net PnL':>9}  {'mmkit/peer':>10}")
    print(header)
    print("  " + "-" * (len(header) - 2))
    ours: dict[int, tuple[float, dict]] = {}
    peer_message_s = 0.0
    for n in GRID:
        peer_rows = []
        if peer is not None:
            for mode, label in (("message", "hftbacktest grid, per message"),
                                ("interval", f"hftbacktest grid, {STEP_MS} ms steps")):
                p_s, _, p_fills, p_orders, p_net = best_of(repeats, peer_run, n, mode)
                peer_rows.append((label, p_s, p_fills, p_orders, p_net))
            peer_message_s += peer_rows[0][1]
        for lifted, label in ((False, "mmkit Backtest (fixed, 1 level)"),
                              (True, "mmkit Backtest, risk limits lifted")):
            seconds, line = best_of(repeats, run_mmkit, events, n, lifted)
            if not lifted:
                ours[n] = (seconds, line)
            ratio = peer_rows[0][1] / seconds if peer_rows else None
            print(row(n, label, count, seconds, line["fills"], line["orders"], line["netPnl"],
                      ratio))
        for label, p_s, p_fills, p_orders, p_net in peer_rows:
            print(row(n, label, count, p_s, p_fills, p_orders, p_net))
    print()
    print(f"  mmkit summary.as_line() for N = {SINGLE}:")
    print("  " + json.dumps(ours[SINGLE][1], separators=(",", ":")))
    print()

    total = len(GRID) * count
    print(f"  Grid of {len(GRID)} (spreadTicks {','.join(map(str, GRID))}), "
          f"{total:,} events in all")
    seq_s, seq_lines = best_of(repeats, run_mmkit_grid, events)
    same = all(a["fills"] == ours[n][1]["fills"] for a, n in zip(seq_lines, GRID, strict=True))
    print(f"    mmkit, sequential in process    {seq_s:>7.2f} s  {total / seq_s:>10,.0f} events/s"
          f"  (fills as above: {'yes' if same else 'NO'})")
    if peer is not None:
        print(f"    hftbacktest, per message (sum)  {peer_message_s:>7.2f} s  "
              f"{total / peer_message_s:>10,.0f} events/s  mmkit/peer "
              f"{peer_message_s / seq_s:.2f}")
    if not args.skip_cli:
        with tempfile.TemporaryDirectory(prefix="mmkit-bt-bench-") as work:
            results = [run_cli_grid(path, work) for _ in range(cli_repeats)]
        failed = [r for r in results if isinstance(r[1], str)]
        if failed:
            print(f"    mmkit CLI --grid --workers 2: failed ({failed[0][1]})")
        else:
            cli_s, rows = min(results, key=lambda r: r[0])
            by_n = {int(r["params"]["strategy.spreadTicks"]): r for r in rows}
            match = all(by_n[n]["fills"] == ours[n][1]["fills"] for n in GRID)
            per_run = ", ".join(f"{by_n[n]['eventsPerSecond']:,}" for n in GRID)
            print(f"    mmkit CLI --grid --workers 2    {cli_s:>7.2f} s  "
                  f"{total / cli_s:>10,.0f} events/s  wall, best of {cli_repeats}; "
                  f"fills as in process: {'yes' if match else 'NO'}")
            print(f"      rows' own eventsPerSecond (read + align + run, per worker): {per_run}")
    print()


if __name__ == "__main__":
    main()
