"""The simulator, end to end: matching-engine throughput on a real Binance USDⓈ-M recording
against hftbacktest, and order round trips over loopback REST against two other clients.

    python benchmarks/sim_bench.py [--repeats N] [--pairs N] [--queue risk_averse|prob_power]
                                   [--in-process] [--quick] [--skip-engine] [--skip-rest]

Timings are the best of N runs (`--repeats`, default 5 for the engines, 3 for REST; `--quick`:
2 and 1, and fewer REST pairs). Ratios are "mmkit / peer": the peer's time over mmkit's for
the same work (above 1: mmkit is faster).

1. Engine throughput (`mmkit.sim.engine.Engine`)
------------------------------------------------
Data: ETHUSDT 2024-08-08 (`market/binance_usdm_hftbacktest/ethusdt_20240808.gz`, 345 s).
mmkit reads it with `open_market` (hftbacktest reader, snapshot alignment) into a list of
`Timed` events before timing: 1 REST snapshot + 6,581 `depthUpdate` + 14,075 trades = 20,657
market events. A timed run builds an `Engine` (`default_specs(["ETHUSDT"])`, `EngineConfig`
with a large USDT balance so margin never refuses) and, for every event, calls
`Engine.advance(at)` when venue time moves (as `Venue.tick` does) and `Engine.apply(event)`.
With 10 or 100 resting orders ("slots"), half bids at best bid - k ticks and half asks at best
ask + k ticks (k = 0 .. n/2-1), 0.010 ETH each, post-only (GTX) LIMIT: the events `apply`
returns are scanned for TRADE updates (each one is a fill, partial fills included); an order
that is FILLED frees its slot and the slot is re-placed at the current touch minus k (a GTX
refusal leaves it free until the next event). events/s = 20,657 / run time. The same loop
with 0 orders runs over the synthetic market (`SyntheticMarket`, seed 0, the recording's
345 s span, preloaded the same way).

Peer: hftbacktest 2.4 (PyPI `hftbacktest`, Rust core driven from a numba `@njit` loop). The
same file is converted with hftbacktest's own `data.utils.binancefutures.convert` outside the
timed region: 452,115 rows, one per changed price level, trade or snapshot level. Its
`local_ts` values mark the message boundaries (20,663 distinct: the same messages, plus the
five diffs before the snapshot that mmkit's alignment drops and the recording's second
snapshot). A timed run builds nothing (the backtester is built before timing, it loads the
array) and steps `hbt.elapse(next_local_ts - now)` once per message, so the strategy code
runs once per message as on the mmkit side, with the same slot logic (GTX LIMIT 0.010, re-place
a slot whose order is no longer NEW/PARTIALLY_FILLED). Exchange model: no_partial_fill (its
partial_fill exchange stops with InvalidOrderStatus (14) mid-file with 100 orders in
hftbacktest 2.4.4); queue model RiskAverse (`--queue prob_power`: PowerProbQueueModel(3),
and mmkit's "prob_power"); constant order latency 0; feed latency is what the recording
holds (exchange side at `exch_ts`, strategy at `local_ts`). events/s = distinct message
steps / run time. Fills = `state_values(0).num_trades`. numba compilation is done in an
untimed warm-up run. A last row runs hftbacktest with one `elapse` over the whole span (no
strategy steps): the Rust core alone, for scale.
The two engines do not make the same fills (hftbacktest's strategy sees the book at
`local_ts`, ~1.3 s after the exchange; no partial fills): fill counts are printed to show
both sides did matching work, not as a comparison. On the mmkit side most fills come from
trade prints: the recording's trades arrive before the diff that removes the levels they took,
so a slot re-placed at the (stale) touch during a sweep is filled again by the sweep's next
print. With resting orders mmkit's cost is mostly `Engine.place`: the margin check keeps a
running sum per side, but walks the orders of the side that would reduce a position, and the
duplicate-id and open-order-count checks walk every open order.

2. Order round trips over loopback REST
---------------------------------------
The simulator (`tests.simkit.static_venue`: ETHUSDT static book, best bid 3000.00) runs in a
separate Python subprocess (uvicorn on 127.0.0.1, ephemeral port) so it does not share the
client's interpreter and GIL; `--in-process` serves it from a `ServerThread` in this process
instead (both then compete for one GIL, which skews the figures). In that subprocess
Binance's request-weight and order-count limits are lifted (module constants of
`mmkit.sim.server`, and the `rateLimits` that exchangeInfo advertises), because at the real
300 orders / 10 s every client would measure the limit. One round trip = POST
/fapi/v1/order (BUY LIMIT GTX 0.010 @ 2900.00, far from the touch; it rests) + DELETE
/fapi/v1/order of that orderId, sequentially, `--pairs` of them per run after 20 warm-up
pairs. Reported: round trips/s, and p50/p99 of the place and of the cancel latency, from
the best run. Clients:
- mmkit: `mmkit.binance.rest.RestClient` (async httpx; signs, keeps the clock offset and its
  rate-limit windows, which it seeds from exchangeInfo's rateLimits).
- binance-sdk: Binance's official `binance-sdk-derivatives-trading-usds-futures`
  (`DerivativesTradingUsdsFutures(...).rest_api.new_order / cancel_order`), configured as in
  tests/test_official_sdk.py.
- httpx baseline: one `httpx.Client`, query string built and HMAC-signed by hand: the floor a
  Python client over HTTP/1.1 can reach.

The data comes from ../shared/data (or $MMKIT_DATA); see its README.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mmkit.model import Timed  # noqa: E402
from mmkit.sim.engine import Engine, EngineConfig, OrderRequest, Reject  # noqa: E402
from mmkit.sim.instruments import default_specs  # noqa: E402
from mmkit.sim.market import SyntheticMarket, open_market  # noqa: E402

RECORDINGS = "market/binance_usdm_hftbacktest"
RECORDING = "ethusdt_20240808.gz"
SYMBOL = "ETHUSDT"
SPEC = default_specs([SYMBOL])[SYMBOL]
ORDER_COUNTS = (0, 10, 100)
ORDER_QTY = "0.010"
REST_PRICE = "2900.00"  # the static book's best bid is 3000.00
WARMUP_PAIRS = 20


def data_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    path = Path(os.environ.get("MMKIT_DATA", default))
    if not (path / RECORDINGS / RECORDING).is_file():
        sys.exit(f"sim_bench: recording not found: {path / RECORDINGS / RECORDING} "
                 "(set MMKIT_DATA)")
    return path


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>12,.0f}"


# -- 1. engine: mmkit ---------------------------------------------------------------------------


def run_mmkit(events: list[Timed], n_orders: int, queue: str) -> tuple[float, int, int]:
    """One timed replay; (seconds, fills, orders placed)."""
    engine = Engine({SYMBOL: SPEC}, EngineConfig(balances={"USDT": Decimal(10**9)},
                                                 queue_model=queue))
    market = engine.books[SYMBOL].market
    apply, advance, place = engine.apply, engine.advance, engine.place
    qty = SPEC.to_steps(ORDER_QTY)
    half = n_orders // 2
    free = list(range(n_orders))  # slots without a resting order
    slot_of: dict[int, int] = {}  # orderId → slot
    placed = 0
    last_at = None
    start = time.perf_counter()
    for timed in events:
        at = timed.at
        if at != last_at:
            advance(at)
            last_at = at
        out = apply(timed.event)
        if not n_orders:
            continue
        for event in out:
            if getattr(event, "execution_type", None) == "TRADE" and \
                    event.order.status == "FILLED":
                free.append(slot_of.pop(event.order.order_id))
        if free:
            bid, ask = market.best_bid, market.best_ask
            if bid is None or ask is None:
                continue
            still = []
            for slot in free:
                k = slot % half
                side, price = ("BUY", bid - k) if slot < half else ("SELL", ask + k)
                try:
                    order, _ = place(at, OrderRequest(SYMBOL, side, "LIMIT", qty, price, "GTX"))
                except Reject:
                    still.append(slot)
                    continue
                slot_of[order.order_id] = slot
                placed += 1
            free = still
    seconds = time.perf_counter() - start
    return seconds, len(engine.fills), placed


# -- 1. engine: hftbacktest ---------------------------------------------------------------------


def hftbacktest_peer(path: Path, queue: str):
    """(runner, message steps, rows) or the reason it cannot run here."""
    try:
        import numpy as np
        from hftbacktest import (
            GTX,
            LIMIT,
            BacktestAsset,
            HashMapMarketDepthBacktest,
        )
        from hftbacktest.data.utils.binancefutures import convert
        from hftbacktest.order import NEW, PARTIALLY_FILLED
        from numba import njit
    except Exception as exc:  # not installed, or numba/numpy mismatch
        return f"{type(exc).__name__}: {exc}"

    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
        data = convert(str(path), buffer_size=2_000_000)
    steps = np.unique(data["local_ts"]).astype(np.int64)
    tick = float(SPEC.tick_size)

    @njit
    def loop(hbt, steps, n_orders, qty, tick):
        half = n_orders // 2
        slots = np.zeros(max(n_orders, 1), np.uint64)
        next_id = 1
        done = 0
        hbt.wait_next_feed(False, 1_000_000_000_000)  # to the first message
        for i in range(1, len(steps)):
            now = hbt.current_timestamp
            if steps[i] > now and hbt.elapse(steps[i] - now) != 0:
                break
            done += 1
            if n_orders == 0:
                continue
            depth = hbt.depth(0)
            bid, ask = depth.best_bid_tick, depth.best_ask_tick
            if bid >= ask:
                continue
            orders = hbt.orders(0)
            for s in range(n_orders):
                if slots[s] != 0:
                    o = orders.get(slots[s])
                    if o is not None and (o.status == NEW or o.status == PARTIALLY_FILLED
                                          or o.req != 0):
                        continue
                k = s % half
                if s < half:
                    hbt.submit_buy_order(0, next_id, (bid - k) * tick, qty, GTX, LIMIT, False)
                else:
                    hbt.submit_sell_order(0, next_id, (ask + k) * tick, qty, GTX, LIMIT, False)
                slots[s] = next_id
                next_id += 1
            if done % 256 == 0:
                hbt.clear_inactive_orders(0)
        return done + 1, next_id - 1

    def build():
        asset = (BacktestAsset().data(data).linear_asset(1.0).constant_order_latency(0, 0)
                 .tick_size(tick).lot_size(float(SPEC.step_size))
                 .trading_value_fee_model(0.0002, 0.0005).no_partial_fill_exchange()
                 .last_trades_capacity(0))
        asset = (asset.power_prob_queue_model(3.0) if queue.startswith("prob_power")
                 else asset.risk_adverse_queue_model())
        return HashMapMarketDepthBacktest([asset])

    def run(n_orders: int | None) -> tuple[float, int, int, int]:
        """(seconds, message steps, fills, orders placed); None: one elapse, no steps."""
        hbt = build()
        start = time.perf_counter()
        if n_orders is None:
            hbt.elapse(10**15)
            done, placed = len(steps), 0
        else:
            done, placed = loop(hbt, steps, n_orders, float(ORDER_QTY), tick)
        seconds = time.perf_counter() - start
        fills = hbt.state_values(0).num_trades
        hbt.close()
        return seconds, done, fills, placed

    compile_start = time.perf_counter()
    run(10)  # numba compiles here
    compile_s = time.perf_counter() - compile_start
    return run, len(steps), len(data), compile_s


def best_of(repeats: int, fn, *args):
    results = [fn(*args) for _ in range(repeats)]
    return min(results, key=lambda r: r[0])


def engine_section(data: Path, repeats: int, queue: str) -> None:
    path = data / RECORDINGS / RECORDING
    events = list(open_market(path, SPEC))
    span_ms = events[-1].at - events[0].at
    synthetic = list(SyntheticMarket(SPEC, seed=0, duration_ms=span_ms))
    print(f"Engine throughput: ETHUSDT 2024-08-08, {len(events):,} market events over "
          f"{span_ms / 1000:.0f} s; queue model {queue}; best of {repeats}")

    peer = hftbacktest_peer(path, queue)
    if isinstance(peer, str):
        print(f"  hftbacktest: not measured ({peer})")
        peer = None
    else:
        peer_run, peer_steps, peer_rows, compile_s = peer
        print(f"  hftbacktest {_version('hftbacktest')}: the same file as {peer_rows:,} rows in "
              f"{peer_steps:,} messages (numba compile {compile_s:.1f} s, untimed)")
    print()
    header = (f"  {'orders':>6}  {'engine':<34} {'events/s':>12} {'µs/event':>9} "
              f"{'fills':>7} {'placed':>7}  {'mmkit / peer':>12}")
    print(header)
    print("  " + "-" * (len(header) - 2))
    for n in ORDER_COUNTS:
        seconds, fills, placed = best_of(repeats, run_mmkit, events, n, queue)
        ours = len(events) / seconds
        print(f"  {n:>6}  {'mmkit Engine':<34} {rate(len(events), seconds)} "
              f"{1e6 / ours:>9.2f} {fills:>7,} {placed:>7,}")
        if peer is not None:
            p_seconds, done, p_fills, p_placed = best_of(repeats, peer_run, n)
            theirs = done / p_seconds
            print(f"  {n:>6}  {'hftbacktest (elapse per message)':<34} {rate(done, p_seconds)} "
                  f"{1e6 / theirs:>9.2f} {p_fills:>7,} {p_placed:>7,}  {ours / theirs:>12.3f}")
    if peer is not None:
        p_seconds, done, _, _ = best_of(repeats, peer_run, None)
        seconds, _, _ = best_of(repeats, run_mmkit, events, 0, queue)
        print(f"  {0:>6}  {'hftbacktest (one elapse, no steps)':<34} {rate(done, p_seconds)} "
              f"{1e6 * p_seconds / done:>9.2f} {'':>7} {'':>7}  "
              f"{(len(events) / seconds) / (done / p_seconds):>12.3f}")
    seconds, _, _ = best_of(repeats, run_mmkit, synthetic, 0, queue)
    print(f"  {0:>6}  {'mmkit Engine, synthetic market':<34} {rate(len(synthetic), seconds)} "
          f"{1e6 * seconds / len(synthetic):>9.2f}   ({len(synthetic):,} synthetic events, "
          f"same span)")
    print()


# -- 2. REST round trips ------------------------------------------------------------------------

SERVER_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import mmkit.sim.server as server
from mmkit.sim.instruments import RATE_LIMITS
server.WEIGHT_LIMIT = server.ORDERS_10S = server.ORDERS_1M = 10**12
for entry in RATE_LIMITS:
    entry["limit"] = 10**12
from tests.simkit import serve
with serve() as running:
    print(running.port, flush=True)
    sys.stdin.read()
"""


