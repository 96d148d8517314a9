"""Order management: the desired quote vs the orders we have resting → place, modify and cancel
actions, with deterministic client order ids and the three outcomes of every request.

Pure: the shell (`mmkit send`, `mmkit run`, the backtester) sends the actions, reports what the
venue answered (`on_ack`, `on_reject`, `on_unknown`, `on_cancel_*`) and what the user stream
says (`on_update`, `on_fill`), and passes the time in.

Rules it keeps:
- at most one order per ladder slot (`QuoteLevel.tag`) at any time, counting orders whose fate
  is unknown: a slot is free again only once its previous order is known to be gone;
- no churn: a live order within `price_tolerance` ticks and `size_tolerance` steps of the
  desired level, and younger than `max_age_ms`, is left alone;
- a price change on the same side is a modify (PUT, one request, keeps the order id) when
  `use_modify`; anything else is a cancel, and the new order is placed once the cancel is known;
- every order is checked against the symbol's filters before it is sent (a local reject is
  never sent);
- an order whose outcome is unknown (timeout, 5xx, -1006, -1007) is never resent: the shell
  queries it by client order id and reports with `on_settled`; a stream update that arrives first
  settles it too. The same holds for a modify: the order is held (no second modify, no
  replacement) until the query or the stream says which price and size the venue has;
- the venue's word wins: a query's answer and the user stream's AMENDMENT events set the
  order's price and size.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from mmkit.model import BUY, OwnFill, QuoteLevel
from mmkit.symbols import SymbolSpec

PENDING_NEW, LIVE, PENDING_CANCEL, PENDING_MODIFY, UNKNOWN = (
    "pending_new", "live", "pending_cancel", "pending_modify", "unknown")
TERMINAL_STATUSES = {"FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED"}
POST_ONLY_REJECT = -5022
NO_NEED_TO_MODIFY = -5027  # the order already has that price and size
UNKNOWN_ORDER = {-2011, -2013}  # cancel / query of an order the venue does not have
# Said on every order: Binance's pages disagree on the default (NONE or EXPIRE_MAKER). When one
# of our orders would take another of ours, the resting one is expired and the taker goes on
# (an emergency reduce keeps reducing): we never trade with ourselves.
SELF_TRADE_PREVENTION = "EXPIRE_MAKER"
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if not n:
            return out


class ClientIds:
    """`<prefix>-<run>-<seq>`: deterministic within a run, unique across runs (the run id is
    the start time in base 36 plus a caller-chosen salt), at most 36 characters."""

    def __init__(self, prefix: str, run_id: str):
        self.prefix = prefix
        self.run_id = run_id
        self._seq = itertools.count(1)
        if len(self.head) > 24:
            raise ValueError("client order id prefix and run id must fit in 24 characters")

    @classmethod
    def for_run(cls, prefix: str, start_ms: int, salt: int = 0) -> ClientIds:
        return cls(prefix, base36(start_ms // 1000) + base36(salt % 1296).rjust(2, "0"))

    @property
    def head(self) -> str:
        return f"{self.prefix}-{self.run_id}-"

    def next(self) -> str:
        return self.head + base36(next(self._seq))

    def ours(self, client_order_id: str) -> bool:
        """Placed by mmkit with this prefix (any run)."""
        return client_order_id.startswith(self.prefix + "-")


@dataclass
class Order:
    tag: str
    client_order_id: str
    side: str
    price: int
    qty: int
    time_in_force: str
    reduce_only: bool
    state: str
    sent_ms: int
    order_id: int | None = None
    executed: int = 0
    acked_ms: int | None = None
    # what a pending modify asked for, applied when acknowledged
    want_price: int | None = None
    want_qty: int | None = None
    quoted_price: int | None = None  # the strategy's price, before any post-only repricing
    venue_ms: int | None = None  # the venue's time of the latest state we know of

    @property
    def modify_unknown(self) -> bool:
        """A modify of this order may or may not have been applied."""
        return self.state == UNKNOWN and self.want_price is not None

    @property
    def open_qty(self) -> int:
        return self.qty - self.executed


@dataclass(frozen=True)
class Place:
    order: Order


@dataclass(frozen=True)
class Modify:
    order: Order
    price: int
    qty: int


@dataclass(frozen=True)
class Cancel:
    order: Order
    reason: str


@dataclass(frozen=True)
class LocalReject:
    """A desired level that the venue would refuse: never sent."""

    level: QuoteLevel
    code: int
    msg: str


def in_send_order(actions: list) -> list:
    """The order `Execution` sends actions in: cancels (they free slots and margin), then
    modifies, then new orders; local rejects last (never sent)."""
    rank = {Cancel: 0, Modify: 1, Place: 2}
    return sorted(actions, key=lambda action: rank.get(type(action), 3))


Action = Place | Modify | Cancel | LocalReject


@dataclass
class Counters:
    placed: int = 0
    modified: int = 0
    canceled: int = 0
    rejected: int = 0
    local_rejects: int = 0
    post_only_rejects: int = 0
    unknown: int = 0
    fills: int = 0


@dataclass
class OrderManager:
    spec: SymbolSpec
    ids: ClientIds
    price_tolerance: int = 0
    size_tolerance: int = 0
    max_age_ms: int = 60_000
    use_modify: bool = True
    post_only_retries: int = 2
    post_only_fallback: str = "reprice"  # or "limit": a plain GTC limit for the cooldown
    post_only_cooldown_ms: int = 5000
    tolerance_share: float = 0.25
    orders: dict[str, Order] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    _tolerance: int = 0
    _plain_until: dict[str, int] = field(default_factory=dict)  # tag → ms (fallback "limit")
    _now: int = 0
    # tag → (the quoted price that was rejected post-only, ticks moved away from it)
    _reprice: dict[str, tuple[int, int]] = field(default_factory=dict)
    # the cycle (the latest diff): what was desired, the mark, slots refused post-only since,
    # and the in-cycle retries each slot has left
    _desired: dict[str, QuoteLevel] = field(default_factory=dict)
    _mark: Any = None
    _post_only_refused: list[str] = field(default_factory=list)
    _retries_left: dict[str, int] = field(default_factory=dict)

    # -- deciding ---------------------------------------------------------------------------

    def diff(self, desired: list[QuoteLevel], now_ms: int, mark_price=None,
             half_spread_ticks: float | None = None) -> list[Action]:
        """What to send so that what rests becomes `desired`. With `half_spread_ticks` (the
        quote's), the price tolerance grows to `tolerance_share` of it: moving an order by a
        tick when it rests sixty ticks from the mid only spends the order budget."""
        actions: list[Action] = []
        self._now = now_ms
        self._mark = mark_price
        self._post_only_refused = []
        self._retries_left = {}
        self._tolerance = self.price_tolerance
        if half_spread_ticks:
            self._tolerance = max(self.price_tolerance,
                                  int(half_spread_ticks * self.tolerance_share))
        wanted = {level.tag: level for level in desired}
        self._desired = wanted
        for order in list(self.orders.values()):
            if order.tag not in wanted and order.state in (LIVE, PENDING_MODIFY):
                actions.append(self._cancel(order, "not in quote"))
        for tag, quoted in wanted.items():
            level = self._repriced(quoted)
            current = self.slot(tag)
            if current is None:
                actions.append(self._place(level, now_ms, mark_price, quoted.price))
            elif current.state == LIVE:
                action = self._refresh(current, level, now_ms, mark_price)
                if action is not None:
                    actions.append(action)
            # pending, unknown or being cancelled: wait until its fate is known
        return actions

    def cancel_all(self, reason: str, unsettled: bool = False) -> list[Action]:
        """Cancel what rests; with `unsettled` (shutdown) also orders whose fate is unknown
        or not yet acknowledged: cancelling by client order id is safe either way (-2011 if
        the venue never had it)."""
        states = (LIVE, PENDING_MODIFY) + ((UNKNOWN, PENDING_NEW) if unsettled else ())
        self._desired, self._post_only_refused = {}, []  # nothing to retry after this
        return [self._cancel(o, reason) for o in list(self.orders.values())
                if o.state in states]

    def retry_post_only(self) -> list[Action]:
        """The slots refused post-only (-5022) since the latest diff, to place again now,
        within the cycle: repriced a tick further (`reprice`) or as a plain limit (`limit`),
        at most `post_only_retries` times per slot between two diffs; a slot the latest
        quote no longer holds is left alone. The shell sends these right after the reject
        (`Execution.execute` does, until this is empty)."""
        tags, self._post_only_refused = self._post_only_refused, []
        actions: list[Action] = []
        for tag in dict.fromkeys(tags):
            quoted = self._desired.get(tag)
            left = self._retries_left.get(tag, self.post_only_retries)
            if quoted is None or left <= 0 or self.slot(tag) is not None:
                continue
            self._retries_left[tag] = left - 1
            actions.append(self._place(self._repriced(quoted), self._now, self._mark,
                                       quoted.price))
        return actions

    def slot(self, tag: str) -> Order | None:
        """The order occupying a slot, whatever its state."""
        for order in self.orders.values():
            if order.tag == tag:
                return order
        return None

    def resting(self) -> list[Order]:
        return [o for o in self.orders.values() if o.state != PENDING_CANCEL]

    def _refresh(self, order: Order, level: QuoteLevel, now_ms: int, mark) -> Action | None:
        same_side = order.side == level.side
        close_price = abs(order.price - level.price) <= self._tolerance
        close_qty = abs(order.open_qty - level.qty) <= self.size_tolerance
        young = now_ms - (order.acked_ms or order.sent_ms) < self.max_age_ms
        flags_same = (order.time_in_force, order.reduce_only) == (level.time_in_force,
                                                                   level.reduce_only)
        if same_side and close_price and close_qty and young and flags_same:
            return None
        if same_side and flags_same and self.use_modify and young and level.qty > order.executed:
            rejection = self._check(level, mark)
            if rejection is not None:
                return self._cancel(order, f"would be rejected: {rejection.msg}")
            order.state, order.want_price, order.want_qty = PENDING_MODIFY, level.price, level.qty
            self.counters.modified += 1
            return Modify(order, level.price, level.qty)
        return self._cancel(order, "stale" if not young else "changed")

    def _place(self, level: QuoteLevel, now_ms: int, mark, quoted_price: int) -> Action:
        rejection = self._check(level, mark)
        if rejection is not None:
            self.counters.local_rejects += 1
            return LocalReject(level, rejection.code, rejection.msg)
        order = Order(level.tag, self.ids.next(), level.side, level.price, level.qty,
                      level.time_in_force, level.reduce_only, PENDING_NEW, now_ms,
                      quoted_price=quoted_price)
        self.orders[order.client_order_id] = order
        self.counters.placed += 1
        return Place(order)

    def _cancel(self, order: Order, reason: str) -> Cancel:
        order.state = PENDING_CANCEL
        return Cancel(order, reason)

    def _check(self, level: QuoteLevel, mark):
        spec = self.spec
        return spec.check_order(level.side, "LIMIT", spec.qty_str(level.qty),
                                spec.price_str(level.price), mark_price=mark,
                                reduce_only=level.reduce_only)

    def _repriced(self, level: QuoteLevel) -> QuoteLevel:
        if self.post_only_fallback == "limit":
            return self._plain(level)
        return self._stepped_away(level)

    def _plain(self, level: QuoteLevel) -> QuoteLevel:
        """After a -5022 with the "limit" fallback: the slot goes out as GTC until its cooldown
        ends."""
        until = self._plain_until.get(level.tag)
        if until is None or level.time_in_force != "GTX":
            return level
        if self._now >= until:
            del self._plain_until[level.tag]
            return level
        return QuoteLevel(level.side, level.price, level.qty, level.tag, "GTC", level.reduce_only)

    def _stepped_away(self, level: QuoteLevel) -> QuoteLevel:
        """After a -5022 the slot's post-only price steps away from the touch, a tick per
        reject (up to `post_only_retries`), for as long as the strategy keeps quoting the
        price that was rejected; a new quoted price starts afresh."""
        base, away = self._reprice.get(level.tag, (None, 0))
        if base != level.price:
            self._reprice.pop(level.tag, None)
            return level
        price = level.price - away if level.side == BUY else level.price + away
        return QuoteLevel(level.side, price, level.qty, level.tag, level.time_in_force,
                          level.reduce_only)

    # -- what the venue said ----------------------------------------------------------------

    def on_ack(self, client_order_id: str, response: dict[str, Any], now_ms: int) -> None:
        """A 200 to a place or modify, or a query's answer (the venue's order JSON): its
        `price` and `origQty`, when it has them, are what rests."""
        order = self.orders.get(client_order_id)
        if order is None:
            return
        order.order_id = int(response["orderId"])
        order.acked_ms = now_ms
        if order.state in (PENDING_MODIFY, UNKNOWN) and order.want_price is not None:
            order.price, order.qty = order.want_price, order.want_qty
            order.want_price = order.want_qty = None
        if "price" in response and "origQty" in response:
            order.price = self.spec.to_ticks(response["price"])
            order.qty = self.spec.to_steps(response["origQty"])
        updated = response.get("updateTime")
        if updated is not None:
            order.venue_ms = max(order.venue_ms or 0, int(updated))
        if order.state in (PENDING_NEW, PENDING_MODIFY, UNKNOWN):
            order.state = LIVE
        self._apply_status(order, response)

    def on_reject(self, client_order_id: str, code: int, msg: str) -> str | None:
        """A definite refusal of a place or modify. Returns the slot freed, if any."""
        order = self.orders.get(client_order_id)
        if order is None:
            return None
        self.counters.rejected += 1
        if order.state == PENDING_MODIFY:
            if code in UNKNOWN_ORDER:  # it was already gone
                del self.orders[client_order_id]
                return order.tag
            if code == NO_NEED_TO_MODIFY:  # it rests there already (we had missed it)
                order.price, order.qty = order.want_price, order.want_qty
            order.state, order.want_price, order.want_qty = LIVE, None, None
            return None
        if code == POST_ONLY_REJECT:
            self.counters.post_only_rejects += 1
            self._post_only_refused.append(order.tag)
            if self.post_only_fallback == "limit":
                self._plain_until[order.tag] = self._now + self.post_only_cooldown_ms
            else:
                base, away = self._reprice.get(order.tag, (order.quoted_price, 0))
                self._reprice[order.tag] = (base, min(away + 1, self.post_only_retries))
        del self.orders[client_order_id]
        return order.tag

    def on_unknown(self, client_order_id: str) -> None:
        """The place or modify may or may not have reached the engine: hold the slot until
        settled (a modify keeps what it asked for, applied if the venue's answer lacks a
        price)."""
        order = self.orders.get(client_order_id)
        if order is not None:
            order.state = UNKNOWN
            self.counters.unknown += 1

    def on_settled(self, client_order_id: str, found: dict[str, Any] | None,
                   now_ms: int) -> None:
        """The answer to querying an unknown order: its JSON (price and size as they rest,
        whether a modify applied or not), or None when the venue has no such order (a place
        that never arrived, or an order gone before its modify)."""
        order = self.orders.get(client_order_id)
        if order is None:
            return
        if found is None:
            del self.orders[client_order_id]
            return
        self.on_ack(client_order_id, found, now_ms)

    def on_cancel_ack(self, client_order_id: str, response: dict[str, Any]) -> None:
        order = self.orders.get(client_order_id)
        if order is not None:
            self._apply_status(order, response)
            self.orders.pop(client_order_id, None)

    def on_cancel_reject(self, client_order_id: str, code: int) -> None:
        """-2011: the venue has no such open order (filled or cancelled already): gone.
        Any other code: it is still there; back to live, the next diff decides again."""
        order = self.orders.get(client_order_id)
        if order is None:
            return
        if code in UNKNOWN_ORDER:
            del self.orders[client_order_id]
        else:
            order.state = LIVE

    def unknown_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.state == UNKNOWN]

    # -- what the user stream said ----------------------------------------------------------

    def on_update(self, line: dict[str, Any], now_ms: int) -> None:
        """An `order` line (docs/streams.md) for one of ours. An AMENDMENT (a modify
        applied) sets the order's price and size, unless it is older than what we know (a late
        event of an earlier modify); it also settles a modify whose outcome was unknown, which
        other events (a fill, say) do not."""
        order = self.orders.get(line.get("clientOrderId", ""))
        if order is None:
            return
        if order.order_id is None:
            order.order_id = int(line["orderId"])
        ts = line.get("ts")
        fresh = ts is None or order.venue_ms is None or int(ts) >= order.venue_ms
        if ts is not None:
            order.venue_ms = max(order.venue_ms or 0, int(ts))
        if line.get("execType") == "AMENDMENT" and fresh and "price" in line and "qty" in line:
            order.price = self.spec.to_ticks(line["price"])
            order.qty = self.spec.to_steps(line["qty"])
            if order.state == UNKNOWN:
                order.want_price = order.want_qty = None
        if (order.state in (PENDING_NEW, UNKNOWN) and not order.modify_unknown
                and line["status"] not in TERMINAL_STATUSES):
            order.state, order.acked_ms = LIVE, now_ms
        order.executed = max(order.executed, self.spec.to_steps(line["executedQty"]))
        if line["status"] in TERMINAL_STATUSES:
            del self.orders[order.client_order_id]

    def on_fill(self, fill: OwnFill) -> None:
        self.counters.fills += 1
        order = self.orders.get(fill.client_order_id) or next(
            (o for o in self.orders.values() if o.order_id == fill.order_id), None)
        if order is not None:  # a fill recovered from userTrades may not name its client id
            order.executed = min(order.qty, order.executed + fill.qty)
            if order.executed >= order.qty:
                del self.orders[order.client_order_id]

    def _apply_status(self, order: Order, response: dict[str, Any]) -> None:
        executed = response.get("executedQty")
        if executed is not None:
            order.executed = max(order.executed, self.spec.to_steps(executed))
        if response.get("status") in TERMINAL_STATUSES:
            self.orders.pop(order.client_order_id, None)

    # -- start-up ---------------------------------------------------------------------------

    def foreign_or_stale(self, open_orders: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
        """Split the venue's open orders at start: (ours from an earlier run: to cancel,
        not ours: to leave alone and report)."""
        ours = [o for o in open_orders if self.ids.ours(o.get("clientOrderId", ""))]
        others = [o for o in open_orders if not self.ids.ours(o.get("clientOrderId", ""))]
        return ours, others


def manager_for(spec: SymbolSpec, ids: ClientIds, strategy, **settings: Any) -> OrderManager:
    """An order manager with the post-only settings of a symbol's strategy config."""
    return OrderManager(spec, ids, post_only_fallback=strategy.post_only_fallback,
                        post_only_retries=strategy.post_only_retries,
                        post_only_cooldown_ms=strategy.post_only_cooldown, **settings)
