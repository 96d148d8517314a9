"""The simulator's matching engine: pure, in virtual time, no I/O.

CONTRACT (written first so the server, the market feeds and the backtester can be built
against it in parallel; the implementation fills it in). Everything is in exact units: prices
in ticks, quantities in steps of the symbol's SymbolSpec; money (balances, PnL, fees) in
Decimal; times in ms of venue time, always passed in by the caller.

The engine holds, per symbol, the *public book* = the market's levels (from the feed) plus
the quantity of our resting orders, with Binance's update-id sequence; our orders with their
queue position; and one account (single-asset mode: each symbol margins in its marginAsset).

Every mutating call returns the list of `EngineEvent`s it caused, in order; the server turns
them into wire messages (ORDER_TRADE_UPDATE, TRADE_LITE, ACCOUNT_UPDATE, depthUpdate, trades).
Refusals raise `Reject(code, msg)` with Binance's code and message, and change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from mmkit.model import Level, MarketEvent
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
    default_stp_mode: str = "EXPIRE_MAKER"


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
    queue_ahead: int = 0  # steps of other participants ahead of us at our price

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


class Engine:
    """See the module docstring. All methods are synchronous and deterministic for a seed."""

    def __init__(self, specs: dict[str, SymbolSpec], config: EngineConfig | None = None):
        raise NotImplementedError

    # market side
    def apply(self, event: MarketEvent) -> list[EngineEvent]:
        """Feed one market event (snapshot, diff, trade, mark). Fills our orders it reaches."""
        raise NotImplementedError

    def advance(self, ts: int) -> list[EngineEvent]:
        """Move the clock: funding at nextFundingTime, GTD expiry, countdown cancel-all."""
        raise NotImplementedError

    # order side
    def place(self, ts: int, request: OrderRequest) -> tuple[Order, list[EngineEvent]]:
        raise NotImplementedError

    def cancel(self, ts: int, symbol: str, order_id: int | None = None,
               client_order_id: str | None = None) -> tuple[Order, list[EngineEvent]]:
        raise NotImplementedError

    def modify(self, ts: int, symbol: str, side: str, quantity: int, price: int,
               order_id: int | None = None, client_order_id: str | None = None
               ) -> tuple[Order, list[EngineEvent]]:
        raise NotImplementedError

    def cancel_all(self, ts: int, symbol: str) -> list[EngineEvent]:
        raise NotImplementedError

    def set_countdown(self, ts: int, symbol: str, countdown_ms: int) -> None:
        raise NotImplementedError

    def set_leverage(self, ts: int, symbol: str, leverage: int) -> int:
        raise NotImplementedError