class Server:
    """The simulator with a static book, in a subprocess (default) or on a thread here."""

    def __init__(self, in_process: bool):
        self.in_process = in_process
        self.proc = self.thread = None

    def __enter__(self) -> str:
        if self.in_process:
            from tests.simkit import serve

            self.thread = serve().start()
            return self.thread.base_url
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_SCRIPT.format(root=str(ROOT))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.proc.kill()
            sys.exit(f"sim_bench: the simulator subprocess did not start ({line!r})")
        return f"http://127.0.0.1:{line}"

    def __exit__(self, *exc) -> None:
        if self.thread is not None:
            self.thread.stop()
        if self.proc is not None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _lift_limits_in_process() -> None:
    import mmkit.sim.server as server
    from mmkit.sim.instruments import RATE_LIMITS

    server.WEIGHT_LIMIT = server.ORDERS_10S = server.ORDERS_1M = 10**12
    for entry in RATE_LIMITS:
        entry["limit"] = 10**12


Pair = tuple[float, float]  # (place seconds, cancel seconds)


async def _mmkit_pairs(base_url: str, pairs: int) -> list[Pair]:
    from mmkit.binance.limits import Limits
    from mmkit.binance.rest import RestClient
    from mmkit.binance.signing import Credentials
    from mmkit.sim.venue import SIM_API_KEY, SIM_API_SECRET

    async with RestClient(base_url, Credentials(SIM_API_KEY, SIM_API_SECRET)) as client:
        client.limits = Limits.from_rate_limits((await client.exchange_info())["rateLimits"])
        await client.sync_time()
        out = []
        clock = time.perf_counter
        for _ in range(pairs):
            t0 = clock()
            order = await client.place_order(symbol=SYMBOL, side="BUY", type="LIMIT",
                                             timeInForce="GTX", quantity=ORDER_QTY,
                                             price=REST_PRICE)
            t1 = clock()
            await client.cancel_order(SYMBOL, order_id=order["orderId"])
            out.append((t1 - t0, clock() - t1))
        return out


