"""Engine objects → Binance's JSON, field for field (see ../shared/reference/binance-usdm.md).

Decimals leave as strings in the symbol's precision; ids and times as numbers. Pure functions:
the server calls them, tests compare their output with recorded payloads.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from mmkit.sim.engine import (
    AccountChange,
    Balance,
    BookDelta,
    Engine,
    Order,
    OrderUpdate,
    Position,
    TradePrint,
)
from mmkit.symbols import SymbolSpec

Json = dict[str, Any]
_MONEY = Decimal("0.00000001")


def money(value: Decimal) -> str:
    """Balances, PnL and commissions: 8 decimals, as Binance sends them."""
    return format(Decimal(value).quantize(_MONEY), "f")


def price_of(spec: SymbolSpec, value: Decimal) -> str:
    """A computed price (average, entry) in the symbol's price precision + a few digits."""
    if not value:
        return "0"
    exact = Decimal(value).quantize(Decimal(1).scaleb(-(spec.price_decimals + 5)))
    text = format(exact, "f").rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(spec.price_decimals, '0')}"


def levels(spec: SymbolSpec, side: list[tuple[int, int]]) -> list[list[str]]:
    return [[spec.price_str(p), spec.qty_str(q)] for p, q in side]


def order_json(order: Order, spec: SymbolSpec) -> Json:
    """The order object of REST responses (ACK/RESULT, query, cancel)."""
    executed = spec.qty_str(order.executed_qty)
    return {
        "orderId": order.order_id,
        "symbol": order.symbol,
        "status": order.status,
        "clientOrderId": order.client_order_id,
        "price": spec.price_str(order.price),
        "avgPrice": _avg(order, spec),
        "origQty": spec.qty_str(order.orig_qty),
        "executedQty": executed,
        "cumQty": executed,
        "cumQuote": money(order.cum_quote),
        "timeInForce": order.time_in_force,
        "type": order.type,
        "reduceOnly": order.reduce_only,
        "closePosition": False,
        "side": order.side,
        "positionSide": order.position_side,
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": order.type,
        "priceMatch": order.price_match,
        "selfTradePreventionMode": order.stp_mode,
        "goodTillDate": order.good_till_date,
        "time": order.time,
        "updateTime": order.update_time,
    }


def _avg(order: Order, spec: SymbolSpec) -> str:
    if not order.executed_qty:
        return "0.00"
    return price_of(spec, order.cum_quote / (order.executed_qty * spec.step_size))


def order_trade_update(update: OrderUpdate, spec: SymbolSpec, book_notional: tuple[str, str]
                       ) -> Json:
    order, fill = update.order, update.fill
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": update.ts,
        "T": update.ts,
        "o": {
            "s": order.symbol, "c": order.client_order_id, "S": order.side, "o": order.type,
            "f": order.time_in_force, "q": spec.qty_str(order.orig_qty),
            "p": spec.price_str(order.price), "ap": _avg(order, spec), "sp": "0",
            "x": update.execution_type, "X": order.status, "i": order.order_id,
            "l": spec.qty_str(fill.qty) if fill else "0",
            "z": spec.qty_str(order.executed_qty),
            "L": spec.price_str(fill.price) if fill else "0",
            "N": fill.commission_asset if fill else spec.margin_asset,
            "n": money(fill.commission) if fill else "0",
            "T": update.ts, "t": fill.trade_id if fill else 0,
            "b": book_notional[0], "a": book_notional[1],
            "m": fill.maker if fill else False, "R": order.reduce_only,
            "wt": "CONTRACT_PRICE", "ot": order.type, "ps": order.position_side,
            "cp": False, "rp": money(fill.realized_pnl) if fill else "0", "pP": False,
            "si": 0, "ss": 0, "V": order.stp_mode, "pm": order.price_match,
            "gtd": order.good_till_date, "er": str(order.expire_reason),
        },
    }


def trade_lite(update: OrderUpdate, spec: SymbolSpec) -> Json:
    order, fill = update.order, update.fill
    assert fill is not None
    return {
        "e": "TRADE_LITE", "E": update.ts, "T": update.ts, "s": order.symbol,
        "q": spec.qty_str(order.orig_qty), "p": spec.price_str(order.price), "m": fill.maker,
        "c": order.client_order_id, "S": order.side, "L": spec.price_str(fill.price),
        "l": spec.qty_str(fill.qty), "t": fill.trade_id, "i": order.order_id,
    }


