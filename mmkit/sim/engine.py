"""The simulator's matching engine: pure, in virtual time, no I/O.

Everything is in exact units: prices in ticks, quantities in steps of the symbol's
SymbolSpec; money (balances, PnL, fees) in Decimal; times in ms of venue time, always passed
in by the caller.

The engine holds, per symbol, the *public book* = the market's levels (from the feed) plus
the quantity of our resting orders, with Binance's update-id sequence; our orders with their
queue position; and one account (single-asset mode: each symbol margins in its marginAsset).

Every mutating call returns the list of `EngineEvent`s it caused, in order; the server turns
them into wire messages (ORDER_TRADE_UPDATE, TRADE_LITE, ACCOUNT_UPDATE, depthUpdate, trades).
Refusals raise `Reject(code, msg)` with Binance's code and message, and change nothing.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from decimal import Decimal

from mmkit.book import OrderBook
from mmkit.model import DepthDiff, DepthSnapshot, Level, MarketEvent, MarketTrade, MarkPrice
from mmkit.sim.instruments import max_leverage
from mmkit.sim.queue import queue_model
from mmkit.symbols import SymbolSpec


class Reject(Exception):
    """Binance's refusal of a request: nothing changed."""

    def __init__(self, code: int, msg: str):
        super().__init__(f"{code}: {msg}")
        self.code, self.msg = code, msg


@dataclass
class EngineConfig:
    maker_fee: Decimal = Decimal("0.0002")
    taker_fee: Decimal = Decimal("0.0005")
    balances: dict[str, Decimal] = field(
        default_factory=lambda: {"USDC": Decimal(100), "USDT": Decimal(100)}
    )
    default_leverage: int = 20
    queue_model: str = "risk_averse"  # see mmkit.sim.queue: "risk_averse" | "prob_power"
    funding_interval_ms: int = 8 * 3600 * 1000
    seed: int = 0  # for probabilistic queue models
    default_stp_mode: str = "NONE"  # as recorded mainnet orders show with the field unset


@dataclass
class OrderRequest:
    symbol: str
    side: str  # BUY | SELL
    type: str  # LIMIT | MARKET
    quantity: int  # steps
    price: int | None = None  # ticks; None for MARKET
    time_in_force: str = "GTC"  # GTC | IOC | FOK | GTX | GTD
    reduce_only: bool = False
    client_order_id: str | None = None  # generated when None
    position_side: str = "BOTH"
    stp_mode: str | None = None  # None → EngineConfig.default_stp_mode
    good_till_date: int = 0
    price_match: str = "NONE"


@dataclass
class Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    price: int  # ticks (0 for MARKET)
    orig_qty: int  # steps
    executed_qty: int = 0
    cum_quote: Decimal = Decimal(0)
    status: str = "NEW"  # NEW PARTIALLY_FILLED FILLED CANCELED EXPIRED EXPIRED_IN_MATCH
    reduce_only: bool = False
    position_side: str = "BOTH"
    stp_mode: str = "NONE"
    good_till_date: int = 0
    price_match: str = "NONE"
    time: int = 0
    update_time: int = 0
    expire_reason: int = 0  # Binance's `er`
    queue_ahead: float = 0.0  # steps of the market's quantity ahead of us (see sim.queue)

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass
class Fill:
    trade_id: int
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    price: int
    qty: int
    quote_qty: Decimal
    commission: Decimal  # positive = paid; negative = rebate
    commission_asset: str
    realized_pnl: Decimal
    maker: bool
    ts: int
    position_side: str = "BOTH"


@dataclass
class Position:
    symbol: str
    amount: int = 0  # signed steps
    entry_price: Decimal = Decimal(0)
    break_even_price: Decimal = Decimal(0)
    accumulated_realized: Decimal = Decimal(0)  # pre-fee
    open_fees: Decimal = Decimal(0)  # commission paid to open what is still held
    leverage: int = 20
    margin_type: str = "cross"
    update_time: int = 0


@dataclass
class Balance:
    asset: str
    wallet: Decimal
    update_time: int = 0


@dataclass
class Income:
    tran_id: int
    symbol: str
    income_type: str  # REALIZED_PNL | COMMISSION | FUNDING_FEE | TRANSFER
    income: Decimal
    asset: str
    ts: int
    trade_id: int | None = None
    info: str = ""


@dataclass
class Funding:
    """One funding settlement of a symbol (`GET /fapi/v1/fundingRate`), ours or not."""

    symbol: str
    ts: int
    rate: Decimal
    mark: Decimal


# -- events ----------------------------------------------------------------------------------


@dataclass
class OrderUpdate:
    """One ORDER_TRADE_UPDATE: `order` is a snapshot after the change; `fill` set for TRADE."""

    ts: int
    execution_type: str  # NEW CANCELED EXPIRED TRADE AMENDMENT
    order: Order
    fill: Fill | None = None


@dataclass
class AccountChange:
    """One ACCOUNT_UPDATE: only the changed balances and positions."""

    ts: int
    reason: str  # ORDER | FUNDING_FEE | DEPOSIT ...
    balances: list[Balance]
    positions: list[Position]
    balance_change: Decimal = Decimal(0)  # Binance's `bc`: the change other than PnL and fees
    symbol: str = ""  # what caused it (not on Binance's wire: a funding update names none)


@dataclass
class BookDelta:
    """A change of the public book, as the diff-depth stream publishes it (absolute quantities,
    0 deletes; U/u/pu on one chain with the snapshot's lastUpdateId)."""

    symbol: str
    ts: int
    first_id: int
    last_id: int
    prev_id: int
    bids: list[Level]
    asks: list[Level]
    tx_ts: int = 0


