"""The simulator's market feeds: recordings replayed, or a synthetic market, as pure
generators of `Timed(at, event)` (prices in ticks, quantities in steps of the symbol's spec).

Nothing here opens a socket or reads a clock; the replay readers read the files they are
given, and the synthetic market draws from `random.Random(seed)` only, so one seed is one
market.

Delivery time
-------------
`at` is venue time in ms. For a recording it is the exchange event time `E` of each message,
not the recorder's receive time: the venue replays the exchange, so the exchange's clock is the
venue's clock (the 2024 hftbacktest recorder's clock ran 1.3-1.5 s behind `E`, so its
receive times are not even the exchange's time plus a latency). Messages of different streams
reach a recorder slightly out of `E` order (up to ~40 ms in 2024, ~190 ms in 2023); the
arrival order is kept and `at` is the running maximum of `E`, so `at` never decreases (feeds
can be merged with `heapq.merge`) while each event keeps its own `E` in `event.ts`. The
receive time is kept in `meta["recv"]` (ms).

Snapshot alignment (data README, "Snapshot alignment")
------------------------------------------------------
A recorder logs the REST snapshot a few messages after the diffs started, so a reader buffers
until the snapshot, yields it first, and then continues in arrival order with: diffs whose
`u < lastUpdateId` dropped; the first kept diff must have `pu <= lastUpdateId <= u` (update ids
are shared by all symbols, so Binance's documented `U <= lastUpdateId` often fails while
this holds); every later diff must have `pu` = the previous `u`. Buffered trades are kept
when their trade time `T` is after the snapshot's `T` (older ones are already in the
snapshot), buffered book tickers when `u >= lastUpdateId`, mark prices when `E >=` the
snapshot's `E`. A break of the chain, a file without a snapshot before its end, or a malformed
line raises `InputError` with file:line. A later snapshot (a new session's file given as a
continuation) is ignored while the chain holds.

hftbacktest format (`*.gz`, the collector of nkaz001/hftbacktest)
------------------------------------------------------------------
gzip text, one message per line: `<local_ts> <json>`, `local_ts` an integer in ns (2024
files) or µs (2023 `.dat.gz` files), told apart by magnitude. `<json>` is a combined-stream
message `{"stream": "...", "data": {...}}` (`depthUpdate`, `trade`, `bookTicker`,
`markPriceUpdate`) or a REST depth body `{"lastUpdateId", "E", "T", "bids", "asks"}`.
Continuation files (`ethusdt_20240718.gz` then `ethusdt_20240719.gz`) are given as a list.

mmkit recording format (`*.jsonl` or `*.jsonl.gz`, written by `mmkit depth --record`)
-------------------------------------------------------------------------------------
UTF-8 JSON lines, one object per line, in receive order:

    {"recv": 1723161256561, "stream": "ethusdc@depth@0ms", "data": {"e": "depthUpdate", ...}}
    {"recv": 1723161256570, "snapshot": {"lastUpdateId": 5123107856276, "E": ..., "T": ...,
                                         "bids": [["2681.62", "16.969"], ...], "asks": [...]}}

- `recv`: the recorder's receive time, integer ms since the epoch (its own clock).
- `stream` + `data`: one combined-stream websocket message exactly as Binance sent it
  (`depthUpdate`, `trade`, `aggTrade`, `bookTicker`, `markPriceUpdate`; others are skipped).
- `snapshot`: a `GET /fapi/v1/depth` response body, verbatim.
Blank lines and lines starting with `#` are skipped. The same alignment rules apply.

The synthetic market
--------------------
`SyntheticMarket` is documented on the class and in docs/simulator-market.md; its parameters'
defaults (`SyntheticParams`) are what `scripts/calibrate_market.py` measures on the real
ETHUSDT recordings.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mmkit.book import DepthDecoder
from mmkit.errors import InputError
from mmkit.model import (
    BookTicker,
    DepthDiff,
    DepthSnapshot,
    MarketTrade,
    MarkPrice,
    Timed,
)
from mmkit.recording import (
    Paths,
    RawMessage,
    as_paths,
    hftbacktest_messages,
    is_mmkit_recording,
    recording_messages,
)
from mmkit.symbols import SymbolSpec

# -- alignment and decoding ----------------------------------------------------------------------


def _align(
    messages: Iterable[RawMessage],
    spec: SymbolSpec,
    include_book_ticker: bool,
    source_symbol: str | None,
) -> Iterator[Timed]:
    """Snapshot first, then the aligned, gap-checked stream (see the module docstring)."""
    decoder = DepthDecoder(spec)
    ticks, steps = decoder.ticks, decoder.steps
    symbol = spec.symbol
    buffer: list[tuple[int, Any, int]] = []  # (recv, data, line) before the snapshot
    last_id: int | None = None  # snapshot lastUpdateId, then the last kept diff's u
    bridged = False
    snap_t = snap_e = 0
    at = 0
    where = "start of input"

    def decode(data: dict, recv: int) -> Timed | None:
        """One data payload → Timed (or None to skip); checks the diff chain."""
        nonlocal last_id, bridged, at
        kind = data.get("e")
        event_ts = data.get("E", 0)
        if event_ts > at:
            at = event_ts
        if kind == "depthUpdate":
            u, pu = data["u"], data["pu"]
            if not bridged:
                if u < last_id:
                    return None
                if pu > last_id:
                    raise InputError(f"the first diff after the snapshot starts after it: "
                                     f"pu {pu} > lastUpdateId {last_id}", where, "pu")
                bridged = True
            elif pu != last_id:
                raise InputError(f"gap in the diff chain: pu {pu} != previous u {last_id}",
                                 where, "pu")
            last_id = u
            event = DepthDiff(symbol, event_ts, data["T"], data["U"], u, pu,
                              [(ticks[p], steps[q]) for p, q in data["b"]],
                              [(ticks[p], steps[q]) for p, q in data["a"]])
        elif kind == "trade":
            event = MarketTrade(symbol, event_ts, data["t"], ticks[data["p"]], steps[data["q"]],
                                data["m"])
        elif kind == "aggTrade":
            event = MarketTrade(symbol, event_ts, data["a"], ticks[data["p"]], steps[data["q"]],
                                data["m"])
        elif kind == "markPriceUpdate":
            event = MarkPrice(symbol, event_ts, Decimal(data["p"]), Decimal(data["i"]),
                              Decimal(data["r"]), data["T"])
        elif kind == "bookTicker" and include_book_ticker:
            event = BookTicker(symbol, event_ts, data["u"], ticks[data["b"]], steps[data["B"]],
                               ticks[data["a"]], steps[data["A"]])
        else:
            return None
        return Timed(at, event, {"recv": recv})

    def keep_buffered(data: dict) -> bool:
        kind = data.get("e")
        if kind == "depthUpdate":
            return True  # decode() drops u < lastUpdateId
        if kind in ("trade", "aggTrade"):
            return data["T"] > snap_t
        if kind == "bookTicker":
            return data["u"] >= last_id
        return data.get("E", 0) >= snap_e

    for recv, message, name, number in messages:
        where = f"{name}:{number}"
        try:
            if "lastUpdateId" in message:
                if last_id is not None:
                    continue  # a later session's snapshot: the chain decides
                snapshot = decoder.snapshot(message)
                snapshot.symbol = symbol
                last_id, snap_t, snap_e = snapshot.last_update_id, message.get("T", 0), snapshot.ts
                at = snapshot.ts
                yield Timed(at, snapshot, {"recv": recv})
                for b_recv, data, b_number in buffer:
                    where = f"{name}:{b_number}"
                    if keep_buffered(data):
                        timed = decode(data, b_recv)
                        if timed is not None:
                            yield timed
                buffer.clear()
                continue
            data = message["data"]
            if source_symbol is not None and data.get("s") != source_symbol:
                continue
            if last_id is None:
                buffer.append((recv, data, number))
                continue
            timed = decode(data, recv)
            if timed is not None:
                yield timed
        except InputError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed message: {exc!r}", where) from None
    if last_id is None:
        raise InputError("no REST depth snapshot in the recording (a continuation file "
                         "needs the file before it)", where)


def replay_hftbacktest(
    path: Paths,
    spec: SymbolSpec,
    *,
    include_book_ticker: bool = False,
    source_symbol: str | None = None,
) -> Iterator[Timed]:
    """Replay hftbacktest `<local_ts> <json>` gzip files (one path, or a session's files in
    order): the aligned snapshot, then diffs, trades and mark prices (and book tickers when
    `include_book_ticker`), as events of `spec.symbol` (so ETHUSDT data can drive ETHUSDC).
    `source_symbol` keeps only that symbol's messages (default: all)."""
    return _align(hftbacktest_messages(path), spec, include_book_ticker, source_symbol)


