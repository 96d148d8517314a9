"""Events that travel between the parts of mmkit, in exact units.

Prices are integer ticks and quantities integer steps of the symbol's `SymbolSpec`; times are
exchange milliseconds. Conversion to and from the venue's decimal strings happens at the edges
(`mmkit.symbols.SymbolSpec`). Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

Level = tuple[int, int]  # (price ticks, quantity steps); quantity 0 removes the level


@dataclass(slots=True)
class DepthSnapshot:
    """A full book (REST `GET /fapi/v1/depth`): levels best first."""

    symbol: str
    ts: int
    last_update_id: int
    bids: list[Level]
    asks: list[Level]


@dataclass(slots=True)
class DepthDiff:
    """A diff-depth event (`depthUpdate`): absolute quantities per level, 0 deletes."""

    symbol: str
    ts: int  # E
    tx_ts: int  # T
    first_id: int  # U
    last_id: int  # u
    prev_id: int  # pu
    bids: list[Level]
    asks: list[Level]


@dataclass(slots=True)
class MarketTrade:
    """A trade between other participants (`@trade` / aggregated in `@aggTrade`)."""

    symbol: str
    ts: int
    trade_id: int
    price: int
    qty: int
    buyer_is_maker: bool


@dataclass(slots=True)
class MarkPrice:
    """Mark/index price and funding (`markPriceUpdate`). Marks are finer than the tick, so
    they stay Decimal."""

    symbol: str
    ts: int
    mark: Decimal
    index: Decimal
    funding_rate: Decimal
    next_funding_time: int


@dataclass(slots=True)
class BookTicker:
    """Best bid/offer with the book's update id (`bookTicker`)."""

    symbol: str
    ts: int
    update_id: int
    bid: int
    bid_qty: int
    ask: int
    ask_qty: int


MarketEvent = DepthSnapshot | DepthDiff | MarketTrade | MarkPrice | BookTicker


@dataclass(slots=True)
class Timed:
    """A market event with the time it should be delivered (replay: the recorder's receive
    time; synthetic: the generated time), in ms of venue time."""

    at: int
    event: MarketEvent
    meta: dict = field(default_factory=dict)


# -- the trading core: what quote, risk and send pass between them ------------------------------

BUY, SELL = "BUY", "SELL"


@dataclass(slots=True)
class BookTop:
    """The part of a `book` line the strategy reads: levels best first, in ticks and steps.
    `recv_ts` is when the book was received (the shell's clock), `ts` the exchange time."""

    symbol: str
    ts: int
    recv_ts: int
    update_id: int | None
    stale: bool
    bids: list[Level]
    asks: list[Level]

    @property
    def best_bid(self) -> int | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> int | None:
        return self.asks[0][0] if self.asks else None


@dataclass(frozen=True, slots=True)
class QuoteLevel:
    """One order the strategy wants resting. `tag` names its ladder slot (`b0`, `b1`, `a0`,
    `bS`/`aS` static, `tp` take-profit, `ro` reduce-only): the order manager keeps at most one
    live order per slot and compares like with like."""

    side: str  # BUY | SELL
    price: int  # ticks
    qty: int  # steps
    tag: str
    time_in_force: str = "GTX"
    reduce_only: bool = False


@dataclass(slots=True)
class Quote:
    """The strategy's desired resting orders for a symbol, with why: `reasons` holds the fair
    value, half-spread, skew, volatility and signal values (numbers, for people and logs).
    `paused` names why nothing is quoted (shock, stale book, …); `levels` is then empty."""

    symbol: str
    ts: int
    levels: list[QuoteLevel]
    reasons: dict = field(default_factory=dict)
    paused: str | None = None


@dataclass(slots=True)
class OwnFill:
    """One of our fills, from the user stream or userTrades."""

    symbol: str
    ts: int
    trade_id: int
    order_id: int
    client_order_id: str
    side: str
    price: int  # ticks
    qty: int  # steps
    maker: bool
    commission: Decimal
    commission_asset: str
    realized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class RiskEvent:
    """A guard acted: `action` is one of shrink, drop, cancel_all, reduce_only, halt, resume,
    and `detail` says what it saw (one line, for the `risk` line and the log)."""

    guard: str
    action: str
    detail: str
    ts: int
