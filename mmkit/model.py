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