def replay_recording(
    path: Paths,
    spec: SymbolSpec,
    *,
    include_book_ticker: bool = False,
    source_symbol: str | None = None,
) -> Iterator[Timed]:
    """Replay mmkit's own `.jsonl[.gz]` recordings (format in the module docstring)."""
    return _align(recording_messages(path), spec, include_book_ticker, source_symbol)


def open_market(
    source: Paths | SymbolSpec,
    spec: SymbolSpec | None = None,
    *,
    seed: int = 0,
    start_ms: int = 0,
    params: SyntheticParams | None = None,
    include_book_ticker: bool = False,
) -> Iterator[Timed]:
    """A market feed by source: a `SymbolSpec` (or the word "synthetic" with `spec`) gives the
    synthetic market; a path or list of paths a replay, the reader picked by file name
    (`.jsonl`/`.jsonl.gz`: mmkit's recording; other `.gz`: hftbacktest). Without `spec`, the
    symbol is read from the file name (`ethusdt_20240808.gz` → ETHUSDT, from the simulator's
    listed instruments)."""
    if isinstance(source, SymbolSpec):
        return iter(SyntheticMarket(source, seed=seed, params=params, start_ms=start_ms))
    if isinstance(source, str) and source == "synthetic":
        if spec is None:
            raise ValueError("the synthetic market needs a SymbolSpec")
        return iter(SyntheticMarket(spec, seed=seed, params=params, start_ms=start_ms))
    paths = as_paths(source)
    if not paths:
        raise ValueError("no market files given")
    if spec is None:
        from mmkit.sim.instruments import default_specs

        specs = default_specs()
        symbol = paths[0].name.split("_")[0].split(".")[0].upper()
        if symbol not in specs:
            symbol = recorded_symbol(paths)
        if symbol not in specs:
            raise ValueError(f"cannot tell the symbol of {paths[0]}; pass a SymbolSpec")
        spec = specs[symbol]
    if all(is_mmkit_recording(p) for p in paths):
        return replay_recording(paths, spec, include_book_ticker=include_book_ticker)
    if any(is_mmkit_recording(p) for p in paths):
        raise ValueError("mixed recording formats: give hftbacktest or mmkit files, not both")
    return replay_hftbacktest(paths, spec, include_book_ticker=include_book_ticker)