def account_update(change: AccountChange, engine: Engine) -> Json:
    return {
        "e": "ACCOUNT_UPDATE",
        "E": change.ts,
        "T": change.ts,
        "a": {
            "m": change.reason,
            "B": [_balance_entry(b, change.balance_change) for b in change.balances],
            "P": [position_entry(p, engine) for p in change.positions],
        },
    }


def _balance_entry(balance: Balance, change) -> Json:
    wallet = money(balance.wallet)
    return {"a": balance.asset, "wb": wallet, "cw": wallet, "bc": money(change) if change else "0"}


def position_entry(position: Position, engine: Engine) -> Json:
    spec = engine.specs[position.symbol]
    return {
        "s": position.symbol, "pa": signed_qty(spec, position.amount),
        "ep": price_of(spec, position.entry_price),
        "bep": price_of(spec, position.break_even_price),
        "cr": money(position.accumulated_realized),
        "up": money(_upnl(engine, position)), "mt": position.margin_type, "iw": "0",
        "ps": "BOTH",
    }


def _upnl(engine: Engine, position: Position) -> Decimal:
    return engine.unrealized_pnl(position.symbol)


def signed_qty(spec: SymbolSpec, steps: int) -> str:
    return spec.qty_str(steps) if steps >= 0 else "-" + spec.qty_str(-steps)


def depth_update(delta: BookDelta, spec: SymbolSpec) -> Json:
    return {
        "e": "depthUpdate", "E": delta.ts, "T": delta.tx_ts or delta.ts, "s": delta.symbol,
        "U": delta.first_id, "u": delta.last_id, "pu": delta.prev_id,
        "b": levels(spec, delta.bids), "a": levels(spec, delta.asks),
    }


def trade_event(trade: TradePrint, spec: SymbolSpec) -> Json:
    return {
        "e": "trade", "E": trade.ts, "T": trade.ts, "s": trade.symbol, "t": trade.trade_id,
        "p": spec.price_str(trade.price), "q": spec.qty_str(trade.qty), "X": "MARKET",
        "m": trade.buyer_is_maker,
    }


def agg_trade(trade: TradePrint, spec: SymbolSpec) -> Json:
    """One aggTrade per trade print: the simulator does not aggregate (documented)."""
    qty = spec.qty_str(trade.qty)
    return {
        "e": "aggTrade", "E": trade.ts, "s": trade.symbol, "a": trade.trade_id,
        "p": spec.price_str(trade.price), "q": qty, "nq": qty, "f": trade.trade_id,
        "l": trade.trade_id, "T": trade.ts, "m": trade.buyer_is_maker,
    }


def book_ticker(spec: SymbolSpec, update_id: int, ts: int, bid: tuple[int, int] | None,
                ask: tuple[int, int] | None) -> Json:
    return {
        "e": "bookTicker", "u": update_id, "s": spec.symbol, "E": ts, "T": ts,
        "b": spec.price_str(bid[0]) if bid else "0", "B": spec.qty_str(bid[1]) if bid else "0",
        "a": spec.price_str(ask[0]) if ask else "0", "A": spec.qty_str(ask[1]) if ask else "0",
    }


def mark_payload(engine: Engine, spec: SymbolSpec, now: int) -> Json:
    """The markPriceUpdate the venue publishes for `spec` now (the backtester feeds the same
    to the strategy)."""
    book = engine.books[spec.symbol]
    mark = engine.mark_price(spec.symbol)
    return mark_price_update(spec, now, mark, book.index or mark, book.funding_rate,
                             next_funding_time(engine, spec.symbol, now))


def next_funding_time(engine: Engine, symbol: str, now: int) -> int:
    """The feed's next funding time, else the next multiple of the funding interval."""
    book = engine.books[symbol]
    if book.next_funding_time:
        return book.next_funding_time
    interval = engine.config.funding_interval_ms
    return now - now % interval + interval


def mark_price_update(spec: SymbolSpec, ts: int, mark: Decimal, index: Decimal,
                      rate: Decimal, next_funding: int) -> Json:
    mark_s = price_of(spec, mark)
    return {
        "e": "markPriceUpdate", "E": ts, "s": spec.symbol, "p": mark_s, "ap": mark_s,
        "i": price_of(spec, index or mark), "P": price_of(spec, index or mark),
        "r": f"{rate:.8f}", "T": next_funding,
    }
