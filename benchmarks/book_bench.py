"""Local order book, end to end, on real Binance USDⓈ-M diff depth: mmkit against two peers.

    python benchmarks/book_bench.py [--repeats N] [--budget SECONDS] [--apply-only]

For each recording (ETHUSDT 2024-08-08; ETHUSDT 2024-07-18→19), the REST snapshot line and every
`depthUpdate` line are read into memory first (file I/O is not timed). A timed run starts from
the raw JSON bytes: decode the snapshot and load it, then for every diff decode the JSON, skip
it if it precedes the snapshot, convert and apply its levels, and read the best bid and ask.
Every implementation decodes with orjson itself. Reported: the best of N runs (a slow peer stops
repeating once it has used `--budget` seconds), events/s, µs/event, and mmkit / peer: the peer's
time over mmkit's (above 1: mmkit is faster).

Implementations:
- mmkit: `DepthDecoder` (memoised exact decimal→ticks) + `BookSync` (pu chain, crossed check)
  + `OrderBook.bbo()`.
- python-binance: its `DepthCache` approach, reimplemented here because importing
  `binance.ws.depthcache` pulls in its network clients. It keys each side by the price
  *string*, stores `float(qty)`, deletes on a zero quantity, and answers `get_bids()` /
  `get_asks()` by converting every level to floats and sorting. python-binance compares the
  quantity with spot's "0.00000000", which never matches the futures "0.000", so it would
  keep empty levels; here the comparison uses "0.000" so its book is right at the same cost.
  Sequencing follows its manager: skip u <= lastUpdateId.
- cryptofeed: the C `order_book.OrderBook` (PyPI `order-book`), fed the way cryptofeed's
  Binance futures feed does (Decimal price and size, `del` on zero when present, pu chain
  check), top read with `.index(0)`; also fed floats, its fastest public use.

The data comes from ../shared/data (or $MMKIT_DATA); see its README.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from operator import itemgetter
from pathlib import Path

import orjson

from mmkit.book import BookSync, DepthDecoder
from mmkit.sim.instruments import default_specs

RECORDINGS = "market/binance_usdm_hftbacktest"
DATASETS = {
    "ETHUSDT 2024-08-08": ["ethusdt_20240808.gz"],
    "ETHUSDT 2024-07-18/19": ["ethusdt_20240718.gz", "ethusdt_20240719.gz"],
}
SPEC = default_specs()["ETHUSDT"]


def data_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    path = Path(os.environ.get("MMKIT_DATA", default))
    if not (path / RECORDINGS).is_dir():
        sys.exit(f"book_bench: recordings not found under {path / RECORDINGS} (set MMKIT_DATA)")
    return path


def read_dataset(data: Path, files: list[str]) -> tuple[bytes, list[bytes]]:
    """The snapshot's JSON and every depthUpdate message's JSON, in arrival order."""
    snapshot, diffs = None, []
    for name in files:
        with gzip.open(data / RECORDINGS / name, "rb") as lines:
            for line in lines:
                body = line.partition(b" ")[2].rstrip(b"\n")
                if body.startswith(b'{"lastUpdateId"'):
                    snapshot = body
                elif b'"depthUpdate"' in body[:80]:
                    diffs.append(body)
    if snapshot is None:
        sys.exit(f"book_bench: no REST snapshot in {files}")
    return snapshot, diffs


# -- the implementations: each returns the final (bid, bid qty, ask, ask qty) as strings ------


def run_mmkit(snapshot: bytes, diffs: list[bytes], read_top: bool) -> tuple[str, ...]:
    loads = orjson.loads
    decoder = DepthDecoder(SPEC)
    sync = BookSync()
    sync.on_snapshot(sync.request_snapshot(), decoder.snapshot(loads(snapshot)))
    book, on_diff, decode = sync.book, sync.on_diff, decoder.diff
    for line in diffs:
        if on_diff(decode(loads(line)["data"])) is not None:
            raise RuntimeError("mmkit: unexpected resync")
        if read_top:
            book.bbo()
    bid, bid_qty, ask, ask_qty = book.bbo()
    return SPEC.price_str(bid), SPEC.qty_str(bid_qty), SPEC.price_str(ask), SPEC.qty_str(ask_qty)


class PythonBinanceDepthCache:
    """python-binance's `DepthCache`, as written there (futures zero string, see above)."""

    ZERO = "0.000"

    def __init__(self):
        self._bids: dict[str, float] = {}
        self._asks: dict[str, float] = {}

    def add_bid(self, bid):
        self._bids[bid[0]] = float(bid[1])
        if bid[1] == self.ZERO:
            del self._bids[bid[0]]

    def add_ask(self, ask):
        self._asks[ask[0]] = float(ask[1])
        if ask[1] == self.ZERO:
            del self._asks[ask[0]]

    def get_bids(self):
        return self.sort_depth(self._bids, reverse=True)

    def get_asks(self):
        return self.sort_depth(self._asks, reverse=False)

    @staticmethod
    def sort_depth(vals, reverse=False):
        lst = [[float(price), float(quantity)] for price, quantity in vals.items()]
        return sorted(lst, key=itemgetter(0), reverse=reverse)


