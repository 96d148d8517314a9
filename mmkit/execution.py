"""The shell around the order manager: sends its actions through the REST client in batches,
reports every outcome back to it, settles unknown outcomes by query, and writes the audit
lines (`order_new`, `order_ack`, `order_cancel`, `order_reject`) of docs/streams.md.

Three outcomes for every place and modify: accepted, rejected, unknown. Unknown is what the
client raises as `OutcomeUnknown` (a lost answer, a timeout, a 408 or most 5xx) and a batch
entry answered -1006/-1007: the order is held and `settle_unknown` queries it by client order
id; nothing is resent meanwhile. A request that never left (connection refused) is a definite
failure.

`dry_run` sends nothing: every place and cancel is taken as accepted at once, so the lines show
what would be sent against the state as it would then be.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from mmkit.binance.rest import UNKNOWN_OUTCOME_CODES
from mmkit.errors import NetworkError, OutcomeUnknown, VenueError
from mmkit.orders import (
    SELF_TRADE_PREVENTION,
    Cancel,
    LocalReject,
    Modify,
    Order,
    OrderManager,
    Place,
)

log = logging.getLogger("mmkit.execution")

PLACE_BATCH = 5
MODIFY_BATCH = 5
CANCEL_BATCH = 10


def wall_ms() -> int:
    return int(time.time() * 1000)


class Execution:
    def __init__(self, client, manager: OrderManager, symbol: str,
                 emit: Callable[[dict[str, Any]], None], *, dry_run: bool = False,
                 now: Callable[[], int] = wall_ms):
        self.client = client
        self.manager = manager
        self.spec = manager.spec
        self.symbol = symbol
        self.emit = emit
        self.dry_run = dry_run
        self.now = now
        self._fake_ids = 0
        # the book a decision was made on: its receive time goes on the order lines, so a
        # reader can measure book-to-order latency from the lines alone
        self.book_recv_ts: int | None = None
        self.book_ts: int | None = None  # and its exchange time: recv − ts is data latency

    async def execute(self, actions: list) -> list:
        """Cancels first (they free slots and margin), then modifies, then new orders
        (`in_send_order`, which the backtester follows too); then, within the same call, the
        slots refused post-only (-5022) once more, repriced (`OrderManager.retry_post_only`,
        bounded by postOnlyRetries). Returns those extra actions: the caller counts their
        places as orders sent, like the ones it passed in."""
        cancels = [a for a in actions if isinstance(a, Cancel)]
        modifies = [a for a in actions if isinstance(a, Modify)]
        places = [a for a in actions if isinstance(a, Place)]
        self._local_rejects(actions)
        for chunk in _chunks(cancels, CANCEL_BATCH):
            await self._cancel(chunk)
        for chunk in _chunks(modifies, MODIFY_BATCH):
            await self._modify(chunk)
        for chunk in _chunks(places, PLACE_BATCH):
            await self._place(chunk)
        retried: list = []
        while again := self.manager.retry_post_only():
            retried += again
            self._local_rejects(again)
            for chunk in _chunks([a for a in again if isinstance(a, Place)], PLACE_BATCH):
                await self._place(chunk)
        return retried

    def _local_rejects(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, LocalReject):
                self.emit(self._reject_line(None, action.code, action.msg, local=True,
                                            tag=action.level.tag))

    # -- places -------------------------------------------------------------------------------

    async def _place(self, chunk: list[Place]) -> None:
        for action in chunk:
            self.emit(self._order_line("order_new", action.order))
        if self.dry_run:
            for action in chunk:
                self._fake_ack(action.order)
            return
        sent = self.now()
        params = [self._params(a.order) for a in chunk]
        try:
            if len(params) == 1:
                results = [await self.client.place_order(**params[0])]
            else:
                results = await self.client.place_batch(params)
        except OutcomeUnknown as exc:
            self._unknown([a.order for a in chunk], exc)
            return
        except VenueError as exc:
            results = [{"code": exc.code, "msg": exc.msg}] * len(chunk)
        except NetworkError as exc:  # never sent (connection refused): the slot is free
            results = [{"code": -1001, "msg": str(exc)}] * len(chunk)
        for action, result in zip(chunk, results, strict=False):
            self._placed(action.order, result, self.now() - sent)

    def _unknown(self, orders: list[Order], exc: OutcomeUnknown) -> None:
        """Each order's outcome is unknown: held until `settle_unknown` (or the stream) says."""
        msg = str(exc)
        if exc.client_order_id:  # each line names its own order; a batch's list is noise
            msg = msg.removesuffix(f" (clientOrderId {exc.client_order_id})")
        for order in orders:
            self.manager.on_unknown(order.client_order_id)
            self.emit(self._reject_line(order, None, msg, unknown=True))

    def _placed(self, order: Order, result: dict[str, Any], latency_ms: int) -> None:
        cid = order.client_order_id
        if "orderId" not in result and int(result.get("code", 0)) in UNKNOWN_OUTCOME_CODES:
            # a batch entry timed out inside the venue: it may exist
            self.manager.on_unknown(cid)
            self.emit(self._reject_line(order, int(result["code"]),
                                        str(result.get("msg", "")), unknown=True))
            return
        if "code" in result and "orderId" not in result:
            self.manager.on_reject(cid, int(result["code"]), str(result.get("msg", "")))
            self.emit(self._reject_line(order, int(result["code"]), str(result.get("msg", ""))))
            return
        self.manager.on_ack(cid, result, self.now())
        self.emit(self._ack_line(order, result, latency_ms))

    def _fake_ack(self, order: Order) -> None:
        self._fake_ids += 1
        result = {"orderId": self._fake_ids, "status": "NEW", "executedQty": "0"}
        self.manager.on_ack(order.client_order_id, result, self.now())
        self.emit(self._ack_line(order, result, 0))

    # -- modifies -----------------------------------------------------------------------------

    async def _modify(self, chunk: list[Modify]) -> None:
        for action in chunk:
            line = self._order_line("order_modify", action.order)
            line.update(price=self.spec.price_str(action.price),
                        qty=self.spec.qty_str(action.qty))
            self.emit(line)
        if self.dry_run:
            for action in chunk:
                self.manager.on_ack(action.order.client_order_id,
                                    {"orderId": action.order.order_id or 0, "status": "NEW"},
                                    self.now())
            return
        sent = self.now()
        params = [{"symbol": self.symbol, "origClientOrderId": a.order.client_order_id,
                   "side": a.order.side, "quantity": self.spec.qty_str(a.qty),
                   "price": self.spec.price_str(a.price)} for a in chunk]
        try:
            if len(params) == 1:
                results = [await self.client.modify_order(**params[0])]
            else:
                results = await self.client.modify_batch(params)
        except OutcomeUnknown as exc:  # it may have been applied: never re-sent blindly
            self._unknown([a.order for a in chunk], exc)
            return
        except VenueError as exc:
            results = [{"code": exc.code, "msg": exc.msg}] * len(chunk)
        except NetworkError as exc:  # never sent (connection refused): still as it was
            results = [{"code": -1001, "msg": str(exc)}] * len(chunk)
        for action, result in zip(chunk, results, strict=False):
            self._placed(action.order, result, self.now() - sent)

    # -- cancels ------------------------------------------------------------------------------

    async def _cancel(self, chunk: list[Cancel]) -> None:
        for action in chunk:
            line = self._order_line("order_cancel", action.order)
            line["reason"] = action.reason
            self.emit(line)
        if self.dry_run:
            for action in chunk:
                self.manager.on_cancel_ack(action.order.client_order_id, {"status": "CANCELED"})
            return
        ids = [a.order.client_order_id for a in chunk]
        try:
            if len(ids) == 1:
                results = [await self.client.cancel_order(self.symbol, client_order_id=ids[0])]
            else:
                results = await self.client.cancel_batch(self.symbol, ids)
        except VenueError as exc:
            results = [{"code": exc.code, "msg": exc.msg}] * len(ids)
        except NetworkError as exc:  # it may or may not be cancelled: the next diff retries
            log.warning("cancel outcome unknown: %s", exc)
            results = [{"code": -1007, "msg": str(exc)}] * len(ids)
        for cid, result in zip(ids, results, strict=False):
            if "code" in result and "orderId" not in result:
                self.manager.on_cancel_reject(cid, int(result["code"]))
            else:
                self.manager.on_cancel_ack(cid, result)

    async def cancel_all(self, reason: str) -> None:
        await self.execute(self.manager.cancel_all(reason, unsettled=reason == "shutdown"))

    async def sweep(self) -> int:
        """At shutdown, after cancel_all: cancel any order with our prefix still resting.
        A place cut off in flight can reach the venue after its cancel did; this catches it."""
        if self.dry_run:
            return 0
        swept = 0
        try:
            resting = await self.client.open_orders(self.symbol)
        except (VenueError, NetworkError):
            return 0
        for order in resting:
            if not self.manager.ids.ours(order.get("clientOrderId", "")):
                continue
            try:
                await self.client.cancel_order(self.symbol, order_id=order["orderId"])
                swept += 1
            except (VenueError, NetworkError) as exc:
                log.warning("sweep_failed order_id=%s: %s", order["orderId"], exc)
        return swept

    async def emergency(self, levels: list) -> None:
        """Reduce-only IOC orders from the risk engine (halted: flatten within the slippage
        bound). They take at once or expire, so they never occupy a ladder slot."""
        from mmkit.orders import Order

        for level in levels:
            order = Order(level.tag, self.manager.ids.next(), level.side, level.price,
                          level.qty, "IOC", True, "pending_new", self.now())
            self.emit(self._order_line("order_new", order))
            if self.dry_run:
                continue
            sent = self.now()
            try:
                result = await self.client.place_order(**self._params(order))
            except OutcomeUnknown as exc:  # an IOC settles itself; the stream tells the fill
                self.emit(self._reject_line(order, None, str(exc), unknown=True))
                continue
            except (VenueError, NetworkError) as exc:
                code = exc.code if isinstance(exc, VenueError) else None
                self.emit(self._reject_line(order, code, str(exc)))
                continue
            self.emit(self._ack_line(order, result, self.now() - sent))

    # -- unknown outcomes ---------------------------------------------------------------------

    async def settle_unknown(self) -> None:
        """Query each order whose outcome (of a place or a modify) is unknown by its client
        order id (never resend); the answer says what rests, at which price and size."""
        for order in self.manager.unknown_orders():
            modify = order.modify_unknown
            try:
                found = await self.client.query_order(self.symbol,
                                                      client_order_id=order.client_order_id)
            except VenueError as exc:
                if exc.code == -2013:  # the venue never got it, or it is long gone
                    self.manager.on_settled(order.client_order_id, None, self.now())
                    self.emit(self._reject_line(order, -2013, (
                        "settled: the venue has no such order" if modify else
                        "settled: the order never reached the venue")))
                continue
            except NetworkError:
                continue  # try again next cycle
            self.manager.on_settled(order.client_order_id, found, self.now())
            self.emit(self._ack_line(order, found, None, settled=True))

    # -- lines --------------------------------------------------------------------------------

    def _params(self, order: Order) -> dict[str, Any]:
        params = {"symbol": self.symbol, "side": order.side, "type": "LIMIT",
                  "timeInForce": order.time_in_force,
                  "quantity": self.spec.qty_str(order.qty),
                  "price": self.spec.price_str(order.price),
                  "newClientOrderId": order.client_order_id,
                  "selfTradePreventionMode": SELF_TRADE_PREVENTION}
        if order.reduce_only:
            params["reduceOnly"] = "true"
        return params

    def _order_line(self, kind: str, order: Order) -> dict[str, Any]:
        return {"type": kind, "symbol": self.symbol, "ts": self.now(), "tag": order.tag,
                "clientOrderId": order.client_order_id, "orderId": order.order_id,
                "side": order.side, "price": self.spec.price_str(order.price),
                "qty": self.spec.qty_str(order.qty), "timeInForce": order.time_in_force,
                "reduceOnly": order.reduce_only, "bookTs": self.book_ts,
                "bookRecvTs": self.book_recv_ts, "dryRun": self.dry_run}

    def _ack_line(self, order: Order, result: dict[str, Any], latency_ms: int | None,
                  settled: bool = False) -> dict[str, Any]:
        return {"type": "order_ack", "symbol": self.symbol, "ts": self.now(), "tag": order.tag,
                "clientOrderId": order.client_order_id, "orderId": int(result["orderId"]),
                "status": result.get("status", "NEW"), "latencyMs": latency_ms,
                "settled": settled, "dryRun": self.dry_run}

    def _reject_line(self, order: Order | None, code: int | None, msg: str, *,
                     local: bool = False, unknown: bool = False,
                     tag: str | None = None) -> dict[str, Any]:
        return {"type": "order_reject", "symbol": self.symbol, "ts": self.now(),
                "tag": order.tag if order else tag,
                "clientOrderId": order.client_order_id if order else None,
                "code": code, "msg": msg, "local": local, "unknown": unknown,
                "dryRun": self.dry_run}


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]



async def seed_today(client, spec, risk, now_ms: int) -> list:
    """Today's fills from before this process (userTrades since 00:00 UTC) into the risk
    guards' daily budgets (`seed_day`); the events it causes. A venue that cannot answer
    leaves the budgets at zero, said in the log: the bot still starts."""
    from mmkit.binance.userdata import fill_from_user_trade
    from mmkit.feeds import own_fill_from_line

    try:
        trades = await client.user_trades_since(spec.symbol, now_ms - now_ms % 86_400_000)
    except (VenueError, NetworkError) as exc:
        log.warning("seed_day_failed symbol=%s: %s", spec.symbol, exc)
        return []
    return risk.seed_day([own_fill_from_line(spec, fill_from_user_trade(t)) for t in trades],
                         now_ms)