@dataclass
class TradePrint:
    """A public trade (market trades replayed or generated, and fills where we took)."""

    symbol: str
    ts: int
    trade_id: int
    price: int
    qty: int
    buyer_is_maker: bool


EngineEvent = OrderUpdate | AccountChange | BookDelta | TradePrint


BUY, SELL = "BUY", "SELL"
MAX_OPEN_ORDERS = 200
_HOUR_MS = 3600 * 1000
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _sign(side: str) -> int:
    return 1 if side == BUY else -1


class _Book:
    """One symbol: the market's levels (`market`, our local copy of the feed's book, in which
    our own taker fills consume liquidity until the feed next sets those levels), our resting
    orders per price in time priority, the update-id chain and the mark."""

    def __init__(self, spec: SymbolSpec):
        self.spec = spec
        self.market = OrderBook()
        self.orders: dict[str, dict[int, list[Order]]] = {BUY: {}, SELL: {}}
        self.last_id = 0
        self.mark: Decimal = Decimal(0)
        self.index: Decimal = Decimal(0)
        self.funding_rate: Decimal = Decimal(0)
        self.next_funding_time = 0
        self.countdown_deadline = 0
        self.gtd_deadline = 0  # the earliest goodTillDate among resting orders (0: none)
        self.last_trade_id = 0
        # per side, Σ price ticks × leaves of our resting orders that are not reduce-only: their
        # margin while the position does not reduce on that side (kept as orders rest, fill
        # and leave, so a margin check does not walk every open order)
        self.growing_ticks = {BUY: 0, SELL: 0}

    def ours(self, side: str, price: int) -> int:
        return sum(o.orig_qty - o.executed_qty for o in self.orders[side].get(price, ()))

    def public_qty(self, side: str, price: int) -> int:
        levels = self.market.bids if side == BUY else self.market.asks
        return levels.get(price, 0) + self.ours(side, price)

    def best_own(self, side: str) -> int | None:
        prices = self.orders[side]
        if not prices:
            return None
        return max(prices) if side == BUY else min(prices)

    def public_best(self, side: str) -> int | None:
        market = self.market.best_bid if side == BUY else self.market.best_ask
        own = self.best_own(side)
        candidates = [p for p in (market, own) if p is not None]
        if not candidates:
            return None
        return max(candidates) if side == BUY else min(candidates)

    def reference_price(self) -> Decimal:
        """Mark when the feed has given one, else the public mid: for margin and PnL."""
        if self.mark:
            return self.mark
        bid, ask = self.public_best(BUY), self.public_best(SELL)
        if bid is not None and ask is not None:
            return (bid + ask) * self.spec.tick_size / 2
        return Decimal(0)


