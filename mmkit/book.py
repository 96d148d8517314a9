"""The client-side local order book: levels in ticks and steps, and Binance's futures sync rules.

Pure: no I/O and no clock. The shell decodes the wire, passes events in with the times it saw
them, fetches snapshots when told to, and reads the book.

- `DecimalUnits` and `DepthDecoder` turn the venue's decimal strings into ticks and steps,
  exactly and fast (this is the hot spot of an end-to-end depth pipeline).
- `OrderBook` holds one symbol's L2 book: price ticks → quantity steps per side, with the best
  level of each side kept in O(1) amortised.
- `BookSync` applies Binance's USDⓈ-M snapshot + diff procedure as a state machine and says when
  the book has to be rebuilt (`Resync`).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from mmkit.model import BookTicker, DepthDiff, DepthSnapshot, Level
from mmkit.symbols import SymbolSpec

# -- decimal text → integer units ------------------------------------------------------------


_FAST_MAX_LEN = 18  # longer text goes to the spec, whose Decimal context has 28 digits


class DecimalUnits(dict):
    """Exact decimal text → integer count of one unit (a tick or a step), memoised.

    A depth stream repeats a few thousand price and quantity strings over and over, so a dict
    hit (about ten times cheaper than any parse) serves almost every level; `units[text]` is
    the whole fast path. A miss is parsed with integers only: the digits without the point,
    scaled by the unit. Text outside the plain `digits[.digits]` form, or a value not on the
    unit, goes to `fallback` (`SymbolSpec.to_ticks` / `to_steps`), so the answer, a number or
    a ValueError, is always the spec's. The memo is cleared when it reaches `limit` entries.
    """

    __slots__ = ("_decimals", "_fallback", "_limit", "_scaled_unit")

    def __init__(self, unit: Decimal, fallback: Callable[[Any], int], limit: int = 1 << 16):
        super().__init__()
        exponent = unit.normalize().as_tuple().exponent
        self._decimals = max(0, -exponent)
        self._scaled_unit = int(unit.scaleb(self._decimals))  # unit × 10^decimals, exact
        self._fallback = fallback
        self._limit = limit

    def __missing__(self, text: str) -> int:
        value = self.parse(text)
        if len(self) >= self._limit:
            self.clear()
        self[text] = value
        return value

    def parse(self, text: Any) -> int:
        """The exact unit count of `text`, without the memo."""
        if type(text) is not str or len(text) > _FAST_MAX_LEN:
            return self._fallback(text)
        whole, _, fraction = text.partition(".")
        digits = whole + fraction
        if not (digits.isascii() and digits.isdigit()):
            return self._fallback(text)
        shift = self._decimals - len(fraction)
        if not shift and self._scaled_unit == 1:
            return int(digits)  # the usual wire form: as many decimals as the unit has
        numerator = int(digits) * 10 ** max(shift, 0)
        denominator = self._scaled_unit * 10 ** max(-shift, 0)
        units, remainder = divmod(numerator, denominator)
        return self._fallback(text) if remainder else units


class DepthDecoder:
    """Decoded Binance JSON (`depthUpdate`, REST depth, `bookTicker`) → model events in ticks
    and steps, for one symbol."""

    def __init__(self, spec: SymbolSpec, memo_limit: int = 1 << 16):
        self.spec = spec
        self.ticks = DecimalUnits(spec.tick_size, spec.to_ticks, memo_limit)
        self.steps = DecimalUnits(spec.step_size, spec.to_steps, memo_limit)

    def levels(self, raw: Iterable[list[str]]) -> list[Level]:
        ticks, steps = self.ticks, self.steps
        return [(ticks[price], steps[qty]) for price, qty in raw]

    def diff(self, data: dict[str, Any]) -> DepthDiff:
        """A `depthUpdate` payload (the `data` of a combined-stream message)."""
        return DepthDiff(
            data["s"], data["E"], data["T"], data["U"], data["u"], data["pu"],
            self.levels(data["b"]), self.levels(data["a"]),
        )

    def snapshot(self, body: dict[str, Any]) -> DepthSnapshot:
        """A `GET /fapi/v1/depth` response body; `ts` is its `E`."""
        return DepthSnapshot(
            self.spec.symbol, body["E"], body["lastUpdateId"],
            self.levels(body["bids"]), self.levels(body["asks"]),
        )

    def book_ticker(self, data: dict[str, Any]) -> BookTicker:
        ticks, steps = self.ticks, self.steps
        return BookTicker(
            data["s"], data["E"], data["u"],
            ticks[data["b"]], steps[data["B"]], ticks[data["a"]], steps[data["A"]],
        )


# -- the book ----------------------------------------------------------------------------------

_NO_BID = -(1 << 63)  # below any price: every real bid is better
_NO_ASK = 1 << 63  # above any price: every real ask is better
_REPAIR_SCAN = 64  # ticks walked from a removed best level before falling back to a full scan


class OrderBook:
    """One symbol's L2 book: `bids` and `asks` map price ticks → quantity steps (never 0).

    Levels carry absolute quantities: 0 removes the level, and removing an unknown level is
    normal. The best price of each side is a pointer: raised (bids) or lowered (asks) as levels
    arrive, and when the best level goes, repaired by walking tick by tick from it, which near
    the top of a liquid book finds the next level in a step or two; past `_REPAIR_SCAN` empty
    ticks it falls back to a scan of the side. Treat `bids` and `asks` as read-only.
    """

    __slots__ = ("asks", "bids", "_best_ask", "_best_bid")

    def __init__(self, bids: Iterable[Level] = (), asks: Iterable[Level] = ()):
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self._best_bid = _NO_BID
        self._best_ask = _NO_ASK
        self.apply(bids, asks)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._best_bid, self._best_ask = _NO_BID, _NO_ASK

    def load(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the whole book (a snapshot)."""
        self.clear()
        self.apply(bids, asks)

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Set each (price, qty) level; qty 0 removes it."""
        self._apply_bids(bids)
        self._apply_asks(asks)

    def _apply_bids(self, updates: Iterable[Level]) -> None:
        levels, best = self.bids, self._best_bid
        for price, qty in updates:
            if qty:
                levels[price] = qty
                if price > best:
                    best = price
            else:
                levels.pop(price, None)
        if best not in levels:
            best = _next_level(levels, best, -1) if levels else _NO_BID
        self._best_bid = best

    def _apply_asks(self, updates: Iterable[Level]) -> None:
        """The mirror of `_apply_bids`, kept separate because it runs for every level."""
        levels, best = self.asks, self._best_ask
        for price, qty in updates:
            if qty:
                levels[price] = qty
                if price < best:
                    best = price
            else:
                levels.pop(price, None)
        if best not in levels:
            best = _next_level(levels, best, 1) if levels else _NO_ASK
        self._best_ask = best

    # -- reading -----------------------------------------------------------------------------

    @property
    def best_bid(self) -> int | None:
        return None if self._best_bid == _NO_BID else self._best_bid

    @property
    def best_ask(self) -> int | None:
        return None if self._best_ask == _NO_ASK else self._best_ask

    def bbo(self) -> tuple[int, int, int, int] | None:
        """(bid, bid qty, ask, ask qty), or None when a side is empty."""
        bid, ask = self._best_bid, self._best_ask
        if bid == _NO_BID or ask == _NO_ASK:
            return None
        return bid, self.bids[bid], ask, self.asks[ask]

    @property
    def crossed(self) -> bool:
        """Both sides present and the best bid at or above the best ask: a broken book."""
        return self._best_bid != _NO_BID and self._best_ask != _NO_ASK and (
            self._best_bid >= self._best_ask
        )

    def top_bids(self, n: int) -> list[Level]:
        """The best `n` bid levels, best first."""
        return _top(self.bids, self._best_bid, -1, n)

    def top_asks(self, n: int) -> list[Level]:
        """The best `n` ask levels, best first."""
        return _top(self.asks, self._best_ask, 1, n)

    def spread(self) -> int | None:
        """Best ask − best bid in ticks."""
        top = self.bbo()
        return None if top is None else top[2] - top[0]

    def mid(self) -> Fraction | None:
        """(bid + ask) / 2 in ticks, exact."""
        top = self.bbo()
        return None if top is None else Fraction(top[0] + top[2], 2)

    def microprice(self) -> Fraction | None:
        """The quantity-weighted mid in ticks, exact: leans towards the side with less
        quantity, where the price is more likely to move next."""
        top = self.bbo()
        if top is None:
            return None
        bid, bid_qty, ask, ask_qty = top
        return Fraction(bid * ask_qty + ask * bid_qty, bid_qty + ask_qty)

    def imbalance(self, depth: int = 1) -> Fraction | None:
        """(bid qty − ask qty) / (bid qty + ask qty) over the best `depth` levels: −1 … 1."""
        bid_qty = sum(qty for _, qty in self.top_bids(depth))
        ask_qty = sum(qty for _, qty in self.top_asks(depth))
        if not bid_qty or not ask_qty:
            return None
        return Fraction(bid_qty - ask_qty, bid_qty + ask_qty)


def _next_level(levels: dict[int, int], gone: int, away: int) -> int:
    """The best remaining price of a non-empty side whose best level `gone` was removed;
    `away` is −1 for bids, +1 for asks."""
    for price in range(gone + away, gone + away * _REPAIR_SCAN, away):
        if price in levels:
            return price
    return max(levels) if away < 0 else min(levels)


def _top(levels: dict[int, int], best: int, away: int, n: int) -> list[Level]:
    """The best `n` levels: walk ticks from the best while the book is dense, else sort."""
    found: list[Level] = []
    if n <= 0 or not levels:
        return found
    price = best
    for _ in range(n * 4 + _REPAIR_SCAN):
        qty = levels.get(price)
        if qty:
            found.append((price, qty))
            if len(found) == n:
                return found
        price += away
    pick = heapq.nlargest if away < 0 else heapq.nsmallest
    return [(price, levels[price]) for price in pick(n, levels)]


# -- the sync procedure ------------------------------------------------------------------------

GAP = "gap"  # pu is not the previous event's u: events were lost
SNAPSHOT_GAP = "snapshot_gap"  # the first event after the snapshot starts after it (pu > lastUpdateId)
CROSSED = "crossed"  # applying an event left best bid >= best ask


@dataclass(frozen=True, slots=True)
class Resync:
    """The book broke and was cleared: request a new snapshot (`BookSync.request_snapshot`).

    For GAP, `expected_pu` is the previous event's u and `got_pu` the event's pu; for
    SNAPSHOT_GAP, `expected_pu` is the snapshot's lastUpdateId, which pu must not exceed.
    """

    reason: str
    expected_pu: int | None = None
    got_pu: int | None = None


@dataclass(slots=True)
class SyncCounters:
    applied: int = 0  # diffs applied to the book
    dropped: int = 0  # diffs older than the snapshot or already applied
    resyncs: int = 0
    late_snapshots: int = 0  # snapshot replies that were not the latest request's


class BookSync:
    """Binance USDⓈ-M local order book procedure, as a state machine.

    Diffs are buffered until the snapshot of the latest request arrives. Then diffs with
    u < lastUpdateId are dropped, and the first applied is the first with u >= lastUpdateId,
    which must have pu <= lastUpdateId. (Binance documents U <= lastUpdateId <= u, but update
    ids are shared by all symbols, so in real data the bracketing diff often has
    U > lastUpdateId; what holds is previous u = pu <= lastUpdateId <= u.) Every later diff
    must have pu == the previous u. A break returns a `Resync`, clears the book and buffers
    again until a new snapshot is requested and arrives. Snapshot replies are tagged with the
    number `request_snapshot` gave, so a late reply to an older request is never applied.
    """

    def __init__(self, book: OrderBook | None = None, max_buffer: int = 10_000):
        self.book = book if book is not None else OrderBook()
        self.counters = SyncCounters()
        self._buffer: deque[tuple[DepthDiff, int | None]] = deque(maxlen=max_buffer)
        self._requested = 0  # number of the latest snapshot request
        self._pending = False  # that request's reply has not been applied yet
        self._synced = False
        self._bridged = False  # a diff spanning the snapshot's lastUpdateId has been applied
        self._last_id = 0  # snapshot lastUpdateId, then the last applied diff's u
        self._last_event_ms: int | None = None

    @property
    def synced(self) -> bool:
        """The book reflects a snapshot and every diff since."""
        return self._synced

    @property
    def has_snapshot(self) -> bool:
        """A snapshot was requested and its reply applied."""
        return self._requested > 0 and not self._pending

    @property
    def last_update_id(self) -> int | None:
        return self._last_id if self._synced else None

    def request_snapshot(self) -> int:
        """Number the next snapshot request; pass it back with the reply to `on_snapshot`.
        Until that reply the book is empty and diffs are buffered."""
        self._requested += 1
        self._pending = True
        self._reset()
        return self._requested

    def on_snapshot(
        self, request: int, snapshot: DepthSnapshot, received_ms: int | None = None
    ) -> Resync | None:
        """Apply the reply to request number `request`, then the buffered diffs. A reply to
        an older (or already answered) request is counted in `late_snapshots` and ignored."""
        if request != self._requested or not self._pending:
            self.counters.late_snapshots += 1
            return None
        self._pending = False
        self.book.load(snapshot.bids, snapshot.asks)
        self._synced, self._bridged = True, False
        self._last_id = snapshot.last_update_id
        self._last_event_ms = snapshot.ts if received_ms is None else received_ms
        buffered, self._buffer = self._buffer, deque(maxlen=self._buffer.maxlen)
        while buffered:
            resync = self.on_diff(*buffered.popleft())
            if resync is not None:
                self._buffer.extend(buffered)  # after the break's own diff, in order
                return resync
        return None

    def on_diff(self, diff: DepthDiff, received_ms: int | None = None) -> Resync | None:
        """Buffer, drop or apply one diff; a `Resync` when the book broke."""
        if not self._synced:
            self._buffer.append((diff, received_ms))
            return None
        if self._bridged:
            if diff.prev_id != self._last_id:
                if diff.last_id <= self._last_id:
                    self.counters.dropped += 1  # a repeat of an applied event
                    return None
                return self._break(Resync(GAP, self._last_id, diff.prev_id), diff, received_ms)
        elif diff.last_id < self._last_id:
            self.counters.dropped += 1
            return None
        elif diff.prev_id > self._last_id:
            return self._break(Resync(SNAPSHOT_GAP, self._last_id, diff.prev_id), diff, received_ms)
        self.book.apply(diff.bids, diff.asks)
        self.counters.applied += 1
        self._bridged = True
        self._last_id = diff.last_id
        self._last_event_ms = diff.ts if received_ms is None else received_ms
        if self.book.crossed:
            return self._break(Resync(CROSSED), None, None)
        return None

    def is_stale(self, now_ms: int, max_age_ms: int) -> bool:
        """Not synced, or nothing applied for more than `max_age_ms`. The age is measured from
        the receive time given with the last applied event, else its exchange time `E`, so
        `now_ms` must be on that clock."""
        if not self._synced or self._last_event_ms is None:
            return True
        return now_ms - self._last_event_ms > max_age_ms

    def _break(
        self, resync: Resync, diff: DepthDiff | None, received_ms: int | None
    ) -> Resync:
        """Clear the book; keep buffering from the diff that showed the break, since the next
        snapshot may well be older than it."""
        self.counters.resyncs += 1
        self._pending = False
        self._reset()
        if diff is not None:
            self._buffer.append((diff, received_ms))
        return resync

    def _reset(self) -> None:
        self.book.clear()
        self._synced = self._bridged = False
        self._last_id = 0
        self._last_event_ms = None