def run_python_binance(snapshot: bytes, diffs: list[bytes], read_top: bool) -> tuple[str, ...]:
    loads = orjson.loads
    cache = PythonBinanceDepthCache()
    body = loads(snapshot)
    for bid in body["bids"]:
        cache.add_bid(bid)
    for ask in body["asks"]:
        cache.add_ask(ask)
    last_update_id = body["lastUpdateId"]
    for line in diffs:
        msg = loads(line)["data"]
        if msg["u"] <= last_update_id:
            continue
        for bid in msg["b"]:
            cache.add_bid(bid)
        for ask in msg["a"]:
            cache.add_ask(ask)
        last_update_id = msg["u"]
        if read_top:
            cache.get_bids()[0], cache.get_asks()[0]
    return _floats_as_strings(cache.get_bids()[0] + cache.get_asks()[0])


def cryptofeed_runner(convert: Callable[[str], object]) -> Callable:
    from order_book import OrderBook

    def run(snapshot: bytes, diffs: list[bytes], read_top: bool) -> tuple[str, ...]:
        loads = orjson.loads
        book = OrderBook()
        body = loads(snapshot)
        book.bids = {convert(price): convert(qty) for price, qty in body["bids"]}
        book.asks = {convert(price): convert(qty) for price, qty in body["asks"]}
        last_update_id, started = body["lastUpdateId"], False
        for line in diffs:
            msg = loads(line)["data"]
            if not started:
                if msg["u"] < last_update_id:
                    continue
                started = True
            elif msg["pu"] != last_update_id:
                raise RuntimeError("cryptofeed: missing sequence number")
            last_update_id = msg["u"]
            for side, key in ((book.bids, "b"), (book.asks, "a")):
                for price_text, qty_text in msg[key]:
                    price, qty = convert(price_text), convert(qty_text)
                    if qty == 0:
                        if price in side:
                            del side[price]
                    else:
                        side[price] = qty
            if read_top:
                book.bids.index(0), book.asks.index(0)
        return _floats_as_strings(book.bids.index(0) + book.asks.index(0))

    return run


def _floats_as_strings(values) -> tuple[str, ...]:
    bid, bid_qty, ask, ask_qty = (Decimal(str(v)) for v in values)
    return SPEC.price_str(SPEC.to_ticks(bid)), SPEC.qty_str(SPEC.to_steps(bid_qty)), \
        SPEC.price_str(SPEC.to_ticks(ask)), SPEC.qty_str(SPEC.to_steps(ask_qty))


IMPLEMENTATIONS: dict[str, Callable[[bytes, list[bytes], bool], tuple]] = {
    "mmkit": run_mmkit,
    "python-binance DepthCache": run_python_binance,
    "cryptofeed order_book (Decimal)": cryptofeed_runner(Decimal),
    "cryptofeed order_book (float)": cryptofeed_runner(float),
}


def best_time(run, snapshot, diffs, read_top: bool, repeats: int, budget: float):
    """(best seconds, runs made, final top of book)."""
    best, spent, runs, result = float("inf"), 0.0, 0, None
    while runs < repeats and (runs == 0 or spent < budget):
        start = time.perf_counter()
        result = run(snapshot, diffs, read_top)
        elapsed = time.perf_counter() - start
        best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
    return best, runs, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per implementation")
    parser.add_argument("--budget", type=float, default=15.0,
                        help="stop repeating an implementation after this many seconds")
    parser.add_argument("--apply-only", action="store_true",
                        help="read the top of book once at the end, not after every event")
    args = parser.parse_args()
    data = data_dir()
    mode = "top of book read once at the end" if args.apply_only else "top of book after every event"
    print(f"python {sys.version.split()[0]}; {mode}; best of up to {args.repeats} runs")
    for name, files in DATASETS.items():
        snapshot, diffs = read_dataset(data, files)
        print(f"\n{name}: snapshot + {len(diffs):,} depthUpdate events "
              f"({sum(map(len, diffs)) / 1e6:.1f} MB of JSON)")
        timings, expected = {}, None
        for label, run in IMPLEMENTATIONS.items():
            seconds, runs, result = best_time(
                run, snapshot, diffs, not args.apply_only, args.repeats, args.budget
            )
            expected = expected or result
            if result != expected:
                sys.exit(f"book_bench: {label} ends at {result}, mmkit at {expected}")
            timings[label] = seconds
            print(f"  {label:33s} {len(diffs) / seconds:>11,.0f} events/s "
                  f"{seconds / len(diffs) * 1e6:9.2f} µs/event  (best of {runs})")
        mine = timings["mmkit"]
        for label, seconds in timings.items():
            if label != "mmkit":
                ratio = seconds / mine
                verdict = "faster" if ratio > 1 else "slower"
                print(f"  mmkit / {label:33s} {ratio:6.2f}× ({verdict})")
        print(f"  final top of book (all agree): {expected}")


if __name__ == "__main__":
    main()