def recorded_symbol(paths: list) -> str | None:
    """The symbol of the first stream message in a recording (`s` of its data), or None."""
    from mmkit.recording import read_messages

    for _, message, _, _ in read_messages(paths):
        data = message.get("data") if isinstance(message, dict) else None
        if isinstance(data, dict) and data.get("s"):
            return str(data["s"]).upper()
    return None


# -- the synthetic market ----------------------------------------------------------------------


DEFAULT_START_MS = 1_723_161_600_000  # 2024-08-09 00:00:00 UTC, the end of the 08-08 recording
FUNDING_PERIOD_MS = 8 * 3600 * 1000  # funding at 00:00, 08:00 and 16:00 UTC
_NEAR_TICKS = 50  # the churn "near the top" is within this many ticks of the best level
_TABLE = 4096  # quantile table size for the lognormal draws


# First mids of the 2024-08-08 recordings: where a synthetic market of that base asset starts.
START_PRICES = {"ETH": "2682.00", "BTC": "61436.00"}


@dataclass(frozen=True)
class SyntheticParams:
    """The synthetic market's parameters. Defaults: `scripts/calibrate_market.py` on the real
    ETHUSDT recordings (2024-08-08 and 2024-07-18/19, 824 s), rounded. ETHUSDC has the same
    tick (0.01) and step (0.001) and no public recording, so the ETHUSDT numbers, which are in
    ticks and steps, are used as they are; scale `trade_rate` and the depth down for a
    thinner market. Quantities are in steps, prices in ticks, times in ms unless named."""

    start_price: str | None = None  # None: START_PRICES by base asset (ETH: the 08-08 first mid)
    book_levels: int = 1000  # levels per side (the REST snapshot's limit)
    diff_interval_ms: int = 52  # median gap between depthUpdate events
    near_levels_per_diff: float = 8.8  # levels changed within 50 ticks of the best, per diff
    far_levels_per_diff: float = 41.7  # levels changed deeper, per diff
    wide_fraction: float = 0.004  # share of time the spread is wider than 1 tick
    wide_extra_ticks: float = 4.64  # mean (spread - 1) when wide
    depth_median: tuple[int, ...] = (36783, 368, 636, 408, 596, 584, 564, 551, 548, 444,
                                     444, 807, 874, 904, 824, 725, 726, 622, 771, 920)
    depth_sigma: float = 2.52  # log-sd of a level's qty around its median (levels 2..)
    depth_sigma_top: float = 1.62  # the same for the best level
    deep_median: int = 1171  # median qty of levels 21..1000
    level_gap_near: float = 1.97  # mean ticks between neighbouring levels 1..20
    level_gap_far: float = 1.38  # mean ticks between neighbouring levels 20..1000
    trade_rate: float = 33.7  # trades (fills) per second
    fills_per_order: float = 3.94  # fills per taker order (same ms, same side)
    trade_branching: float = 0.8  # Hawkes branching ratio of taker orders
    trade_decay: float = 3.6  # Hawkes kernel decay, per second
    trade_size_mu: float = 4.33  # ln(fill qty in steps): mean
    trade_size_sigma: float = 2.2  # ln(fill qty in steps): sd
    buy_share: float = 0.43  # share of fills whose taker buys
    vol_calm_bps: float = 0.728  # 1 s mid volatility, calm regime
    vol_volatile_bps: float = 1.249  # 1 s mid volatility, volatile regime
    volatile_fraction: float = 0.227  # share of time in the volatile regime
    volatile_mean_s: float = 6.4  # mean length of a volatile spell
    jump_per_hour: float = 17.5  # rate of jumps of the fair price
    jump_bps: float = 5.37  # mean absolute jump
    funding_rate: str = "0.00010000"
    mark_interval_ms: int = 1000
    first_update_id: int = 5_123_107_856_276  # the 08-08 snapshot's lastUpdateId
    first_trade_id: int = 4_308_068_523

    def __post_init__(self) -> None:
        if self.book_levels < 25 or self.diff_interval_ms <= 0 or self.mark_interval_ms <= 0:
            raise ValueError("book_levels >= 25, diff_interval_ms > 0, mark_interval_ms > 0")
        if not 0 <= self.trade_branching < 1:
            raise ValueError("trade_branching must be in [0, 1)")
        if not 0 <= self.volatile_fraction < 1 or not 0 <= self.wide_fraction < 1:
            raise ValueError("volatile_fraction and wide_fraction must be in [0, 1)")
        if len(self.depth_median) < 1 or min(self.depth_median) <= 0:
            raise ValueError("depth_median needs positive quantities")