def mmkit_pairs(base_url: str, pairs: int) -> list[Pair]:
    return asyncio.run(_mmkit_pairs(base_url, pairs))


def sdk_pairs(base_url: str, pairs: int) -> list[Pair]:
    from binance_common.configuration import ConfigurationRestAPI
    from binance_sdk_derivatives_trading_usds_futures import DerivativesTradingUsdsFutures
    from binance_sdk_derivatives_trading_usds_futures.rest_api.models import (
        NewOrderSideEnum,
        NewOrderTimeInForceEnum,
        NewOrderTypeEnum,
    )

    from mmkit.sim.venue import SIM_API_KEY, SIM_API_SECRET

    api = DerivativesTradingUsdsFutures(config_rest_api=ConfigurationRestAPI(
        api_key=SIM_API_KEY, api_secret=SIM_API_SECRET, base_path=base_url, timeout=5000,
        retries=0)).rest_api
    out = []
    clock = time.perf_counter
    for _ in range(pairs):
        t0 = clock()
        order = api.new_order(symbol=SYMBOL, side=NewOrderSideEnum.BUY,
                              type=NewOrderTypeEnum.LIMIT,
                              time_in_force=NewOrderTimeInForceEnum.GTX,
                              quantity=float(ORDER_QTY), price=float(REST_PRICE)).data()
        t1 = clock()
        api.cancel_order(symbol=SYMBOL, order_id=order.order_id).data()
        out.append((t1 - t0, clock() - t1))
    return out


