"""The strategy, risk guards and order manager of `mmkit run`, against the simulator's matching
engine in virtual time, over a recorded or synthetic market.

Pure: no clock, no sockets. Time is the market feed's; latency is modelled with a queue of
deliveries: the engine's events (book changes, trades, our order updates and fills) reach the
bot a market latency after they happen, in order, and an order request reaches the engine an
order latency after the decision (its answer comes back as late again). Latencies are
constant (`Latency`) or drawn from what a `run` measured (`ReplayedLatency`, from its
journal). Like `run`, the
bot decides on the latest book only: book views that arrive while one is pending replace it,
and what arrives at the same moment as a book (fills, order updates, trades, marks) is known
before the decision. Orders go out as `run` sends them: cancels, then modifies, then new ones.

With zero latency this is `mmkit run --lockstep` against `mmkit exchange serve --step`: the
venue applies one market event, the bot reacts to everything it caused, then the next event
(tests/test_equivalence.py checks that both make the same fills).

The same core code as the pipe and `run` (mmkit.strategy, mmkit.risk, mmkit.orders); the same
engine as `mmkit exchange serve` (mmkit.sim.engine). So a backtest over a recording and a
`run` against `exchange serve --market replay` of it see the same matching rules.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from mmkit.feeds import entry_ticks, mark_from_line, mark_line
from mmkit.model import BookTop, MarketTrade, OwnFill, Timed
from mmkit.orders import (
    SELF_TRADE_PREVENTION,
    Cancel,
    ClientIds,
    LocalReject,
    Modify,
    Place,
    in_send_order,
    manager_for,
)
from mmkit.risk import build_guards
from mmkit.sim.engine import (
    AccountChange,
    BookDelta,
    Engine,
    EngineConfig,
    OrderRequest,
    OrderUpdate,
    Reject,
    TradePrint,
)
from mmkit.sim.wire import mark_payload, money, price_of
from mmkit.strategy import make_strategy

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Latency:
    """Constant one-way latencies in ms."""

    order_ms: int = 5
    market_ms: int = 5

    def order(self) -> int:
        return self.order_ms

    def market(self) -> int:
        return self.market_ms


class ReplayedLatency(Latency):
    """One-way latencies drawn, with a seed, from what a `run` or `send` measured: order entry
    is half of each acknowledged request's round trip (`order_ack.latencyMs`: our clock, no
    clock offset in it); market data is `bookRecvTs − bookTs` of the books decided on (the
    venue's clock against ours, so it carries the clock offset: read it as an upper bound
    when `mmkit time` shows one)."""

    def __init__(self, order_samples: list[int], market_samples: list[int], seed: int = 0):
        if not order_samples or not market_samples:
            raise ValueError("no latency samples")
        super().__init__(_median(order_samples), _median(market_samples))
        object.__setattr__(self, "_order", order_samples)
        object.__setattr__(self, "_market", market_samples)
        object.__setattr__(self, "_rng", random.Random(seed))
        object.__setattr__(self, "borrowed", False)  # measured on other symbols

    def order(self) -> int:
        return self._rng.choice(self._order)

    def market(self) -> int:
        return self._rng.choice(self._market)

    @classmethod
    def from_journal(cls, root: str, symbol: str, seed: int = 0) -> ReplayedLatency:
        """Samples from the journal's `orders` table (mmkit.journal), torn lines skipped:
        `symbol`'s, else every symbol's (the latency is the connection's, so a run on ETHUSDC
        tells a backtest on an ETHUSDT recording)."""
        try:
            return cls._from_orders(root, symbol, seed)
        except ValueError:
            latency = cls._from_orders(root, "*", seed)
            object.__setattr__(latency, "borrowed", True)
            return latency

    @classmethod
    def _from_orders(cls, root: str, symbol: str, seed: int) -> ReplayedLatency:
        order, market = [], []
        for path in sorted(Path(root).glob(f"orders/date=*/symbol={symbol}/*.jsonl")):
            for raw in path.read_bytes().splitlines():
                try:
                    line = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if line.get("dryRun"):
                    continue
                if line.get("type") == "order_ack" and line.get("latencyMs") is not None:
                    order.append(max(int(line["latencyMs"]) // 2, 0))
                elif line.get("type") == "order_new" and line.get("bookTs") is not None \
                        and line.get("bookRecvTs") is not None:
                    market.append(max(int(line["bookRecvTs"]) - int(line["bookTs"]), 0))
        if not order or not market:
            which = "" if symbol == "*" else f"{symbol} "
            raise ValueError(f"{root}: no {which}order acknowledgements with latencyMs and "
                             "orders with bookTs/bookRecvTs to replay latency from (journals "
                             "of `mmkit run` or `mmkit send` hold them)")
        return cls(order, market, seed)


def _median(samples: list[int]) -> int:
    return sorted(samples)[len(samples) // 2]


@dataclass
class Summary:
    symbol: str
    start_ms: int = 0
    end_ms: int = 0
    events: int = 0
    decisions: int = 0
    quotes: int = 0
    orders: int = 0
    fills: int = 0
    maker_fills: int = 0
    volume: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    funding: Decimal = Decimal(0)
    position: str = "0"
    unrealized_pnl: Decimal = Decimal(0)
    post_only_rejects: int = 0
    rejects: int = 0
    risk_events: int = 0
    guards_first_ms: dict[str, int] = field(default_factory=dict)  # guard → when it first acted
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def net_pnl(self) -> Decimal:
        return self.realized_pnl - self.fees + self.funding + self.unrealized_pnl

    def as_line(self) -> dict[str, Any]:
        hours = max(self.end_ms - self.start_ms, 1) / 3_600_000
        return {
            "type": "backtest", "symbol": self.symbol, "ts": self.end_ms,
            "startTs": self.start_ms, "hours": round(hours, 4), "events": self.events,
            "decisions": self.decisions, "quotes": self.quotes, "orders": self.orders,
            "fills": self.fills, "makerFills": self.maker_fills,
            "volume": str(self.volume.quantize(Decimal("0.01"))),
            "realizedPnl": money(self.realized_pnl), "fees": money(self.fees),
            "funding": money(self.funding), "unrealizedPnl": money(self.unrealized_pnl),
            "netPnl": money(self.net_pnl),
            "netPnlPerHour": money(self.net_pnl / Decimal(repr(hours))),
            "position": self.position, "postOnlyRejects": self.post_only_rejects,
            "rejects": self.rejects, "riskEvents": self.risk_events,
            "guardsActed": {g: round((t - self.start_ms) / 3_600_000, 4)
                            for g, t in sorted(self.guards_first_ms.items())},
            "params": self.params,
        }


class Schedule:
    """What is due when: one time-ordered queue for all the bots of a backtest."""

    def __init__(self):
        self.queue: list[tuple[int, int, int, Callable[[], None]]] = []
        self.seq = itertools.count()
        self.now = 0


class Backtest:
    """One symbol's bot. Several share an engine, so one account and its margin, and a
    schedule (`Backtest.together`); `run` runs them all over the merged market."""

    def __init__(self, spec, symbol_config, *, engine_config: EngineConfig | None = None,
                 latency: Latency = Latency(), levels: int = 5, run_id: str = "bt",
                 emit: Emit | None = None, engine: Engine | None = None,
                 schedule: Schedule | None = None):
        self.spec = spec
        self.symbol = spec.symbol
        self.engine = engine or Engine({spec.symbol: spec}, engine_config or EngineConfig())
        self.schedule = schedule or Schedule()
        self.bots: list[Backtest] = [self]
        self.strategy = make_strategy(spec, symbol_config.strategy, symbol_config.inventory)
        self.risk = build_guards(spec, symbol_config.risk, symbol_config.inventory)
        self.manager = manager_for(spec, ClientIds("mm", run_id), symbol_config.strategy,
                                   max_age_ms=60_000)
        self.latency = latency
        self.levels = levels
        self.emit = emit or (lambda line: None)
        self.summary = Summary(spec.symbol)
        self._book_pending = False
        self._market_at = 0  # when the streams deliver their latest message
        self._latest_book: BookTop | None = None
        self._next_mark = self._next_mark_price = 0

    @classmethod
    def together(cls, symbols: list[tuple[Any, Any]], *,
                 engine_config: EngineConfig | None = None, **settings: Any) -> list[Backtest]:
        """One bot per (spec, symbol config), over one engine: one account for them all."""
        engine = Engine({spec.symbol: spec for spec, _ in symbols},
                        engine_config or EngineConfig())
        schedule = Schedule()
        bots = [cls(spec, config, engine=engine, schedule=schedule, run_id=f"bt{i}", **settings)
                for i, (spec, config) in enumerate(symbols)]
        for bot in bots:
            bot.bots = bots
        return bots

    @property
    def now(self) -> int:
        return self.schedule.now

    # -- the loop -----------------------------------------------------------------------------

    def run(self, market: Iterable[Timed], mark_every_ms: int = 1000) -> Summary:
        """All the bots of this backtest over `market` (every symbol's events in time order);
        this bot's summary (each bot has its own in `summary`)."""
        bots, engine, schedule = self.bots, self.engine, self.schedule
        by_symbol = {bot.symbol: bot for bot in bots}
        first = True
        for timed in market:
            at = timed.at
            if first:
                first = False
                for bot in bots:
                    bot._start(at)
            self._until(at)
            schedule.now = at
            self._broadcast(engine.advance(at))
            # the first book comes with the first diff, as a feed synced on a snapshot does
            self._broadcast(engine.apply(timed.event))
            owner = bots[0] if len(bots) == 1 else by_symbol.get(
                getattr(timed.event, "symbol", ""))
            if owner is not None:
                owner.summary.events += 1
            for bot in bots:
                bot._clock(at, mark_every_ms)
        self._until(self.now + self.latency.order_ms + self.latency.market_ms)
        for bot in bots:
            bot._finish()
        return self.summary

    def _start(self, at: int) -> None:
        self.summary.start_ms = self._next_mark = at
        self._next_mark_price = at - at % 1000 + 1000

    def _clock(self, at: int, mark_every_ms: int) -> None:
        if at >= self._next_mark_price:  # the venue's markPrice@1s, as `run` subscribes to it
            self._mark_price()
            self._next_mark_price = at - at % 1000 + 1000
        if mark_every_ms and at >= self._next_mark:
            self._mark()
            self._next_mark = at - at % mark_every_ms + mark_every_ms

    def _broadcast(self, events: list) -> None:
        for bot in self.bots:
            bot._dispatch(events)

    def _until(self, t: int) -> None:
        """Deliver everything due by `t`, in time order (actions may schedule more)."""
        schedule = self.schedule
        queue = schedule.queue
        while queue and queue[0][0] <= t:
            at, _, _, action = heapq.heappop(queue)
            schedule.now = max(schedule.now, at)
            self._broadcast(self.engine.advance(schedule.now))
            action()

    def _later(self, delay: int, action: Callable[[], None], decision: bool = False) -> None:
        """Run `action` `delay` ms from now; at one instant, deliveries before decisions."""
        schedule = self.schedule
        heapq.heappush(schedule.queue, (schedule.now + delay, decision, next(schedule.seq),
                                        action))

    def _market_due(self) -> int:
        """When what the engine says now reaches the bot: the streams keep their order, so
        never before what they carried earlier."""
        self._market_at = max(self.now + self.latency.market(), self._market_at)
        return self._market_at

    def _deliver(self, action: Callable[[], None]) -> None:
        self._later(self._market_due() - self.now, action)

    # -- engine events → the bot ----------------------------------------------------------------

    def _dispatch(self, events: list) -> None:
        for event in events:
            if isinstance(event, BookDelta) and event.symbol == self.symbol:
                self._book_changed()
            elif isinstance(event, TradePrint) and event.symbol == self.symbol:
                trade = MarketTrade(self.symbol, event.ts, event.trade_id, event.price,
                                    event.qty, event.buyer_is_maker)
                self._deliver(lambda t=trade: self.strategy.on_trade(t))
            elif isinstance(event, AccountChange):
                self._account_change(event)
            elif isinstance(event, OrderUpdate) and event.order.symbol == self.symbol:
                line = self._order_line(event)
                fill = event.fill
                self._deliver(lambda line=line, fill=fill: self._on_update(line, fill))

    def _book_changed(self) -> None:
        """The book as it is now travels to the bot; it sees it only when it arrives (a
        decision never sees a change that is still on its way)."""
        depth = self.engine.depth(self.symbol, self.levels)
        arrives = self._market_due()
        view = BookTop(self.symbol, depth.ts, arrives, depth.last_update_id, False,
                       depth.bids, depth.asks)
        self._later(arrives - self.now, lambda: self._book_arrives(view))

    def _book_arrives(self, view: BookTop) -> None:
        self._latest_book = view
        if not self._book_pending:
            self._book_pending = True
            self._later(0, self._decide, decision=True)

    def _account_change(self, event: AccountChange) -> None:
        if event.reason == "FUNDING_FEE" and event.symbol == self.symbol:
            self.emit({"type": "funding", "symbol": self.symbol, "ts": event.ts,
                       "amount": format(event.balance_change, "f"),
                       "asset": event.balances[0].asset if event.balances else ""})
        for position in event.positions:  # the user stream's position, as `run` adopts it
            if position.symbol == self.symbol:
                # its entry as the wire says it (wire.price_of), as `run` reads it
                entry = entry_ticks(self.spec, price_of(self.spec, position.entry_price))
                self._deliver(lambda qty=position.amount, ts=event.ts, entry=entry:
                              self._on_position(qty, ts, entry))

    def _on_position(self, qty: int, ts: int, entry: float | None) -> None:
        self.strategy.on_position(qty, ts, entry)
        self.risk.on_position(qty, ts)

    def _mark_price(self) -> None:
        mark = mark_from_line(mark_line(mark_payload(self.engine, self.spec, self.now)))
        self._deliver(lambda: self.strategy.on_mark(mark))

    def _on_update(self, line: dict[str, Any], fill) -> None:
        self.manager.on_update(line, self.now)
        if fill is None:
            return
        own = OwnFill(fill.symbol, fill.ts, fill.trade_id, fill.order_id, fill.client_order_id,
                      fill.side, fill.price, fill.qty, fill.maker, fill.commission,
                      fill.commission_asset, fill.realized_pnl)
        self.manager.on_fill(own)
        self.strategy.on_fill(own)
        self._risk_lines(self.risk.on_fill(own))
        s = self.summary
        s.fills += 1
        s.maker_fills += fill.maker
        s.volume += fill.quote_qty
        s.realized_pnl += fill.realized_pnl
        s.fees += fill.commission
        self.emit(self._fill_line(fill))

    # -- decisions --------------------------------------------------------------------------

    def _decide(self) -> None:
        self._book_pending = False
        book = self._latest_book
        if book is None or not book.bids or not book.asks:
            return
        now = self.now
        self.summary.decisions += 1
        self._risk_lines(self.risk.on_book(book))
        quote = self.strategy.on_book(book)
        if self._halted(book, now) or quote is None:
            return
        self.summary.quotes += 1
        quote, events = self.risk.apply(quote, now)
        self._risk_lines(events)
        if self._halted(book, now):
            return
        actions = self.manager.diff(quote.levels, now,
                                    half_spread_ticks=quote.reasons.get("halfSpreadTicks"))
        sent = self._send(actions)
        if sent:
            self.risk.on_order_sent(now, sent)

    def _halted(self, book: BookTop, now: int) -> bool:
        """As `run`: halted by a guard, cancel all and send the emergency reduce orders."""
        if self.risk.mode != "halted":
            return False
        self._send(self.manager.cancel_all("risk halt"))
        for level in self.risk.emergency_orders(book, now):
            self._later(self.latency.order(), lambda level=level: self._emergency(level))
        return True

    def _send(self, actions: list) -> int:
        sent = 0
        for action in in_send_order(actions):
            if isinstance(action, LocalReject):
                continue
            if isinstance(action, Place | Modify):
                sent += 1
            self._later(self.latency.order(), lambda action=action: self._arrive(action))
        self.summary.orders += sent
        return sent

    def _arrive(self, action) -> None:
        """An order request reaches the engine; its answer travels back."""
        cid = action.order.client_order_id
        ts = self.now
        try:
            if isinstance(action, Place):
                ours = action.order
                order, events = self.engine.place(ts, OrderRequest(
                    self.symbol, ours.side, "LIMIT", ours.qty, ours.price,
                    ours.time_in_force, ours.reduce_only, cid,
                    stp_mode=SELF_TRADE_PREVENTION))
                answer = {"orderId": order.order_id, "status": order.status,
                          "executedQty": self.spec.qty_str(order.executed_qty)}
            elif isinstance(action, Modify):
                order, events = self.engine.modify(ts, self.symbol, action.order.side,
                                                   action.qty, action.price,
                                                   client_order_id=cid)
                answer = {"orderId": order.order_id, "status": order.status,
                          "executedQty": self.spec.qty_str(order.executed_qty)}
            else:
                _, events = self.engine.cancel(ts, self.symbol, client_order_id=cid)
                self._dispatch(events)
                self._later(self.latency.order(),
                            lambda: self.manager.on_cancel_ack(cid, {"status": "CANCELED"}))
                return
        except Reject as exc:
            self._later(self.latency.order(), lambda r=exc: self._rejected(action, r))
            return
        self._dispatch(events)
        self._later(self.latency.order(),
                    lambda: self.manager.on_ack(cid, answer, self.now))

    def _rejected(self, action, reject: Reject) -> None:
        cid = action.order.client_order_id
        if isinstance(action, Cancel):
            self.manager.on_cancel_reject(cid, reject.code)
            return
        self.manager.on_reject(cid, reject.code, reject.msg)
        self.summary.rejects += 1
        self.summary.post_only_rejects += reject.code == -5022
        if reject.code == -5022:  # repriced and sent again at once, as run's Execution does
            sent = self._send(self.manager.retry_post_only())
            if sent:
                self.risk.on_order_sent(self.now, sent)

    def _emergency(self, level) -> None:
        try:
            _, events = self.engine.place(self.now, OrderRequest(
                self.symbol, level.side, "LIMIT", level.qty, level.price, "IOC", True,
                self.manager.ids.next(), stp_mode=SELF_TRADE_PREVENTION))
        except Reject:
            return
        self._dispatch(events)

    # -- output -------------------------------------------------------------------------------

    def _mark(self) -> None:
        """Mid, position and net PnL now: the journal's `marks` (markouts, drawdown)."""
        book = self.engine.books[self.symbol].market
        if book.best_bid is None or book.best_ask is None:
            return
        s = self.summary
        position = self.engine.positions[self.symbol].amount
        mid = (Decimal(book.best_bid) + Decimal(book.best_ask)) / 2 * self.spec.tick_size
        net = s.realized_pnl - s.fees + self.engine.unrealized_pnl(self.symbol)
        self.emit({"type": "mark", "symbol": self.symbol, "ts": self.now,
                   "mid": format(mid.normalize(), "f"),
                   "position": format((position * self.spec.step_size).normalize(), "f"),
                   "netPnl": format(net.quantize(Decimal("0.00000001")), "f")})

    def _risk_lines(self, events) -> None:
        for event in events:
            self.summary.risk_events += 1
            self.summary.guards_first_ms.setdefault(event.guard, event.ts)
            self.emit({"type": "risk", "symbol": self.symbol, "ts": event.ts,
                       "guard": event.guard, "action": event.action, "detail": event.detail,
                       "mode": self.risk.mode})

    def _order_line(self, update: OrderUpdate) -> dict[str, Any]:
        order = update.order
        return {"clientOrderId": order.client_order_id, "orderId": order.order_id,
                "status": order.status, "executedQty": self.spec.qty_str(order.executed_qty)}

    def _fill_line(self, fill) -> dict[str, Any]:
        spec = self.spec
        return {"type": "fill", "symbol": fill.symbol, "ts": fill.ts, "tradeId": fill.trade_id,
                "orderId": fill.order_id, "clientOrderId": fill.client_order_id,
                "side": fill.side, "price": spec.price_str(fill.price),
                "qty": spec.qty_str(fill.qty), "maker": fill.maker,
                "commission": money(fill.commission), "commissionAsset": fill.commission_asset,
                "realizedPnl": money(fill.realized_pnl), "source": "backtest"}

    def _finish(self) -> None:
        s = self.summary
        s.end_ms = self.now
        position = self.engine.positions[self.symbol].amount
        s.position = self.spec.qty_str(position) if position >= 0 else \
            "-" + self.spec.qty_str(-position)
        s.unrealized_pnl = self.engine.unrealized_pnl(self.symbol)
        s.funding = sum((i.income for i in self.engine.incomes
                         if i.income_type == "FUNDING_FEE" and i.symbol == self.symbol),
                        Decimal(0))
