"""User-data-stream events → mmkit's `order`, `fill`, `position` and `balance` lines.

Pure functions over decoded payloads (see docs/streams.md for the line schemas). Decimals stay
the venue's strings. Market-data messages that reach a user socket are ignored (the original
system mistook them for account events), and so is `TRADE_LITE`: it repeats the fill that
`ORDER_TRADE_UPDATE` carries in full, without commission, so using both would double-count.
`FillDeduper` drops a fill seen before (stream after reconnect, reconciliation replay).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

Line = dict[str, Any]


class ListenKeyExpired(Exception):
    """The venue says the listen key expired: recreate it, reconnect, reconcile."""


def normalize(event: dict[str, Any]) -> list[Line]:
    """Lines for one user-stream payload (combined envelope already removed)."""
    kind = event.get("e")
    if kind == "ORDER_TRADE_UPDATE":
        return order_trade_update(event)
    if kind == "ACCOUNT_UPDATE":
        return account_update(event)
    if kind == "listenKeyExpired":
        raise ListenKeyExpired(f"listen key expired at {event.get('E')}")
    return []


def order_trade_update(event: dict[str, Any]) -> list[Line]:
    o = event["o"]
    ts = int(event.get("E") or o.get("T") or 0)
    order = {
        "type": "order",
        "symbol": o["s"],
        "ts": ts,
        "orderId": int(o["i"]),
        "clientOrderId": o.get("c", ""),
        "side": o["S"],
        "orderType": o.get("o", ""),
        "timeInForce": o.get("f", ""),
        "price": o.get("p", "0"),
        "qty": o.get("q", "0"),
        "executedQty": o.get("z", "0"),
        "avgPrice": o.get("ap", "0"),
        "status": o.get("X", ""),
        "execType": o.get("x", ""),
        "reduceOnly": bool(o.get("R", False)),
        "expireReason": int(o.get("er", 0) or 0),
    }
    lines = [order]
    if o.get("x") in ("TRADE", "CALCULATED") and int(o.get("t", 0) or 0):
        lines.append(fill_from_order_update(o, ts))
    return lines


def fill_from_order_update(o: dict[str, Any], ts: int) -> Line:
    return {
        "type": "fill",
        "symbol": o["s"],
        "ts": int(o.get("T") or ts),
        "tradeId": int(o["t"]),
        "orderId": int(o["i"]),
        "clientOrderId": o.get("c", ""),
        "side": o["S"],
        "price": o.get("L", "0"),
        "qty": o.get("l", "0"),
        "maker": bool(o.get("m", False)),
        "commission": o.get("n", "0"),
        "commissionAsset": o.get("N", ""),
        "realizedPnl": o.get("rp", "0"),
        "source": "stream",
    }


def fill_from_user_trade(trade: dict[str, Any]) -> Line:
    """A `GET /fapi/v1/userTrades` row as a fill line (reconciliation after a reconnect)."""
    return {
        "type": "fill",
        "symbol": trade["symbol"],
        "ts": int(trade["time"]),
        "tradeId": int(trade["id"]),
        "orderId": int(trade["orderId"]),
        "clientOrderId": trade.get("clientOrderId", ""),
        "side": trade["side"],
        "price": trade["price"],
        "qty": trade["qty"],
        "maker": bool(trade.get("maker", False)),
        "commission": trade.get("commission", "0"),
        "commissionAsset": trade.get("commissionAsset", ""),
        "realizedPnl": trade.get("realizedPnl", "0"),
        "source": "reconcile",
    }


def account_update(event: dict[str, Any]) -> list[Line]:
    ts = int(event.get("E") or event.get("T") or 0)
    body = event.get("a", {})
    reason = body.get("m", "")
    lines: list[Line] = [
        {
            "type": "balance",
            "symbol": None,
            "ts": ts,
            "asset": b["a"],
            "walletBalance": b.get("wb", "0"),
            "crossWalletBalance": b.get("cw", "0"),
            "balanceChange": b.get("bc", "0"),
            "reason": reason,
        }
        for b in body.get("B", [])
    ]
    lines += [
        {
            "type": "position",
            "symbol": p["s"],
            "ts": ts,
            "qty": p.get("pa", "0"),
            "entryPrice": p.get("ep", "0"),
            "breakEvenPrice": p.get("bep", "0"),
            "unrealizedPnl": p.get("up", "0"),
            "accumulatedRealized": p.get("cr", "0"),
            "marginType": p.get("mt", ""),
            "positionSide": p.get("ps", "BOTH"),
            "reason": reason,
        }
        for p in body.get("P", [])
    ]
    return lines


class FillDeduper:
    """Remembers the last `capacity` (symbol, tradeId) pairs; `fresh(line)` is False for a
    fill already seen, so a fill recovered by reconciliation and also replayed by the stream
    is emitted once."""

    def __init__(self, capacity: int = 100_000):
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()

    def fresh(self, fill: Line) -> bool:
        key = (fill["symbol"], int(fill["tradeId"]))
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True
