"""Market-data feeds: the live local book (stream + snapshot + BookSync) and trades, as the
`book` and `trade` lines of docs/streams.md.

This is shell code (it does I/O); the book and the sync rules are the pure `mmkit.book`.
A `DepthFeed` needs a snapshot fetcher (`async (symbol, limit) -> dict`, the REST depth
body) and a stream URL; it re-snapshots on every break the sync reports and after every
reconnect with a gap, tagging requests so a late reply never lands on a newer book.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

from mmkit.binance.ws import Connection, StreamClient, StreamMessage
from mmkit.book import BookSync, DepthDecoder, OrderBook
from mmkit.errors import InputError
from mmkit.model import BookTop, MarkPrice, OwnFill, Quote, QuoteLevel
from mmkit.recording import RawMessage
from mmkit.symbols import SymbolSpec

log = logging.getLogger("mmkit.feeds")

SnapshotFetcher = Callable[[str, int], Awaitable[dict[str, Any]]]
Emit = dict[str, Any]


class BookLines:
    """Builds `book` lines from an OrderBook, with prices and sizes as decimal strings."""

    def __init__(self, spec: SymbolSpec, levels: int = 20):
        self.spec = spec
        self.levels = levels
        self._stat_places = Decimal(1).scaleb(-(spec.price_decimals + 2))

    def line(self, book: OrderBook, update_id: int | None, ts: int, recv_ts: int,
             stale: bool) -> Emit:
        spec = self.spec
        best = book.bbo()
        line: Emit = {
            "type": "book", "symbol": spec.symbol, "ts": ts, "recvTs": recv_ts,
            "updateId": update_id, "stale": stale,
            "bids": [[spec.price_str(p), spec.qty_str(q)] for p, q in book.top_bids(self.levels)],
            "asks": [[spec.price_str(p), spec.qty_str(q)] for p, q in book.top_asks(self.levels)],
            "bestBid": None, "bestAsk": None, "mid": None, "microprice": None,
            "spreadTicks": None, "imbalance": None,
        }
        if best is not None:
            bid, _, ask, _ = best
            line.update(
                bestBid=spec.price_str(bid), bestAsk=spec.price_str(ask),
                mid=self._price(book.mid()), microprice=self._price(book.microprice()),
                spreadTicks=book.spread(), imbalance=_ratio(book.imbalance()),
            )
        return line

    def _price(self, ticks: Fraction | None) -> str | None:
        if ticks is None:
            return None
        value = Decimal(ticks.numerator) / Decimal(ticks.denominator) * self.spec.tick_size
        return str(value.quantize(self._stat_places).normalize())


def _ratio(value: Fraction | None) -> float | None:
    return None if value is None else round(float(value), 6)


def trade_line(spec: SymbolSpec, data: dict[str, Any]) -> Emit:
    """An `aggTrade` (or raw `trade`) payload as a `trade` line; `side` is the aggressor."""
    return {
        "type": "trade", "symbol": data["s"], "ts": int(data.get("T") or data["E"]),
        "tradeId": int(data.get("a", data.get("t", 0))),
        "price": data["p"], "qty": data["q"],
        "side": "SELL" if data.get("m") else "BUY",
        "firstTradeId": int(data.get("f", data.get("t", 0))),
        "lastTradeId": int(data.get("l", data.get("t", 0))),
    }


def mark_line(data: dict[str, Any]) -> Emit:
    """A `markPriceUpdate` payload as a `markPrice` line (mark, index, funding rate)."""
    return {"type": "markPrice", "symbol": data["s"], "ts": int(data["E"]),
            "markPrice": data["p"], "indexPrice": data["i"], "fundingRate": data["r"],
            "nextFundingTime": int(data["T"])}


def mark_from_line(line: Emit) -> MarkPrice:
    return MarkPrice(line["symbol"], int(line["ts"]), Decimal(line["markPrice"]),
                     Decimal(line["indexPrice"]), Decimal(line["fundingRate"]),
                     int(line["nextFundingTime"]))


class Throttle:
    """At most one emission per `every_ms` of the given clock; 0 lets every one through."""

    def __init__(self, every_ms: int = 0):
        self.every_ms = every_ms
        self._last = None

    def due(self, now_ms: int) -> bool:
        if self.every_ms <= 0:
            return True
        if self._last is None or now_ms - self._last >= self.every_ms:
            self._last = now_ms
            return True
        return False


class DepthFeed:
    """One symbol's synced book from a diff-depth stream, yielding `book` lines.

    `every_ms` > 0 emits at most one line per interval (the latest book); 0 emits on every
    change. A `book` line with `stale: true` is emitted when nothing arrived for `stale_ms`,
    and `book_resync` events are logged (and counted in `resyncs`).
    """

    def __init__(self, spec: SymbolSpec, stream: StreamClient, fetch_snapshot: SnapshotFetcher,
                 *, levels: int = 20, every_ms: int = 0, stale_ms: int = 5000,
                 snapshot_limit: int = 1000, on_raw: Callable[[str, Any, int], None] | None = None,
                 wall_ms: Callable[[], int] | None = None, wall_stale: bool = True):
        self.spec = spec
        self.stream = stream
        self.fetch_snapshot = fetch_snapshot
        self.sync = BookSync()
        self.decoder = DepthDecoder(spec)
        self.lines = BookLines(spec, levels)
        self.throttle = Throttle(every_ms)
        self.stale_ms = stale_ms
        # a stale line after stale_ms of wall-clock silence; off when time is the venue's
        # alone (lockstep), where the book's own times still mark it stale
        self.wall_stale = wall_stale
        self.snapshot_limit = snapshot_limit
        self.on_raw = on_raw
        self.resyncs = 0
        self._wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self._latest_request = 0
        self._snapshot_task: asyncio.Task | None = None
        self._last_ts = 0
        self.messages = 0  # stream messages handled (a lockstep runner waits on this)

    async def lines_out(self) -> AsyncIterator[Emit]:
        """Book lines; a `stale` one each `stale_ms` of silence (with `wall_stale`). The
        pending read survives the wait: cancelling it would end the stream."""
        messages = self.stream.messages()
        read: asyncio.Future | None = None
        try:
            while True:
                if read is None:
                    read = asyncio.ensure_future(anext(messages))
                done, _ = await asyncio.wait(
                    {read}, timeout=self.stale_ms / 1000 if self.wall_stale else None)
                if not done:
                    yield self._book_line(self._wall_ms(), stale=True)
                    continue
                item, read = read.result(), None
                line = self._handle(item)
                if line is not None:
                    yield line
        except StopAsyncIteration:
            return
        finally:
            if self._snapshot_task:
                self._snapshot_task.cancel()
            if read is not None:
                read.cancel()
                await asyncio.gather(read, return_exceptions=True)
            await messages.aclose()

    def _handle(self, item: StreamMessage | Connection) -> Emit | None:
        if isinstance(item, Connection):
            if item.gap:
                self._resync(f"reconnected: {item.reason}")
            else:
                self._request_snapshot()
            return None
        self.messages += 1
        data = item.data
        if self.on_raw:
            self.on_raw("diff", data, item.recv_ms)
        if data.get("e") != "depthUpdate":
            return None
        resync = self.sync.on_diff(self.decoder.diff(data), item.recv_ms)
        if resync is not None:
            self._resync(resync.reason, resync)
            return None
        self._last_ts = int(data["E"])
        if not self.sync.synced or not self.throttle.due(item.recv_ms):
            return None
        return self._book_line(item.recv_ms, stale=False)

    def _book_line(self, recv_ms: int, stale: bool) -> Emit:
        stale = stale or self.sync.is_stale(recv_ms, self.stale_ms)
        return self.lines.line(self.sync.book, self.sync.last_update_id,
                               self._last_ts or recv_ms, recv_ms, stale)

    def _resync(self, reason: str, resync=None) -> None:
        self.resyncs += 1
        detail = (f" (expected pu {resync.expected_pu}, got {resync.got_pu})"
                  if resync is not None and resync.got_pu is not None else "")
        log.warning("book_resync symbol=%s reason=%s%s", self.spec.symbol, reason, detail)
        self._request_snapshot()

    def _request_snapshot(self) -> None:
        request = self._latest_request = self.sync.request_snapshot()
        self._snapshot_task = asyncio.create_task(self._load_snapshot(request))

    async def _load_snapshot(self, request: int) -> None:
        try:
            body = await self.fetch_snapshot(self.spec.symbol, self.snapshot_limit)
        except Exception as exc:  # the next diff or reconnect asks again
            log.warning("book snapshot failed: %s", exc)
            await asyncio.sleep(1)
            if request == self._latest_request:
                self._request_snapshot()
            return
        if self.on_raw:
            self.on_raw("snapshot", body, self._wall_ms())
        resync = self.sync.on_snapshot(request, self.decoder.snapshot(body), self._wall_ms())
        if resync is not None:
            self._resync(resync.reason, resync)


class RecordedDepth:
    """`book` lines (and `trade` lines when `trades`) from a recording, by the same BookSync
    procedure as a live feed: a snapshot in the file syncs the book, each diff must continue
    the chain, and a break logs `book_resync` and waits for the recording's next snapshot (mmkit
    recordings hold the one the live feed fetched; hftbacktest files have only the first).
    Messages of other symbols are skipped."""

    def __init__(self, spec: SymbolSpec, *, levels: int = 20, every_ms: int = 0,
                 stale_ms: int = 5000, trades: bool = False):
        self.spec = spec
        self.sync = BookSync()
        self.decoder = DepthDecoder(spec)
        self.book_lines = BookLines(spec, levels)
        self.throttle = Throttle(every_ms)
        self.stale_ms = stale_ms
        self.trades = trades
        self.resyncs = 0

    def lines(self, messages: Iterable[RawMessage]) -> Iterator[tuple[int, Emit]]:
        """(receive ms, line) for each line due; InputError names file:line of bad data, and
        a recording without any snapshot (a continuation file given alone)."""
        snapshots, where = 0, "the recording"
        for recv, message, name, number in messages:
            where = name
            snapshots += "lastUpdateId" in message
            try:
                line = self._handle(recv, message)
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"malformed message: {exc!r}", f"{name}:{number}") from None
            if line is not None:
                yield recv, line
        if not snapshots and not self.trades:
            raise InputError("no depth snapshot in the recording, so no book (a continuation "
                             "file needs the file before it)", where)

    def _handle(self, recv: int, message: dict[str, Any]) -> Emit | None:
        if "lastUpdateId" in message:
            if not self.sync.synced:
                request = self.sync.request_snapshot()
                self.sync.on_snapshot(request, self.decoder.snapshot(message), recv)
            return None
        data = message["data"]
        if data.get("s") != self.spec.symbol:
            return None
        kind = data.get("e")
        if kind in ("aggTrade", "trade"):
            return trade_line(self.spec, data) if self.trades else None
        if kind != "depthUpdate":
            return None
        resync = self.sync.on_diff(self.decoder.diff(data), recv)
        if resync is not None:
            self.resyncs += 1
            log.warning("book_resync symbol=%s reason=%s (waiting for the recording's next "
                        "snapshot)", self.spec.symbol, resync.reason)
            return None
        if not self.sync.synced or not self.throttle.due(recv):
            return None
        return self.book_lines.line(self.sync.book, self.sync.last_update_id, int(data["E"]),
                                    recv, self.sync.is_stale(recv, self.stale_ms))


def book_top_from_line(spec: SymbolSpec, line: Emit) -> BookTop:
    """A `book` line back into ticks and steps, for the strategy and the risk guards."""
    return BookTop(line["symbol"], int(line["ts"]), int(line.get("recvTs") or line["ts"]),
                   line.get("updateId"), bool(line.get("stale")),
                   [(spec.to_ticks(p), spec.to_steps(q)) for p, q in line["bids"]],
                   [(spec.to_ticks(p), spec.to_steps(q)) for p, q in line["asks"]])


SIDES = ("BUY", "SELL")
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX", "GTD")


def quote_from_line(spec: SymbolSpec, line: Emit) -> Quote:
    """A `quote` line (docs/streams.md) in ticks and steps; an `InputError` naming the field
    (`levels[1].side`) for anything send could not send as it is meant: a side other than
    BUY/SELL, an unknown timeInForce, a reduceOnly that is not a JSON boolean, a price or
    quantity that is not a positive decimal on the tick or step."""
    ts = line["ts"]
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise InputError(f"expected an integer (ms), got {_shown(ts)}", field="ts")
    levels = line["levels"]
    if not isinstance(levels, list):
        raise InputError(f"expected a list of levels, got {_shown(levels)}", field="levels")
    reasons, paused = line.get("reasons") or {}, line.get("paused")
    if not isinstance(reasons, dict):
        raise InputError(f"expected an object, got {_shown(reasons)}", field="reasons")
    if paused is not None and not isinstance(paused, str):
        raise InputError(f"expected a string or null, got {_shown(paused)}", field="paused")
    return Quote(line["symbol"], ts, [_level(spec, lv, f"levels[{i}]")
                                      for i, lv in enumerate(levels)], reasons, paused)


def _level(spec: SymbolSpec, lv: Any, where: str) -> QuoteLevel:
    if not isinstance(lv, dict):
        raise InputError(f"expected an object, got {_shown(lv)}", field=where)

    def field(key: str, default=...):
        if key not in lv and default is ...:
            raise InputError("missing", field=f"{where}.{key}")
        return lv.get(key, default)

    def units(key: str, convert) -> int:
        value = field(key)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InputError(f"expected a decimal string, got {_shown(value)}",
                             field=f"{where}.{key}")
        try:
            n = convert(value)
        except (ValueError, ArithmeticError) as exc:
            raise InputError(str(exc), field=f"{where}.{key}") from None
        if n <= 0:
            raise InputError(f"must be positive, got {_shown(value)}", field=f"{where}.{key}")
        return n

    tag, side = field("tag"), field("side")
    if not isinstance(tag, str) or not tag:
        raise InputError(f"expected a non-empty string, got {_shown(tag)}", field=f"{where}.tag")
    if side not in SIDES:
        raise InputError(f"expected BUY or SELL, got {_shown(side)}", field=f"{where}.side")
    tif, reduce_only = field("timeInForce", "GTX"), field("reduceOnly", False)
    if tif not in TIME_IN_FORCE:
        raise InputError(f"expected one of {', '.join(TIME_IN_FORCE)}, got {_shown(tif)}",
                         field=f"{where}.timeInForce")
    if not isinstance(reduce_only, bool):
        raise InputError(f"expected true or false (a JSON boolean), got {_shown(reduce_only)}",
                         field=f"{where}.reduceOnly")
    return QuoteLevel(side, units("price", spec.to_ticks), units("qty", spec.to_steps), tag,
                      tif, reduce_only)


def _shown(value) -> str:
    """A value as a message shows it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def entry_ticks(spec: SymbolSpec, price: str | None) -> float | None:
    """A position's `entryPrice` in ticks (None for none, or "0": flat)."""
    if not price or Decimal(price) == 0:
        return None
    return float(Decimal(price) / spec.tick_size)


def own_fill_from_line(spec: SymbolSpec, line: Emit) -> OwnFill:
    """A `fill` line (docs/streams.md) in ticks and steps."""
    return OwnFill(line["symbol"], int(line["ts"]), int(line["tradeId"]), int(line["orderId"]),
                   line.get("clientOrderId") or "", line["side"], spec.to_ticks(line["price"]),
                   spec.to_steps(line["qty"]), bool(line["maker"]), Decimal(line["commission"]),
                   line.get("commissionAsset", ""), Decimal(line.get("realizedPnl") or "0"))