def httpx_pairs(base_url: str, pairs: int) -> list[Pair]:
    import httpx
    import orjson

    from mmkit.sim.venue import SIM_API_KEY, SIM_API_SECRET

    secret = SIM_API_SECRET.encode()

    def signed(params: dict) -> str:
        params["timestamp"] = int(time.time() * 1000)
        query = urlencode(params)
        return query + "&signature=" + hmac.new(secret, query.encode(),
                                                 hashlib.sha256).hexdigest()

    out = []
    clock = time.perf_counter
    with httpx.Client(base_url=base_url, headers={"X-MBX-APIKEY": SIM_API_KEY}) as http:
        for _ in range(pairs):
            t0 = clock()
            response = http.post("/fapi/v1/order?" + signed({
                "symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "timeInForce": "GTX",
                "quantity": ORDER_QTY, "price": REST_PRICE}))
            response.raise_for_status()
            order_id = orjson.loads(response.content)["orderId"]
            t1 = clock()
            http.delete("/fapi/v1/order?" + signed(
                {"symbol": SYMBOL, "orderId": order_id})).raise_for_status()
            out.append((t1 - t0, clock() - t1))
    return out


CLIENTS = {
    "mmkit RestClient": mmkit_pairs,
    "binance-sdk (official)": sdk_pairs,
    "httpx baseline": httpx_pairs,
}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 \
        else values[0]


