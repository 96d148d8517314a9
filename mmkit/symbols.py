"""A symbol's trading constraints, and the exact conversion between decimal strings and the
integer ticks and steps the core works in.

Built from one `exchangeInfo` symbol entry (numbers or strings, as Binance and recordings send
them). Validation returns the code and message Binance would answer with, so a caller can
refuse an order before it is sent, and the simulator can refuse it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any

BUY, SELL = "BUY", "SELL"


@dataclass(frozen=True)
class Rejection:
    """A Binance error the order would get: `code` and `msg` as the venue words them."""

    code: int
    msg: str


@dataclass(frozen=True)
class SymbolSpec:
    symbol: str
    base_asset: str
    quote_asset: str
    margin_asset: str
    tick_size: Decimal
    step_size: Decimal
    min_price: Decimal = Decimal(0)
    max_price: Decimal = Decimal(0)
    min_qty: Decimal = Decimal(0)
    max_qty: Decimal = Decimal(0)
    market_min_qty: Decimal = Decimal(0)
    market_max_qty: Decimal = Decimal(0)
    min_notional: Decimal = Decimal(0)
    multiplier_up: Decimal = Decimal(0)
    multiplier_down: Decimal = Decimal(0)
    multiplier_decimal: int = 4
    max_num_orders: int = 200
    price_precision: int = 2
    quantity_precision: int = 3
    status: str = "TRADING"
    contract_type: str = "PERPETUAL"
    order_types: tuple[str, ...] = ("LIMIT", "MARKET")
    time_in_force: tuple[str, ...] = ("GTC", "IOC", "FOK", "GTX", "GTD")
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_exchange_info(cls, entry: dict[str, Any]) -> SymbolSpec:
        """Parse one `exchangeInfo.symbols[]` entry."""
        filters = {f["filterType"]: f for f in entry.get("filters", [])}
        price = filters.get("PRICE_FILTER", {})
        lot = filters.get("LOT_SIZE", {})
        market_lot = filters.get("MARKET_LOT_SIZE", lot)
        percent = filters.get("PERCENT_PRICE", {})
        notional = filters.get("MIN_NOTIONAL", {})
        return cls(
            symbol=entry["symbol"],
            base_asset=entry.get("baseAsset", ""),
            quote_asset=entry.get("quoteAsset", ""),
            margin_asset=entry.get("marginAsset", entry.get("quoteAsset", "")),
            tick_size=_dec(price.get("tickSize", "0.01")),
            step_size=_dec(lot.get("stepSize", "0.001")),
            min_price=_dec(price.get("minPrice", 0)),
            max_price=_dec(price.get("maxPrice", 0)),
            min_qty=_dec(lot.get("minQty", 0)),
            max_qty=_dec(lot.get("maxQty", 0)),
            market_min_qty=_dec(market_lot.get("minQty", 0)),
            market_max_qty=_dec(market_lot.get("maxQty", 0)),
            min_notional=_dec(notional.get("notional", notional.get("minNotional", 0))),
            multiplier_up=_dec(percent.get("multiplierUp", 0)),
            multiplier_down=_dec(percent.get("multiplierDown", 0)),
            multiplier_decimal=int(percent.get("multiplierDecimal", 4)),
            max_num_orders=int(filters.get("MAX_NUM_ORDERS", {}).get("limit", 200)),
            price_precision=int(entry.get("pricePrecision", 2)),
            quantity_precision=int(entry.get("quantityPrecision", 3)),
            status=entry.get("status", "TRADING"),
            contract_type=entry.get("contractType", "PERPETUAL"),
            order_types=tuple(entry.get("orderTypes", ("LIMIT", "MARKET"))),
            time_in_force=tuple(entry.get("timeInForce", ("GTC", "IOC", "FOK", "GTX", "GTD"))),
            raw=entry,
        )

    # -- exact conversion ---------------------------------------------------------------------

    @cached_property
    def price_decimals(self) -> int:
        return max(0, -self.tick_size.normalize().as_tuple().exponent)

    @cached_property
    def qty_decimals(self) -> int:
        return max(0, -self.step_size.normalize().as_tuple().exponent)

    def to_ticks(self, price: str | Decimal) -> int:
        """Exact price → ticks; raises ValueError when the price is not on tick."""
        return _exact_units(_dec(price), self.tick_size, "price", "tick")

    def to_steps(self, qty: str | Decimal) -> int:
        """Exact quantity → steps; raises ValueError when the quantity is not on step."""
        return _exact_units(_dec(qty), self.step_size, "quantity", "step")

    def price_str(self, ticks: int) -> str:
        return _fmt(ticks * self.tick_size, self.price_decimals)

    def qty_str(self, steps: int) -> str:
        return _fmt(steps * self.step_size, self.qty_decimals)

    def round_price(self, price: str | Decimal, side: str) -> int:
        """Ticks for a price rounded away from the other side: bids down, asks up, so rounding
        never makes an order more aggressive than intended."""
        return _div_round(_dec(price), self.tick_size, ceiling=side.upper() != BUY)

    def round_qty(self, qty: str | Decimal) -> int:
        """Steps for a quantity rounded down to the step."""
        return _div_round(_dec(qty), self.step_size, ceiling=False)

    def notional(self, price_ticks: int, qty_steps: int) -> Decimal:
        return price_ticks * self.tick_size * qty_steps * self.step_size

    # -- validation ---------------------------------------------------------------------------

    def check_order(
        self,
        side: str,
        order_type: str,
        quantity: str | Decimal,
        price: str | Decimal | None = None,
        *,
        mark_price: Decimal | None = None,
        reduce_only: bool = False,
    ) -> Rejection | None:
        """The rejection Binance would give this order's price and quantity, or None.

        Checks in the venue's order: positive values, precision (-1111), price filter
        (-4013/-4002/-4014), lot size (-4004/-4005/-4023), percent-price band against the mark
        (-4016/-4024), then minimum notional (-4164, reduce-only exempt).
        """
        try:
            qty = _dec(quantity)
            px = _dec(price) if price is not None else None
        except ValueError:
            return Rejection(-1102, "Mandatory parameter was malformed.")
        if order_type == "LIMIT" and px is None:
            return Rejection(-1102, "Mandatory parameter 'price' was not sent, was empty/null, "
                                    "or malformed.")
        if qty <= 0:
            return Rejection(-4003, "Quantity less than or equal to zero.")
        if px is not None and px <= 0:
            return Rejection(-4001, "Price less than 0.")
        if _decimals(qty) > self.quantity_precision or (
            px is not None and _decimals(px) > self.price_precision
        ):
            return Rejection(-1111, "Precision is over the maximum defined for this asset.")
        if px is not None:
            rejection = self._check_price(px)
            if rejection:
                return rejection
        rejection = self._check_qty(qty, market=order_type == "MARKET")
        if rejection:
            return rejection
        if px is not None and mark_price:
            rejection = self._check_band(side, px, mark_price)
            if rejection:
                return rejection
        reference = px if px is not None else mark_price
        if (
            not reduce_only
            and reference is not None
            and self.min_notional
            and reference * qty < self.min_notional
        ):
            return Rejection(
                -4164,
                f"Order's notional must be no smaller than {_plain(self.min_notional)} "
                "(unless you choose reduce only).",
            )
        return None

    def _check_price(self, px: Decimal) -> Rejection | None:
        if self.min_price and px < self.min_price:
            return Rejection(-4013, "Price less than min price.")
        if self.max_price and px > self.max_price:
            return Rejection(-4002, "Price greater than max price.")
        if self.tick_size and (px - self.min_price) % self.tick_size != 0:
            return Rejection(-4014, "Price not increased by tick size.")
        return None

    def _check_qty(self, qty: Decimal, market: bool) -> Rejection | None:
        low = self.market_min_qty if market else self.min_qty
        high = self.market_max_qty if market else self.max_qty
        if low and qty < low:
            return Rejection(-4004, "Quantity less than min quantity.")
        if high and qty > high:
            return Rejection(-4005, "Quantity greater than max quantity.")
        if self.step_size and (qty - low) % self.step_size != 0:
            return Rejection(-4023, "Quantity not increased by step size.")
        return None

    def _check_band(self, side: str, px: Decimal, mark: Decimal) -> Rejection | None:
        if side == BUY and self.multiplier_up and px > mark * self.multiplier_up:
            return Rejection(-4016, "Price is higher than mark price multiplier cap.")
        if side == SELL and self.multiplier_down and px < mark * self.multiplier_down:
            return Rejection(-4024, "Price is lower than mark price multiplier floor.")
        return None


def _dec(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    try:
        result = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not a decimal number: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"not a finite decimal number: {value!r}")
    return result


def _exact_units(value: Decimal, unit: Decimal, what: str, unit_name: str) -> int:
    units, remainder = divmod(value, unit)
    if remainder:
        raise ValueError(f"{what} {_plain(value)} is not on the {unit_name} {_plain(unit)}")
    return int(units)


def _div_round(value: Decimal, unit: Decimal, ceiling: bool) -> int:
    """value / unit rounded down (or up) in exact integers: Decimal division keeps only the
    context's 28 digits, which can round a quotient just below an integer up onto it."""
    if value.adjusted() < unit.adjusted():  # |value| < unit: skip scaling by a huge power of 10
        return (1 if ceiling and value > 0 else 0) if value >= 0 else (0 if ceiling else -1)
    exponent = min(value.as_tuple().exponent, unit.as_tuple().exponent)
    num, den = _scaled(value, exponent), _scaled(unit, exponent)
    return -(-num // den) if ceiling else num // den


def _scaled(value: Decimal, exponent: int) -> int:
    sign, digits, exp = value.as_tuple()
    coefficient = int("".join(map(str, digits)) or "0") * 10 ** (exp - exponent)
    return -coefficient if sign else coefficient


def _decimals(value: Decimal) -> int:
    return max(0, -value.normalize().as_tuple().exponent)


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _fmt(value: Decimal, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def parse_decimal(value: Any) -> Decimal:
    """A finite Decimal from a string or number; ValueError with the value otherwise."""
    return _dec(value)