class Engine:
    """See the module docstring. All methods are synchronous and deterministic for a seed."""

    def __init__(self, specs: dict[str, SymbolSpec], config: EngineConfig | None = None):
        self.config = config or EngineConfig()
        self.specs = specs
        self.books = {symbol: _Book(spec) for symbol, spec in specs.items()}
        self.queue = queue_model(self.config.queue_model)
        self.rng = random.Random(self.config.seed)
        self.balances = {a: Balance(a, Decimal(w)) for a, w in self.config.balances.items()}
        self.positions = {
            s: Position(s, leverage=min(self.config.default_leverage, max_leverage(s)))
            for s in specs
        }
        self.orders: dict[int, Order] = {}  # every order, open or closed, by orderId
        self.fills: list[Fill] = []
        self.incomes: list[Income] = []
        self.fundings: list[Funding] = []
        self.now = 0
        self._next_order_id = 8_389_765_000_000_000
        self._next_tran_id = 1
        self._next_trade_id = 5_000_000_000

    # -- market side ---------------------------------------------------------------------

    def apply(self, event: MarketEvent) -> list[EngineEvent]:
        """Feed one market event (snapshot, diff, trade, mark). Fills our orders it reaches."""
        self.now = max(self.now, event.ts)
        book = self.books.get(event.symbol)
        if book is None:
            return []
        fills = len(self.fills)
        if isinstance(event, DepthDiff):
            events = self._on_diff(book, event)
        elif isinstance(event, MarketTrade):
            events = self._on_trade(book, event)
        elif isinstance(event, MarkPrice):
            book.mark, book.index = event.mark, event.index
            book.funding_rate = event.funding_rate
            book.next_funding_time = event.next_funding_time
            return []
        elif isinstance(event, DepthSnapshot):
            events = self._on_snapshot(book, event)
        else:
            return []  # BookTicker: the engine derives its own
        if len(self.fills) != fills:  # the position moved
            events += self._expire_surplus_reduce_only(book, event.ts)
        return events

    def _on_snapshot(self, book: _Book, snap: DepthSnapshot) -> list[EngineEvent]:
        old_bids, old_asks = dict(book.market.bids), dict(book.market.asks)
        book.market.load(snap.bids, snap.asks)
        bids = _changes(old_bids, book.market.bids)
        asks = _changes(old_asks, book.market.asks)
        for price, old, new in bids:
            self._queue_on_depth(book, BUY, price, old, new)
        for price, old, new in asks:
            self._queue_on_depth(book, SELL, price, old, new)
        first = book.last_id + 1
        book.last_id = max(snap.last_update_id, book.last_id)
        events: list[EngineEvent] = []
        if book.last_id and (bids or asks) and first > 1:
            events.append(self._delta(book, snap.ts, first, bids, asks))
        events += self._match_crossed(book, snap.ts)
        return _one_delta(events)

    def _on_diff(self, book: _Book, diff: DepthDiff) -> list[EngineEvent]:
        market = book.market
        ours_bid, ours_ask = book.orders[BUY], book.orders[SELL]
        # queues move only where we rest: look up the old quantity at those levels alone
        moved = [(BUY, p, market.bids.get(p, 0), q) for p, q in diff.bids if p in ours_bid] + \
            [(SELL, p, market.asks.get(p, 0), q) for p, q in diff.asks if p in ours_ask]
        market.apply(diff.bids, diff.asks)
        for side, price, old, new in moved:
            self._queue_on_depth(book, side, price, old, new)
        prev = book.last_id
        last = max(diff.last_id, prev + 1)
        book.last_id = last
        delta = BookDelta(
            diff.symbol, diff.ts, diff.first_id, last, prev or diff.prev_id,
            [(p, q + book.ours(BUY, p) if p in ours_bid else q) for p, q in diff.bids]
            if ours_bid else list(diff.bids),
            [(p, q + book.ours(SELL, p) if p in ours_ask else q) for p, q in diff.asks]
            if ours_ask else list(diff.asks),
            diff.tx_ts,
        )
        if not (ours_bid or ours_ask):
            return [delta]
        return _one_delta([delta, *self._match_crossed(book, diff.ts)])

    def _public(self, book: _Book, side: str, price: int, market_qty: int) -> int:
        orders = book.orders[side]
        if not orders or price not in orders:
            return market_qty
        return market_qty + book.ours(side, price)

    def _queue_on_depth(self, book: _Book, side: str, price: int, old: int, new: int) -> None:
        for order in book.orders[side].get(price, ()):
            order.queue_ahead = self.queue.on_depth(order.queue_ahead, old, new)

    def _on_trade(self, book: _Book, trade: MarketTrade) -> list[EngineEvent]:
        """A trade between others. A sell aggressor (buyer is maker) trades down through the
        bids: our bids above its price are filled in full, ours at its price after the queue
        ahead of them; the mirror for a buy aggressor."""
        book.last_trade_id = max(book.last_trade_id, trade.trade_id)
        events: list[EngineEvent] = [TradePrint(trade.symbol, trade.ts, trade.trade_id,
                                                trade.price, trade.qty, trade.buyer_is_maker)]
        side = BUY if trade.buyer_is_maker else SELL
        levels = book.orders[side]
        if not levels:
            return events
        through = [p for p in levels if (p > trade.price if side == BUY else p < trade.price)]
        for price in sorted(through, reverse=side == BUY):
            for order in list(levels.get(price, ())):
                events += self._fill_maker(book, order, order.orig_qty - order.executed_qty,
                                           trade.ts)
        at_price = levels.get(trade.price)
        if at_price:
            ours_before = 0
            fills: list[tuple[Order, int]] = []
            for order in at_price:
                leaves = order.orig_qty - order.executed_qty
                reach = trade.qty - order.queue_ahead - ours_before
                if reach > 0:
                    fills.append((order, min(leaves, int(reach))))
                ours_before += leaves
                order.queue_ahead = max(0.0, order.queue_ahead - trade.qty)
            for order, qty in fills:
                if qty > 0:
                    events += self._fill_maker(book, order, qty, trade.ts)
        return events

    def _match_crossed(self, book: _Book, ts: int) -> list[EngineEvent]:
        """The feed put liquidity at or through a resting order of ours: that liquidity would
        have traded with us, so we fill as maker at our price, consuming it."""
        events: list[EngineEvent] = []
        for side in (BUY, SELL):
            other = book.market.asks if side == BUY else book.market.bids
            while book.orders[side]:
                own = book.best_own(side)
                best = book.market.best_ask if side == BUY else book.market.best_bid
                if best is None or (best > own if side == BUY else best < own):
                    break
                order = book.orders[side][own][0]
                qty = min(order.orig_qty - order.executed_qty, other[best])
                self._consume(book, side, best, qty)
                events += self._fill_maker(book, order, qty, ts)
                events.append(self._delta(book, ts, book.last_id + 1, *self._sides(
                    side, [(best, qty + other.get(best, 0), other.get(best, 0))])))
        return events

    def _sides(self, taker_side: str, changes: list[tuple[int, int, int]]):
        """(bids, asks) of a delta whose changes are on the side a `taker_side` order takes."""
        return ([], changes) if taker_side == BUY else (changes, [])

    def _consume(self, book: _Book, taker_side: str, price: int, qty: int) -> None:
        levels = book.market.asks if taker_side == BUY else book.market.bids
        left = levels.get(price, 0) - qty
        if taker_side == BUY:
            book.market.apply((), [(price, max(left, 0))])
        else:
            book.market.apply([(price, max(left, 0))], ())

    # -- clock -----------------------------------------------------------------------------

    def advance(self, ts: int) -> list[EngineEvent]:
        """Move the clock: funding at nextFundingTime, GTD expiry, countdown cancel-all."""
        self.now = max(self.now, ts)
        events: list[EngineEvent] = []
        for symbol, book in self.books.items():
            if book.countdown_deadline and ts >= book.countdown_deadline:
                book.countdown_deadline = 0
                events += self.cancel_all(ts, symbol, reason="EXPIRED")
            if book.gtd_deadline and ts >= book.gtd_deadline:
                events += self._expire_gtd(book, ts)
            if book.next_funding_time and ts >= book.next_funding_time:
                self.fundings.append(Funding(symbol, book.next_funding_time, book.funding_rate,
                                             book.reference_price()))
                events += self._funding(book, book.next_funding_time)
                interval = self.config.funding_interval_ms
                book.next_funding_time += interval * (
                    1 + (ts - book.next_funding_time) // interval)
        return events

    def _expire_gtd(self, book: _Book, ts: int) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        book.gtd_deadline = 0
        for order in [o for lv in book.orders.values() for q in lv.values() for o in q]:
            if not order.good_till_date:
                continue
            if ts >= order.good_till_date:
                events += self._close(book, order, "EXPIRED", ts)
            elif not book.gtd_deadline or order.good_till_date < book.gtd_deadline:
                book.gtd_deadline = order.good_till_date
        return events

    def _funding(self, book: _Book, ts: int) -> list[EngineEvent]:
        position = self.positions[book.spec.symbol]
        if not position.amount or not book.funding_rate:
            return []
        notional = position.amount * book.spec.step_size * book.reference_price()
        payment = -(notional * book.funding_rate)
        balance = self._credit(book, payment, ts)
        self._income(book.spec.symbol, "FUNDING_FEE", payment, balance.asset, ts,
                     info="FUNDING_FEE")
        return [AccountChange(ts, "FUNDING_FEE", [_copy(balance)], [], payment,  # cross: no P
                              book.spec.symbol)]

    # -- order side ------------------------------------------------------------------------

    def place(self, ts: int, request: OrderRequest) -> tuple[Order, list[EngineEvent]]:
        self.now = max(self.now, ts)
        book = self._book(request.symbol)
        self._check_request(book, request)
        order = self._new_order(request, ts)
        position = self.positions[request.symbol]
        if request.reduce_only and not _reduces(position.amount, request.side):
            raise Reject(-2022, "ReduceOnly Order is rejected.")
        crosses = self._would_take(book, request)
        if request.time_in_force == "GTX" and crosses:
            raise Reject(-5022, "Due to the order could not be executed as maker, the Post "
                                "Only order will be rejected. The order will not be recorded "
                                "in the order history")
        self._check_margin(book, request, order)
        if request.time_in_force == "FOK" and not self._fillable(book, request):
            raise Reject(-5021, "Due to the order could not be filled immediately, the FOK "
                                "order has been rejected. The order will not be recorded in "
                                "the order history")
        self.orders[order.order_id] = order
        events: list[EngineEvent] = [OrderUpdate(ts, "NEW", _copy(order))]
        fills = len(self.fills)
        if crosses or request.type == "MARKET":
            events += self._take(book, order, ts)
        if order.is_open:
            events += self._after_taking(book, order, position, ts)
        if len(self.fills) != fills:
            events += self._expire_surplus_reduce_only(book, ts)
        return order, events

    def _expire_surplus_reduce_only(self, book: _Book, ts: int) -> list[EngineEvent]:
        """After the position moved: a resting reduce-only order that can no longer reduce
        expires (EXPIRED, er=4), as on Binance. That is every one when the position is flat
        or on its own side; otherwise each one behind reduce-only orders of higher priority
        (better price, then earlier in the queue) that already cover the whole position."""
        amount = self.positions[book.spec.symbol].amount
        events: list[EngineEvent] = []
        for side in (BUY, SELL):
            levels = book.orders[side]
            if not any(o.reduce_only for q in levels.values() for o in q):
                continue
            cover = abs(amount) if _reduces(amount, side) else 0
            ahead = 0
            for price in sorted(levels, reverse=side == BUY):
                for order in [o for o in levels[price] if o.reduce_only]:
                    if ahead >= cover:
                        events += self._close(book, order, "EXPIRED", ts, reason=4)
                    else:
                        ahead += order.orig_qty - order.executed_qty
        return events

    def _after_taking(self, book: _Book, order: Order, position: Position, ts: int
                      ) -> list[EngineEvent]:
        """What is left of an order after it took: rest it, or expire it with Binance's
        expiry reason (`er`)."""
        if order.reduce_only and not _reduces(position.amount, order.side):
            return self._close(book, order, "EXPIRED", ts, resting=False, reason=4)
        if order.type == "MARKET":
            return self._close(book, order, "EXPIRED", ts, resting=False, reason=9)
        if order.time_in_force in ("IOC", "FOK"):
            return self._close(book, order, "EXPIRED", ts, resting=False, reason=2)
        return self._rest(book, order, ts)

    def _book(self, symbol: str) -> _Book:
        book = self.books.get(symbol)
        if book is None:
            raise Reject(-1121, "Invalid symbol.")
        return book

    def _check_request(self, book: _Book, request: OrderRequest) -> None:
        if request.type == "LIMIT" and request.price is None:
            raise Reject(-1102, "Mandatory parameter 'price' was not sent, was empty/null, "
                                "or malformed.")
        resting = [o for side in book.orders.values() for q in side.values() for o in q]
        if request.client_order_id and any(
            o.client_order_id == request.client_order_id and o.is_open for o in resting
        ):
            raise Reject(-4116, "ClientOrderId is duplicated.")
        if len(resting) >= min(book.spec.max_num_orders, MAX_OPEN_ORDERS):
            raise Reject(-2025, "Reach max open order limit.")
        if request.time_in_force == "GTD" and request.good_till_date <= self.now + 600_000:
            raise Reject(-4223, "goodTillDate must be greater than the current time plus "
                                "600 seconds.")

    def _new_order(self, request: OrderRequest, ts: int) -> Order:
        self._next_order_id += 1
        cid = request.client_order_id or "".join(self.rng.choices(_ALNUM, k=22))
        return Order(
            order_id=self._next_order_id, client_order_id=cid, symbol=request.symbol,
            side=request.side, type=request.type,
            time_in_force="GTC" if request.type == "MARKET" else request.time_in_force,
            price=request.price or 0, orig_qty=request.quantity,
            reduce_only=request.reduce_only, position_side=request.position_side,
            stp_mode=request.stp_mode or self.config.default_stp_mode,
            good_till_date=request.good_till_date if request.time_in_force == "GTD" else 0,
            price_match=request.price_match, time=ts, update_time=ts,
        )

    def _would_take(self, book: _Book, request: OrderRequest) -> bool:
        if request.type == "MARKET":
            return True
        best = book.public_best(_other(request.side))
        if best is None:
            return False
        return request.price >= best if request.side == BUY else request.price <= best

    def _fillable(self, book: _Book, request: OrderRequest) -> bool:
        """FOK: can the market (not our own orders) fill the whole quantity now?"""
        top = book.market.top_asks if request.side == BUY else book.market.top_bids
        need, n = request.quantity, 64
        while True:
            levels = top(n)
            for price, qty in levels:
                if request.price is not None and not _reaches(request.side, request.price, price):
                    return False
                need -= qty
                if need <= 0:
                    return True
            if len(levels) < n:
                return False
            need, n = request.quantity, n * 4

    def _take(self, book: _Book, order: Order, ts: int) -> list[EngineEvent]:
        """Match a marketable order level by level, best first, over the public book. At a
        level where we rest, the taker first takes the market's quantity queued ahead of our
        order (its `queue_ahead`), as the venue's FIFO would; only when it reaches our order
        does self-trade prevention act (NONE: the two trade). The book changes go out as one
        delta, ahead of the fills."""
        events: list[EngineEvent] = []
        changes: list[tuple[int, int, int]] = []
        position = self.positions[order.symbol]
        opposite = _other(order.side)
        market = book.market.asks if order.side == BUY else book.market.bids
        start = book.last_id
        while order.is_open:
            price = book.public_best(opposite)
            if price is None or (order.type == "LIMIT" and not _reaches(order.side, order.price,
                                                                        price)):
                break
            leaves = order.orig_qty - order.executed_qty
            if order.reduce_only:
                leaves = min(leaves, abs(position.amount))
            if leaves <= 0:
                break
            own = book.orders[opposite].get(price)
            available = market.get(price, 0)
            if own:  # only the market's quantity ahead of our first order, then our order
                available = min(available, math.ceil(own[0].queue_ahead))
                if available <= 0:
                    maker, executed = own[0], order.executed_qty
                    events += self._self_trade(book, order, maker, leaves, ts)
                    if maker.is_open and order.is_open and order.executed_qty == executed:
                        break  # no progress (cannot happen; never loop forever)
                    continue
            take = min(leaves, available)
            if take <= 0:
                break
            old = market[price]
            self._consume(book, order.side, price, take)
            for mine in own or ():
                mine.queue_ahead = max(0.0, mine.queue_ahead - take)
            changes.append((price, old, old - take))
            events += self._execute(book, order, price, take, maker=False, ts=ts)
            events.append(TradePrint(order.symbol, ts, self.fills[-1].trade_id, price, take,
                                     buyer_is_maker=order.side == SELL))
        return self._with_one_delta(book, ts, start, order.side, changes, events)

    def _with_one_delta(self, book: _Book, ts: int, start: int, taker_side: str,
                        changes: list[tuple[int, int, int]], events: list[EngineEvent]
                        ) -> list[EngineEvent]:
        """`events` with their book deltas (our orders met on the way) and the levels a taker
        consumed (`changes`) as one delta in front, covering ids start+1…: the public book is
        published once, on an unbroken chain."""
        deltas = [e for e in events if isinstance(e, BookDelta)]
        if not changes and not deltas:
            return events
        bids = {p: None for d in deltas for p, _ in d.bids}
        asks = {p: None for d in deltas for p, _ in d.asks}
        for price, *_ in changes:
            (asks if taker_side == BUY else bids)[price] = None
        delta = self._delta(book, ts, book.last_id + 1, [(p,) for p in bids],
                            [(p,) for p in asks])
        delta.first_id, delta.prev_id = start + 1, start
        return [delta, *(e for e in events if not isinstance(e, BookDelta))]

    def _self_trade(self, book: _Book, taker: Order, maker: Order, leaves: int, ts: int
                    ) -> list[EngineEvent]:
        """Our taker reaches one of our resting orders. EXPIRE_MAKER / EXPIRE_TAKER /
        EXPIRE_BOTH as Binance documents them (GTC, IOC and GTD takers only; the expired
        orders end EXPIRED_IN_MATCH); NONE lets the two trade with each other at the maker's
        price (both pay commission)."""
        mode = taker.stp_mode if taker.time_in_force in ("GTC", "IOC", "GTD") else "NONE"
        events: list[EngineEvent] = []
        if mode == "NONE":
            before = maker.executed_qty
            events += self._fill_maker(book, maker, min(leaves, maker.orig_qty -
                                                        maker.executed_qty), ts)
            traded = maker.executed_qty - before  # less when the maker is reduce-only
            if traded:
                events += self._execute(book, taker, maker.price, traded, maker=False, ts=ts)
            return events
        if mode in ("EXPIRE_MAKER", "EXPIRE_BOTH"):
            events += self._close(book, maker, "EXPIRED_IN_MATCH", ts, reason=1)
        if mode in ("EXPIRE_TAKER", "EXPIRE_BOTH"):
            reason = 3 if taker.time_in_force == "IOC" else 1
            events += self._close(book, taker, "EXPIRED_IN_MATCH", ts, resting=False,
                                  reason=reason)
        return events

    def _rest(self, book: _Book, order: Order, ts: int) -> list[EngineEvent]:
        levels = book.market.bids if order.side == BUY else book.market.asks
        order.queue_ahead = float(levels.get(order.price, 0))
        queue = book.orders[order.side].setdefault(order.price, [])
        queue.append(order)
        if not order.reduce_only:
            book.growing_ticks[order.side] += order.price * (order.orig_qty - order.executed_qty)
        if order.good_till_date and (not book.gtd_deadline
                                     or order.good_till_date < book.gtd_deadline):
            book.gtd_deadline = order.good_till_date
        public = book.public_qty(order.side, order.price)
        return [self._delta(book, ts, book.last_id + 1, *self._level(order.side, order.price,
                                                                      public))]

    def _level(self, side: str, price: int, qty: int):
        return ([(price, qty)], []) if side == BUY else ([], [(price, qty)])

    def _delta(self, book: _Book, ts: int, first: int, bids: list, asks: list) -> BookDelta:
        """A book change of ours (or a consumed level) on the same id chain as the feed's."""
        prev = book.last_id
        book.last_id = max(first, prev + 1)
        fix = [(p, self._public(book, BUY, p, book.market.bids.get(p, 0))) for p, *_ in bids]
        fax = [(p, self._public(book, SELL, p, book.market.asks.get(p, 0))) for p, *_ in asks]
        return BookDelta(book.spec.symbol, ts, book.last_id, book.last_id, prev, fix, fax, ts)

    def _fill_maker(self, book: _Book, order: Order, qty: int, ts: int) -> list[EngineEvent]:
        position = self.positions[order.symbol]
        if order.reduce_only:
            qty = min(qty, abs(position.amount)) if _reduces(position.amount, order.side) else 0
        events: list[EngineEvent] = []
        if qty > 0:
            events += self._execute(book, order, order.price, qty, maker=True, ts=ts)
        if order.is_open and order.reduce_only and not _reduces(position.amount, order.side):
            events += self._close(book, order, "EXPIRED", ts, reason=4)
        if not order.is_open:
            self._unrest(book, order)
        events.append(self._delta(book, ts, book.last_id + 1,
                                  *self._level(order.side, order.price, 0)))
        return events

    def _unrest(self, book: _Book, order: Order) -> None:
        queue = book.orders[order.side].get(order.price)
        if queue and order in queue:
            queue.remove(order)
            if not queue:
                del book.orders[order.side][order.price]
            if not order.reduce_only:
                book.growing_ticks[order.side] -= order.price * (order.orig_qty -
                                                                 order.executed_qty)

    def _execute(self, book: _Book, order: Order, price: int, qty: int, *, maker: bool,
                 ts: int) -> list[EngineEvent]:
        """One fill: the order, the position, the wallet, incomes; ORDER_TRADE_UPDATE and
        ACCOUNT_UPDATE."""
        spec = book.spec
        quote = spec.notional(price, qty)
        fee_rate = self.config.maker_fee if maker else self.config.taker_fee
        commission = quote * fee_rate
        position = self.positions[order.symbol]
        realized = self._update_position(position, spec, order.side, price, qty, commission, ts)
        order.executed_qty += qty
        if maker and not order.reduce_only:  # a resting order: its leaves shrink
            book.growing_ticks[order.side] -= order.price * qty
        order.cum_quote += quote
        order.status = "FILLED" if order.executed_qty == order.orig_qty else "PARTIALLY_FILLED"
        order.update_time = ts
        self._next_trade_id += 1
        asset = spec.margin_asset
        fill = Fill(self._next_trade_id, order.order_id, order.client_order_id, order.symbol,
                    order.side, price, qty, quote, commission, asset, realized, maker, ts)
        self.fills.append(fill)
        balance = self._credit(book, realized - commission, ts)
        if realized:
            self._income(order.symbol, "REALIZED_PNL", realized, asset, ts, fill.trade_id)
        if commission:
            self._income(order.symbol, "COMMISSION", -commission, asset, ts, fill.trade_id)
        return [
            OrderUpdate(ts, "TRADE", _copy(order), fill),
            AccountChange(ts, "ORDER", [_copy(balance)], [_copy(position)]),
        ]

    def _update_position(self, position: Position, spec: SymbolSpec, side: str, price: int,
                         qty: int, commission: Decimal, ts: int) -> Decimal:
        """Apply a fill to a one-way position; return the realized PnL (before fees)."""
        px = price * spec.tick_size
        signed = qty * _sign(side)
        amount = position.amount
        realized = Decimal(0)
        if amount == 0 or (amount > 0) == (signed > 0):
            held = abs(amount)
            position.entry_price = (position.entry_price * held + px * qty) / (held + qty)
            position.open_fees += commission
        else:
            closed = min(qty, abs(amount))
            direction = 1 if amount > 0 else -1
            realized = (px - position.entry_price) * closed * spec.step_size * direction
            position.open_fees -= position.open_fees * closed / abs(amount)
            opened = qty - closed
            if opened:
                position.entry_price = px
                position.open_fees = commission * opened / qty
            elif closed == abs(amount):
                position.entry_price = Decimal(0)
                position.open_fees = Decimal(0)
        position.amount = amount + signed
        position.accumulated_realized += realized
        position.break_even_price = self._break_even(position, spec)
        position.update_time = ts
        return realized

    def _break_even(self, position: Position, spec: SymbolSpec) -> Decimal:
        """The price at which closing (as taker) returns the commissions paid so far: simplified
        from Binance's, which is not documented in full."""
        if not position.amount:
            return Decimal(0)
        held = abs(position.amount) * spec.step_size
        per_unit = position.open_fees / held
        taker = self.config.taker_fee
        if position.amount > 0:
            value = (position.entry_price + per_unit) / (1 - taker)
        else:
            value = (position.entry_price - per_unit) / (1 + taker)
        return value.quantize(Decimal("0.00000001"))

    def _credit(self, book: _Book, amount: Decimal, ts: int) -> Balance:
        asset = book.spec.margin_asset
        balance = self.balances.setdefault(asset, Balance(asset, Decimal(0)))
        balance.wallet += amount
        balance.update_time = ts
        return balance

    def _income(self, symbol: str, kind: str, amount: Decimal, asset: str, ts: int,
                trade_id: int | None = None, info: str | None = None) -> None:
        self.incomes.append(Income(self._next_tran_id, symbol, kind, amount, asset, ts,
                                   trade_id, str(trade_id or "") if info is None else info))
        self._next_tran_id += 1

    def _close(self, book: _Book, order: Order, status: str, ts: int, *, resting: bool = True,
               reason: int = 0) -> list[EngineEvent]:
        if resting:
            self._unrest(book, order)
        order.status = status
        order.update_time = ts
        order.expire_reason = reason
        execution = "CANCELED" if status == "CANCELED" else "EXPIRED"
        events: list[EngineEvent] = [OrderUpdate(ts, execution, _copy(order))]
        if resting and order.type == "LIMIT":
            events.append(self._delta(book, ts, book.last_id + 1, *self._level(
                order.side, order.price, 0)))
        return events

    def cancel(self, ts: int, symbol: str, order_id: int | None = None,
               client_order_id: str | None = None) -> tuple[Order, list[EngineEvent]]:
        self.now = max(self.now, ts)
        book = self._book(symbol)
        order = self.find(symbol, order_id, client_order_id)
        if not order.is_open:
            raise Reject(-2011, "Unknown order sent.")
        return order, self._close(book, order, "CANCELED", ts)

    def find(self, symbol: str, order_id: int | None = None,
             client_order_id: str | None = None) -> Order:
        """An order of ours, open or closed (-2013 when there is none)."""
        if order_id is None and not client_order_id:
            raise Reject(-1102, "Mandatory parameter 'orderid' was not sent, was empty/null, "
                                "or malformed.")
        if order_id is not None:
            order = self.orders.get(order_id)
        else:
            order = next((o for o in reversed(self.orders.values())
                          if o.client_order_id == client_order_id and o.symbol == symbol), None)
        if order is None or order.symbol != symbol:
            raise Reject(-2013, "Order does not exist.")
        return order

    def modify(self, ts: int, symbol: str, side: str, quantity: int, price: int,
               order_id: int | None = None, client_order_id: str | None = None
               ) -> tuple[Order, list[EngineEvent]]:
        """PUT /fapi/v1/order: a resting LIMIT order gets a new price and quantity and goes to
        the back of the queue. It is canceled instead when the new quantity is not above what
        has executed, or when it is GTX and the new price would take. STP resets to NONE."""
        self.now = max(self.now, ts)
        book = self._book(symbol)
        order = self.find(symbol, order_id, client_order_id)
        if not order.is_open:
            raise Reject(-2013, "Order does not exist.")
        if order.type != "LIMIT":
            raise Reject(-5024, "Only limit order is supported.")
        if side != order.side:
            raise Reject(-5025, "Side does not match.")
        if quantity == order.orig_qty and price == order.price:
            raise Reject(-5027, "No need to modify the order.")
        request = OrderRequest(symbol, side, "LIMIT", quantity, price, order.time_in_force)
        crosses = self._would_take(book, request)
        if quantity <= order.executed_qty or (order.time_in_force == "GTX" and crosses):
            return order, self._close(book, order, "CANCELED", ts)
        self._unrest(book, order)
        old_price = order.price
        order.orig_qty, order.price, order.update_time = quantity, price, ts
        order.stp_mode = "NONE"
        order.status = "PARTIALLY_FILLED" if order.executed_qty else "NEW"
        events: list[EngineEvent] = [OrderUpdate(ts, "AMENDMENT", _copy(order))]
        if old_price != price:
            events.append(self._delta(book, ts, book.last_id + 1, *self._level(
                side, old_price, 0)))
        fills = len(self.fills)
        if crosses:
            events += self._take(book, order, ts)
        if order.is_open:
            # the same rules as a new order's remainder: a reduce-only order that has closed
            # the position expires (er 4) rather than rest at a price that crosses
            events += self._after_taking(book, order, self.positions[symbol], ts)
        else:
            events.append(self._delta(book, ts, book.last_id + 1, *self._level(
                side, price, 0)))
        if len(self.fills) != fills:
            events += self._expire_surplus_reduce_only(book, ts)
        return order, events

    def cancel_all(self, ts: int, symbol: str, reason: str = "CANCELED") -> list[EngineEvent]:
        self.now = max(self.now, ts)
        book = self._book(symbol)
        events: list[EngineEvent] = []
        for order in self._open_orders(book):
            events += self._close(book, order, reason, ts)
        return events

    def set_countdown(self, ts: int, symbol: str, countdown_ms: int) -> None:
        """countdownCancelAll: cancel every open order of `symbol` unless called again within
        `countdown_ms`; 0 stops the countdown."""
        book = self._book(symbol)
        book.countdown_deadline = ts + countdown_ms if countdown_ms > 0 else 0

    def set_leverage(self, ts: int, symbol: str, leverage: int) -> int:
        self._book(symbol)
        if not 1 <= leverage <= max_leverage(symbol):
            raise Reject(-4028, f"Leverage {leverage} is not valid")
        self.positions[symbol].leverage = leverage
        return leverage

    # -- queries ---------------------------------------------------------------------------

    def _open_orders(self, book: _Book) -> list[Order]:
        orders = [o for side in book.orders.values() for q in side.values() for o in q]
        return sorted(orders, key=lambda o: o.order_id)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        symbols = [symbol] if symbol else list(self.books)
        return [o for s in symbols for o in self._open_orders(self._book(s))]

    def depth(self, symbol: str, limit: int) -> DepthSnapshot:
        """The public book (market + ours), best first, with the current update id."""
        book = self._book(symbol)
        bids, asks = {}, {}
        for price, qty in book.market.top_bids(limit):
            bids[price] = qty
        for price, qty in book.market.top_asks(limit):
            asks[price] = qty
        for price in book.orders[BUY]:
            bids[price] = bids.get(price, book.market.bids.get(price, 0)) + book.ours(BUY, price)
        for price in book.orders[SELL]:
            asks[price] = asks.get(price, book.market.asks.get(price, 0)) + book.ours(SELL,
                                                                                      price)
        return DepthSnapshot(
            symbol, self.now, book.last_id,
            sorted(bids.items(), reverse=True)[:limit], sorted(asks.items())[:limit],
        )

    def mark_price(self, symbol: str) -> Decimal:
        return self._book(symbol).reference_price()

    def unrealized_pnl(self, symbol: str) -> Decimal:
        position = self.positions[symbol]
        if not position.amount:
            return Decimal(0)
        book = self.books[symbol]
        qty = position.amount * book.spec.step_size
        return (book.reference_price() - position.entry_price) * qty

    def position_margin(self, symbol: str) -> Decimal:
        position = self.positions[symbol]
        book = self.books[symbol]
        notional = abs(position.amount) * book.spec.step_size * book.reference_price()
        return notional / position.leverage

    def order_margin(self, symbol: str, extra: Order | None = None) -> Decimal:
        """Initial margin of open orders: per side, the part that would grow the position
        (orders that only close it need none); the larger side counts. Simplified from
        Binance's, which also charges a premium for orders away from the mark."""
        book = self.books[symbol]
        position = self.positions[symbol]
        tick, step = book.spec.tick_size, book.spec.step_size
        result = Decimal(0)
        for side in (BUY, SELL):
            extra_here = extra is not None and extra.side == side and not extra.reduce_only
            closable = abs(position.amount) if _reduces(position.amount, side) else 0
            if not closable and not (extra_here and not extra.price):  # the common case
                ticks = book.growing_ticks[side]
                if extra_here:
                    ticks += extra.price * (extra.orig_qty - extra.executed_qty)
                result = max(result, ticks * tick * step / position.leverage)
                continue
            mine = [o for q in book.orders[side].values() for o in q if not o.reduce_only]
            if extra_here:
                mine.append(extra)
            if closable:  # the oldest orders close the position first: order matters
                mine.sort(key=lambda o: o.order_id)
            notional_ticks = 0  # Σ price ticks × counted steps, exact in integers
            market_steps = 0  # market orders, priced at the reference price
            for order in mine:
                leaves = order.orig_qty - order.executed_qty
                counted = leaves - closable if leaves > closable else 0
                closable = closable - leaves if closable > leaves else 0
                if order.price:
                    notional_ticks += order.price * counted
                else:
                    market_steps += counted
            notional = notional_ticks * tick * step
            if market_steps:
                notional += book.reference_price() * market_steps * step
            result = max(result, notional / position.leverage)
        return result

    def available(self, asset: str, extra: Order | None = None) -> Decimal:
        """Wallet + unrealized PnL − position and order initial margin, over the symbols that
        margin in `asset` (cross margin, single-asset mode)."""
        balance = self.balances.get(asset)
        total = balance.wallet if balance else Decimal(0)
        for symbol, book in self.books.items():
            if book.spec.margin_asset != asset:
                continue
            total += self.unrealized_pnl(symbol) - self.position_margin(symbol)
            total -= self.order_margin(symbol, extra if extra and extra.symbol == symbol
                                       else None)
        return total

    def _check_margin(self, book: _Book, request: OrderRequest, order: Order) -> None:
        if request.reduce_only:
            return
        if self.available(book.spec.margin_asset, order) < 0:
            raise Reject(-2019, "Margin is insufficient.")

    def state(self) -> dict:
        """Ground truth for /_sim/state: balances, positions, open orders, counts."""
        return {
            "time": self.now,
            "balances": {a: str(b.wallet) for a, b in self.balances.items()},
            "positions": {
                s: {"amount": p.amount, "entryPrice": str(p.entry_price),
                    "breakEvenPrice": str(p.break_even_price),
                    "realized": str(p.accumulated_realized),
                    "unrealized": str(self.unrealized_pnl(s)), "leverage": p.leverage}
                for s, p in self.positions.items()
            },
            "openOrders": [o.order_id for o in self.open_orders()],
            "fills": len(self.fills),
            "updateIds": {s: b.last_id for s, b in self.books.items()},
        }


def _other(side: str) -> str:
    return SELL if side == BUY else BUY


def _reaches(side: str, limit: int, price: int) -> bool:
    return price <= limit if side == BUY else price >= limit


def _reduces(amount: int, side: str) -> bool:
    return (amount > 0 and side == SELL) or (amount < 0 and side == BUY)


def _changes(old: dict[int, int], new: dict[int, int]) -> list[tuple[int, int, int]]:
    prices = set(old) | set(new)
    return [(p, old.get(p, 0), new.get(p, 0)) for p in sorted(prices)
            if old.get(p, 0) != new.get(p, 0)]


def _copy(obj):
    """A snapshot of an order, balance or position for an event (shallow: their fields are
    immutable values). Five times cheaper than dataclasses.replace."""
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    return new


def _one_delta(events: list[EngineEvent]) -> list[EngineEvent]:
    """A feed event's book change and what matching it against our orders did, as one delta
    (in the first one's place): the public book is never seen crossed in between, as on
    Binance, where a crossing order trades before the book is published."""
    deltas = [e for e in events if isinstance(e, BookDelta)]
    if len(deltas) < 2:
        return events
    first, last = deltas[0], deltas[-1]
    bids, asks = dict(first.bids), dict(first.asks)
    for delta in deltas[1:]:
        bids.update(delta.bids)
        asks.update(delta.asks)
    merged = BookDelta(first.symbol, first.ts, first.first_id, last.last_id, first.prev_id,
                       list(bids.items()), list(asks.items()), first.tx_ts)
    return [merged if e is first else e for e in events if e is first
            or not isinstance(e, BookDelta)]