def rest_section(pairs: int, repeats: int, in_process: bool) -> None:
    if in_process:
        _lift_limits_in_process()
    where = "on a thread of this process" if in_process else "in a subprocess"
    print(f"Order round trips over loopback REST: POST + DELETE /fapi/v1/order (GTX, far from "
          f"the touch), {pairs:,} pairs per run, best of {repeats}; simulator {where}, "
          "rate limits lifted")
    print()
    header = (f"  {'client':<24} {'pairs/s':>9} {'req/s':>9} {'place p50':>10} "
              f"{'p99':>8} {'cancel p50':>11} {'p99':>8}  {'mmkit / peer':>12}")
    print(header)
    print("  " + "-" * (len(header) - 2))
    results = {}
    with Server(in_process) as base_url:
        for name, fn in CLIENTS.items():
            try:
                fn(base_url, WARMUP_PAIRS)
            except Exception as exc:
                print(f"  {name:<24} failed: {type(exc).__name__}: {exc}")
                continue
            best = None
            for _ in range(repeats):
                run = fn(base_url, pairs)
                total = sum(p + c for p, c in run)
                if best is None or total < best[0]:
                    best = (total, run)
            results[name] = best
    mmkit_total = results.get("mmkit RestClient", (None,))[0]
    for name, (total, run) in results.items():
        place = [p * 1e3 for p, _ in run]
        cancel = [c * 1e3 for _, c in run]
        ratio = f"{total / mmkit_total:>12.3f}" if mmkit_total and name != "mmkit RestClient" \
            else ""
        print(f"  {name:<24} {len(run) / total:>9,.0f} {2 * len(run) / total:>9,.0f} "
              f"{percentile(place, 50):>8.3f}ms {percentile(place, 99):>6.3f}ms "
              f"{percentile(cancel, 50):>9.3f}ms {percentile(cancel, 99):>6.3f}ms  {ratio}")
    print()


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None,
                        help="best of N runs (default: 5 engine, 3 REST; --quick: 2 and 1)")
    parser.add_argument("--pairs", type=int, default=None,
                        help="place+cancel pairs per REST run (default 1000; --quick 200)")
    parser.add_argument("--queue", default="risk_averse", choices=["risk_averse", "prob_power"])
    parser.add_argument("--in-process", action="store_true",
                        help="serve the simulator from a thread of this process")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and pairs")
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--skip-rest", action="store_true")
    args = parser.parse_args()
    data = data_dir()
    engine_repeats = args.repeats or (2 if args.quick else 5)
    rest_repeats = args.repeats or (1 if args.quick else 3)
    pairs = args.pairs or (200 if args.quick else 1000)
    print(f"sim_bench: Python {sys.version.split()[0]}, mmkit {_version('mmkit')}, "
          f"binance-sdk {_version('binance-sdk-derivatives-trading-usds-futures')}, "
          f"httpx {_version('httpx')}")
    print()
    if not args.skip_engine:
        engine_section(data, engine_repeats, args.queue)
    if not args.skip_rest:
        rest_section(pairs, rest_repeats, args.in_process)


if __name__ == "__main__":
    main()