def _lognormal_table(sigma: float, mu: float = 0.0) -> list[float]:
    """exp(mu + sigma·z) at `_TABLE` equally spaced quantiles of z ~ N(0, 1): a draw is one
    `random()` and an index, several times cheaper than `lognormvariate`."""
    from statistics import NormalDist

    inv = NormalDist().inv_cdf
    return [math.exp(mu + sigma * inv((i + 0.5) / _TABLE)) for i in range(_TABLE)]


class SyntheticMarket:
    """An endless (or `duration_ms` long) synthetic market for one symbol, deterministic per
    `seed`. Iterating it starts the market afresh, so two iterations are equal.

    - A fair price (float ticks) follows a random walk whose volatility switches between a
      calm and a volatile regime (two-state Markov chain), with rare exponential jumps.
    - The book is `book_levels` levels a side. Every `diff_interval_ms` the top follows the
      fair price: best bid = floor(fair − (s−1)/2), best ask = bid + s, with spread s = 1 tick
      except for a `wide_fraction` of diffs. Levels the top moves across are removed, the
      new best levels are filled, and a few levels near the top and deeper are reset
      (quantities lognormal around the calibrated median of their level), keeping the level
      density of the real book. Each diff is a `DepthDiff` with consecutive ids (pu = the
      previous u); diffs with no change are not sent.
    - Taker orders arrive as a Hawkes process; each is a burst of fills at the same ms, each
      fill lognormal in size and taken from the best level of the other side. A fill that
      exhausts the level removes it, the next fill takes the next level, and the fair price
      moves to the new mid: the trade moved the market.
    - A `MarkPrice` every `mark_interval_ms` (mark = the fair price to 1/100 tick), funding
      `funding_rate`, next funding on the 8-hour boundary (00/08/16 UTC).

    The book is never crossed, every price is on tick and every quantity a positive number
    of steps.
    """

    def __init__(self, spec: SymbolSpec, seed: int = 0, params: SyntheticParams | None = None,
                 start_ms: int = DEFAULT_START_MS, *, duration_ms: int | None = None):
        self.spec = spec
        self.seed = seed
        self.params = params or SyntheticParams()
        self.start_ms = int(start_ms)
        self.duration_ms = duration_ms

    def __iter__(self) -> Iterator[Timed]:
        return _Generator(self).run()


