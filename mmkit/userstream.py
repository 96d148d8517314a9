"""The user data stream as `order`, `fill`, `position` and `balance` lines, with no fill lost.

The listen key is created, kept alive every 30 minutes and recreated when the venue says it
expired (`listenKeyExpired`, or -1125 on keepalive). After every reconnect with a gap and
every new key, the account is reconciled over REST: fills missed meanwhile are recovered from
`userTrades` and emitted once (fills are deduplicated by (symbol, tradeId)), and the open
orders and positions are emitted so a consumer's view is whole again.

The REST side is a small protocol (`UserStreamApi`) so the same code runs over the real
client, and tests drive it against the simulator.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from mmkit.binance.userdata import (
    FillDeduper,
    ListenKeyExpired,
    fill_from_user_trade,
    normalize,
)
from mmkit.binance.ws import Connection, StreamClient, user_stream_url
from mmkit.errors import NetworkError, VenueError

log = logging.getLogger("mmkit.userstream")

KEEPALIVE_S = 30 * 60
INVALID_LISTEN_KEY = -1125
Line = dict[str, Any]


class UserStreamApi(Protocol):
    async def create_listen_key(self) -> str: ...
    async def keepalive_listen_key(self, listen_key: str) -> None: ...
    async def open_orders(self, symbol: str) -> list[dict[str, Any]]: ...
    async def positions(self, symbol: str) -> list[dict[str, Any]]: ...
    async def server_time(self) -> int: ...
    async def user_trades_since(self, symbol: str, start_time: int) -> list[dict[str, Any]]: ...
    async def query_order(self, symbol: str, *, order_id: int) -> dict[str, Any]: ...


class UserStream:
    """Yields lines for `symbols` (all symbols when empty). `raw=True` yields the venue's
    payloads instead of lines; what reconciliation recovers still comes as lines."""

    def __init__(self, api: UserStreamApi, ws_base: str, symbols: list[str], *,
                 raw: bool = False, routed: bool = True, keepalive_s: float = KEEPALIVE_S,
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
                 speed: float = 1.0, since_ms: int | None = None):
        """`since_ms`: the caller read the account over REST at this venue time; the first
        connection then reconciles too, from there, so a fill made before the socket was
        open is not lost (orders may already be working by then)."""
        self.api = api
        self.ws_base = ws_base
        self.symbols = [s.upper() for s in symbols]
        self.raw = raw
        self.routed = routed
        # venue time runs `speed` times faster (a sped-up simulator): keep alive sooner
        self.keepalive_s = keepalive_s / speed
        self.speed = speed
        self.dedupe = FillDeduper()
        self.reconnects = 0
        self.key_renewals = 0
        self._wall_ms = wall_ms
        self._last_fill_ms: dict[str, int] = {} if since_ms is None else \
            dict.fromkeys(self.symbols, since_ms)
        self._since_ms = since_ms
        self._opened_ms: int | None = None  # when the first connection opened
        self._key_expired = asyncio.Event()
        self.listen_key: str | None = None
        self.events = 0  # user-stream messages handled (a lockstep runner waits on this)

    async def lines(self) -> AsyncIterator[Line]:
        first = True
        while True:
            listen_key = self.listen_key = await self.api.create_listen_key()
            client = StreamClient(user_stream_url(self.ws_base, listen_key, self.routed),
                                  silence_timeout=None, speed=self.speed)
            keepalive = asyncio.create_task(self._keep_alive(listen_key))
            try:
                async for line in self._session(
                        client, reconcile_first=not first or self._since_ms is not None):
                    yield line
            finally:
                keepalive.cancel()
            first = False
            self.key_renewals += 1
            log.warning("listen_key_renewed: the listen key expired; created a new one")

    async def _session(self, client: StreamClient, reconcile_first: bool) -> AsyncIterator[Line]:
        """One listen key's life: ends when the key expires."""
        self._key_expired.clear()
        messages = client.messages()
        try:
            while not self._key_expired.is_set():
                item = await self._next(messages)
                if item is None:
                    return
                if isinstance(item, Connection):
                    if self._opened_ms is None:
                        self._opened_ms = self._since_ms or await self._venue_now()
                    if item.gap:
                        self.reconnects += 1
                    if item.gap or reconcile_first:
                        for line in await self._reconcile_until_done():
                            yield line
                    continue
                self.events += 1
                try:
                    for line in self._handle(item.data):
                        yield line
                except ListenKeyExpired:
                    return
        finally:
            await messages.aclose()

    async def _next(self, messages):
        """The next stream item, or None when the keepalive found the key expired. The
        pending read is cancelled and awaited on every way out, so the message generator is
        never left running (it could not be closed then)."""
        get = asyncio.ensure_future(anext(messages))
        expired = asyncio.ensure_future(self._key_expired.wait())
        try:
            done, _ = await asyncio.wait({get, expired}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (get, expired):
                if not future.done():
                    future.cancel()
            await asyncio.gather(get, expired, return_exceptions=True)
        if get in done and not get.cancelled():
            return get.result()
        return None

    def _handle(self, payload: dict[str, Any]) -> list[Line]:
        if self.raw:
            if payload.get("e") == "listenKeyExpired":
                raise ListenKeyExpired("listen key expired")
            return [payload] if self._wanted(payload) else []
        return [line for line in normalize(payload) if self._keep(line)]

    def _wanted(self, payload: dict[str, Any]) -> bool:
        symbol = payload.get("o", {}).get("s") or payload.get("s")
        return not self.symbols or symbol is None or symbol in self.symbols

    def _keep(self, line: Line) -> bool:
        if self.symbols and line.get("symbol") not in (None, *self.symbols):
            return False
        if line["type"] == "fill":
            if not self.dedupe.fresh(line):
                return False
            self._last_fill_ms[line["symbol"]] = max(self._last_fill_ms.get(line["symbol"], 0),
                                                     line["ts"])
        return True

    async def _venue_now(self) -> int:
        """The venue's time (a simulator's clock may be far from ours); ours if it cannot say."""
        try:
            return await self.api.server_time()
        except (VenueError, NetworkError):
            return self._wall_ms()

    async def _reconcile_until_done(self, retry_s: float = 1.0) -> list[Line]:
        """`reconcile`, again after a pause while the venue fails: a fill it would recover
        must not be skipped, and a venue having a bad moment must not end the stream."""
        while True:
            try:
                return await self.reconcile()
            except (VenueError, NetworkError) as exc:
                log.warning("reconcile_failed: %s; again in %.0f s", exc, retry_s)
                await asyncio.sleep(retry_s)

    async def reconcile(self) -> list[Line]:
        """Missed fills (once each), then open orders and positions, from REST. Missed: since
        the symbol's newest fill, else since the stream first opened (older fills are history,
        not news)."""
        lines: list[Line] = []
        now = self._wall_ms()
        for symbol in self.symbols:
            since = self._last_fill_ms.get(symbol, now if self._opened_ms is None
                                           else self._opened_ms)
            trades = await self.api.user_trades_since(symbol, since)
            fills = [fill_from_user_trade(t) for t in sorted(trades,
                                                             key=lambda t: (t["time"], t["id"]))]
            lines += await with_client_ids(self.api, [f for f in fills if self._keep(f)])
            lines += [order_line_from_rest(o, now) for o in await self.api.open_orders(symbol)]
            lines += [position_line_from_rest(p, now) for p in await self.api.positions(symbol)]
        return lines

    async def _keep_alive(self, listen_key: str) -> None:
        while True:
            await asyncio.sleep(self.keepalive_s)
            try:
                await self.api.keepalive_listen_key(listen_key)
            except VenueError as exc:
                if exc.code == INVALID_LISTEN_KEY:
                    self._key_expired.set()
                    return
                log.warning("listen key keepalive failed: %s", exc)


async def with_client_ids(api: UserStreamApi, fills: list[Line]) -> list[Line]:
    """Recovered fills with the client order id a streamed fill carries (a `userTrades` row
    has none, so an order manager could not tell which of its orders filled): the venue is
    asked once per order. A fill whose order it cannot say now keeps "" rather than be lost."""
    client_ids: dict[int, str] = {}
    for fill in fills:
        order_id = fill["orderId"]
        if fill["clientOrderId"] or order_id in client_ids:
            continue
        client_ids[order_id] = ""
        try:
            order = await api.query_order(fill["symbol"], order_id=order_id)
        except (VenueError, NetworkError) as exc:
            log.warning("fill_order_unknown order_id=%d: %s", order_id, exc)
            continue
        client_ids[order_id] = order.get("clientOrderId", "")
    return [{**fill, "clientOrderId": fill["clientOrderId"] or client_ids[fill["orderId"]]}
            for fill in fills]


def order_line_from_rest(order: dict[str, Any], ts: int) -> Line:
    """An open order from `GET /fapi/v1/openOrders` as an `order` line (`execType` RECONCILE)."""
    return {
        "type": "order", "symbol": order["symbol"], "ts": int(order.get("updateTime") or ts),
        "orderId": int(order["orderId"]), "clientOrderId": order.get("clientOrderId", ""),
        "side": order["side"], "orderType": order.get("type", ""),
        "timeInForce": order.get("timeInForce", ""), "price": order.get("price", "0"),
        "qty": order.get("origQty", "0"), "executedQty": order.get("executedQty", "0"),
        "avgPrice": order.get("avgPrice", "0"), "status": order.get("status", ""),
        "execType": "RECONCILE", "reduceOnly": bool(order.get("reduceOnly", False)),
        "expireReason": 0,
    }


def position_line_from_rest(position: dict[str, Any], ts: int) -> Line:
    """A `positionRisk` row as a `position` line (`reason` RECONCILE)."""
    return {
        "type": "position", "symbol": position["symbol"],
        "ts": int(position.get("updateTime") or ts), "qty": position.get("positionAmt", "0"),
        "entryPrice": position.get("entryPrice", "0"),
        "breakEvenPrice": position.get("breakEvenPrice", "0"),
        "unrealizedPnl": position.get("unRealizedProfit", "0"),
        "accumulatedRealized": "0", "marginType": position.get("marginType", "cross"),
        "positionSide": position.get("positionSide", "BOTH"), "reason": "RECONCILE",
    }