class _Generator:
    """The state of one run of a `SyntheticMarket`."""

    def __init__(self, market: SyntheticMarket):
        p = self.p = market.params
        spec = self.spec = market.spec
        self.symbol = spec.symbol
        self.rng = random.Random(market.seed)
        self.start_ms = market.start_ms
        self.end_ms = None if market.duration_ms is None else market.start_ms + market.duration_ms
        self.tick = spec.tick_size
        self.fair = float(spec.round_price(Decimal(start_price(p, spec)), "BUY")) + 0.5
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.pending_bids: dict[int, int] = {}
        self.pending_asks: dict[int, int] = {}
        self.last_u = p.first_update_id
        self.trade_id = p.first_trade_id
        self.volatile = False
        self.top_table = _lognormal_table(p.depth_sigma_top)
        self.level_table = _lognormal_table(p.depth_sigma)
        self.size_table = [max(1, round(q)) for q in
                           _lognormal_table(p.trade_size_sigma, p.trade_size_mu)]
        near = [float(q) for q in p.depth_median[1:]] or [float(p.depth_median[0])]
        span = int(len(near) * p.level_gap_near) + 1
        # median qty by distance (ticks) from the best: level ≈ 1 + distance / gap
        self.median_by_distance = [float(p.depth_median[0])] + [
            near[min(len(near) - 1, int((d - 1) / p.level_gap_near))] for d in range(1, span)
        ]
        self.deep_median = float(p.deep_median)
        self.max_qty = int(p.depth_median[0] * 1000)
        self.far_table = [min(self.max_qty, max(1, int(self.deep_median * x)))
                          for x in self.level_table]
        self.occ_near = min(1.0, 1 / p.level_gap_near)
        self.occ_far = min(1.0, 1 / p.level_gap_far)

    # -- quantities ----------------------------------------------------------------------

    def draw_qty(self, distance: int) -> int:
        r = self.rng.random
        if distance == 0:
            q = self.median_by_distance[0] * self.top_table[int(r() * _TABLE)]
        else:
            median = (self.median_by_distance[distance]
                      if distance < len(self.median_by_distance) else self.deep_median)
            q = median * self.level_table[int(r() * _TABLE)]
        return min(self.max_qty, max(1, int(q)))

    # -- the initial book ------------------------------------------------------------------

    def build_book(self) -> None:
        p, rng = self.p, self.rng
        bid = math.floor(self.fair)
        ask = bid + 1
        for side, best, away in ((self.bids, bid, -1), (self.asks, ask, 1)):
            price, distance = best, 0
            for level in range(p.book_levels):
                side[price] = self.draw_qty(distance)
                gap_mean = p.level_gap_near if level < 20 else p.level_gap_far
                gap = 1 + int(rng.expovariate(1 / gap_mean) if gap_mean > 1 else 0)
                price += away * gap
                distance += gap
        self.best_bid, self.best_ask = bid, ask
        self.low_bid = min(self.bids)
        self.high_ask = max(self.asks)

    # -- book changes (each recorded for the next diff) --------------------------------------

    def set_bid(self, price: int, qty: int) -> None:
        if qty:
            self.bids[price] = qty
        else:
            self.bids.pop(price, None)
        self.pending_bids[price] = qty

    def set_ask(self, price: int, qty: int) -> None:
        if qty:
            self.asks[price] = qty
        else:
            self.asks.pop(price, None)
        self.pending_asks[price] = qty

    def move_top(self, bid: int, ask: int) -> None:
        """Make `bid`/`ask` the best levels (bid < ask): remove what is inside, fill the
        ticks the top moved over at the near-top level density."""
        rng = self.rng
        bids, asks = self.bids, self.asks
        # remove first, so the two sides never overlap
        if self.best_bid > bid:
            for price in range(bid + 1, self.best_bid + 1):
                if price in bids:
                    self.set_bid(price, 0)
        if self.best_ask < ask:
            for price in range(self.best_ask, ask):
                if price in asks:
                    self.set_ask(price, 0)
        if self.best_bid < bid:
            for price in range(max(self.best_bid + 1, bid - _NEAR_TICKS), bid):
                if price not in bids and rng.random() < self.occ_near:
                    self.set_bid(price, self.draw_qty(bid - price))
        if self.best_ask > ask:
            for price in range(ask + 1, min(self.best_ask, ask + _NEAR_TICKS)):
                if price not in asks and rng.random() < self.occ_near:
                    self.set_ask(price, self.draw_qty(price - ask))
        if bid not in bids:
            self.set_bid(bid, self.draw_qty(0))
        if ask not in asks:
            self.set_ask(ask, self.draw_qty(0))
        self.best_bid, self.best_ask = bid, ask
        # a move across the whole side (a big jump) leaves the far-end pointers inside
        self.low_bid = min(self.low_bid, bid)
        self.high_ask = max(self.high_ask, ask)

    def churn(self) -> None:
        """Reset a few levels near the top and deeper, at the level density of the real book,
        and keep each side `book_levels` deep. (The hot loop of the generator: inlined.)"""
        p = self.p
        r = self.rng.random
        bids, asks = self.bids, self.asks
        pending_bids, pending_asks = self.pending_bids, self.pending_asks
        bid, ask = self.best_bid, self.best_ask
        medians, level_table, max_qty = self.median_by_distance, self.level_table, self.max_qty
        n_medians = len(medians)
        deep = self.deep_median

        count = p.near_levels_per_diff
        occupancy = self.occ_near
        for _ in range(int(count) + (r() < count - int(count))):
            x = r() * 2
            buy_side = x < 1
            distance = int((x if buy_side else x - 1) * (_NEAR_TICKS + 1))
            if distance == 0:
                qty = self.draw_qty(0)
            elif r() < occupancy:
                median = medians[distance] if distance < n_medians else deep
                qty = int(median * level_table[int(r() * _TABLE)])
                qty = 1 if qty < 1 else (max_qty if qty > max_qty else qty)
            else:
                qty = 0
            if buy_side:
                price = bid - distance
                if price < self.low_bid:
                    continue
                if qty:
                    bids[price] = pending_bids[price] = qty
                elif price in bids:
                    del bids[price]
                    pending_bids[price] = 0
            else:
                price = ask + distance
                if price > self.high_ask:
                    continue
                if qty:
                    asks[price] = pending_asks[price] = qty
                elif price in asks:
                    del asks[price]
                    pending_asks[price] = 0

        count = p.far_levels_per_diff
        occupancy = self.occ_far
        far_table = self.far_table
        scale = _TABLE / occupancy if occupancy > 0 else 0.0
        far_start = _NEAR_TICKS + 1
        bid_span = bid - self.low_bid - far_start + 1
        ask_span = self.high_ask - ask - far_start + 1
        for _ in range(int(count) + (r() < count - int(count))):
            x = r() * 2
            if x < 1:
                if bid_span <= 0:
                    continue
                price = bid - far_start - int(x * bid_span)
                y = r()  # one draw: occupied or not, and the quantity's quantile
                if y < occupancy:
                    bids[price] = pending_bids[price] = far_table[int(y * scale)]
                elif price in bids:
                    del bids[price]
                    pending_bids[price] = 0
            else:
                if ask_span <= 0:
                    continue
                price = ask + far_start + int((x - 1) * ask_span)
                y = r()
                if y < occupancy:
                    asks[price] = pending_asks[price] = far_table[int(y * scale)]
                elif price in asks:
                    del asks[price]
                    pending_asks[price] = 0
        self.keep_depth()

    def keep_depth(self) -> None:
        """Extend or trim the far end so each side has about `book_levels` levels."""
        p, rng = self.p, self.rng
        target = p.book_levels
        bids, asks = self.bids, self.asks
        while len(bids) < target:
            self.low_bid -= 1 + int(rng.expovariate(1 / p.level_gap_far))
            self.set_bid(self.low_bid, self.draw_qty(self.best_bid - self.low_bid))
        while len(bids) > target + 50:
            if self.low_bid in bids:
                self.set_bid(self.low_bid, 0)
            self.low_bid += 1
        while self.low_bid not in bids:
            self.low_bid += 1
        while len(asks) < target:
            self.high_ask += 1 + int(rng.expovariate(1 / p.level_gap_far))
            self.set_ask(self.high_ask, self.draw_qty(self.high_ask - self.best_ask))
        while len(asks) > target + 50:
            if self.high_ask in asks:
                self.set_ask(self.high_ask, 0)
            self.high_ask -= 1
        while self.high_ask not in asks:
            self.high_ask -= 1

    # -- trades ------------------------------------------------------------------------------

    def take(self, buy: bool, size: int) -> tuple[int, int]:
        """One fill of a taker order against the best level of the other side: (price, qty).
        An exhausted level goes, and the fair price moves to the new mid."""
        if buy:
            price = self.best_ask
            level = self.asks[price]
            qty = min(size, level)
            if qty < level:
                self.set_ask(price, level - qty)
            else:
                self.set_ask(price, 0)
                nxt = price + 1
                while nxt not in self.asks and nxt <= self.high_ask:
                    nxt += 1
                if nxt > self.high_ask:  # the side is gone: a new level behind it
                    self.set_ask(nxt, self.draw_qty(0))
                    self.high_ask = nxt
                self.best_ask = nxt
                self.fair = max(self.fair, price + 0.5)
        else:
            price = self.best_bid
            level = self.bids[price]
            qty = min(size, level)
            if qty < level:
                self.set_bid(price, level - qty)
            else:
                self.set_bid(price, 0)
                nxt = price - 1
                while nxt not in self.bids and nxt >= self.low_bid:
                    nxt -= 1
                if nxt < self.low_bid:
                    self.set_bid(nxt, self.draw_qty(0))
                    self.low_bid = nxt
                self.best_bid = nxt
                self.fair = min(self.fair, price - 0.5)
        return price, qty

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> Iterator[Timed]:
        p, rng = self.p, self.rng
        symbol = self.symbol
        r, gauss, expovariate = rng.random, rng.gauss, rng.expovariate
        self.build_book()
        now = self.start_ms
        end = self.end_ms
        yield Timed(now, DepthSnapshot(
            symbol, now, self.last_u,
            sorted(self.bids.items(), reverse=True)[: p.book_levels],
            sorted(self.asks.items())[: p.book_levels],
        ))

        dt = p.diff_interval_ms / 1000
        price_ticks = float(Decimal(start_price(p, self.spec)) / self.tick)
        step_sigma = {
            False: p.vol_calm_bps * 1e-4 * price_ticks * math.sqrt(dt),
            True: p.vol_volatile_bps * 1e-4 * price_ticks * math.sqrt(dt),
        }
        leave_volatile = min(1.0, dt / p.volatile_mean_s) if p.volatile_mean_s > 0 else 1.0
        enter_volatile = min(1.0, leave_volatile * p.volatile_fraction
                             / (1 - p.volatile_fraction))
        jump_prob = p.jump_per_hour / 3600 * dt
        jump_ticks = p.jump_bps * 1e-4 * price_ticks
        wide_extra = max(0.0, p.wide_extra_ticks - 1)
        fair_floor = 4.0 * p.book_levels * max(p.level_gap_near, p.level_gap_far) + 100

        order_rate = p.trade_rate / p.fills_per_order
        baseline = order_rate * (1 - p.trade_branching)  # per second
        decay = p.trade_decay
        excite = p.trade_branching * decay
        excess = 0.0
        stop_fill = 1 / p.fills_per_order
        log_more = math.log(1 - stop_fill) if stop_fill < 1 else None
        size_table = self.size_table
        funding = Decimal(p.funding_rate)
        mark_places = Decimal(1).scaleb(-(self.tick.normalize().as_tuple().exponent * -1 + 2))
        interval = p.mark_interval_ms

        def next_order(t: float) -> float:
            """The next taker order's time (ms) after one at t: exact Hawkes simulation with
            an exponential kernel (Dassios & Zhao 2013)."""
            nonlocal excess
            wait = expovariate(baseline) if baseline > 0 else math.inf
            if excess > 0:
                d = 1 + decay * math.log(1 - r()) / excess
                if d > 0:
                    wait = min(wait, -math.log(d) / decay)
            excess = excess * math.exp(-decay * wait) + excite
            return t + wait * 1000

        next_diff = now + p.diff_interval_ms
        next_mark = (now // interval + 1) * interval
        order_at = next_order(float(now))
        while True:
            order_ms = int(order_at)
            t = min(next_diff, next_mark, order_ms)
            if end is not None and t > end:
                return
            if order_ms == t:
                buy = r() < p.buy_share
                fills = 1 if log_more is None else 1 + int(math.log(1 - r()) / log_more)
                for _ in range(fills):
                    size = size_table[int(r() * _TABLE)]
                    price, qty = self.take(buy, size)
                    self.trade_id += 1
                    yield Timed(t, MarketTrade(symbol, t, self.trade_id, price, qty, not buy))
                order_at = next_order(order_at)
            elif next_diff == t:
                next_diff += p.diff_interval_ms
                if self.volatile:
                    self.volatile = r() >= leave_volatile
                else:
                    self.volatile = r() < enter_volatile
                self.fair += gauss(0.0, step_sigma[self.volatile])
                if r() < jump_prob:
                    size = expovariate(1 / jump_ticks) if jump_ticks > 0 else 0.0
                    self.fair += size if r() < 0.5 else -size
                spread = 1
                if r() < p.wide_fraction:
                    spread = 2 + (int(expovariate(1 / wide_extra)) if wide_extra > 0 else 0)
                if self.fair < fair_floor:  # keep the whole book above zero
                    self.fair = fair_floor
                bid = math.floor(self.fair - (spread - 1) / 2)
                self.move_top(bid, bid + spread)
                self.churn()
                if self.pending_bids or self.pending_asks:
                    first = self.last_u + 1 + int(r() * 200)
                    last = first + int(r() * 5000)
                    diff = DepthDiff(symbol, t, t, first, last, self.last_u,
                                     sorted(self.pending_bids.items()),
                                     sorted(self.pending_asks.items()))
                    self.last_u = last
                    self.pending_bids = {}
                    self.pending_asks = {}
                    yield Timed(t, diff)
            else:
                next_mark += interval
                mark = (Decimal(round(self.fair * 100)) * self.tick / 100).quantize(mark_places)
                basis = Decimal(round(gauss(0.0, 1.0))) / 10000  # whole bps
                index = (mark * (1 - basis)).quantize(mark_places)
                next_funding = (t // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS
                yield Timed(t, MarkPrice(symbol, t, mark, index, funding, next_funding))


def start_price(params: SyntheticParams, spec: SymbolSpec) -> str:
    return params.start_price or START_PRICES.get(spec.base_asset, START_PRICES["ETH"])
