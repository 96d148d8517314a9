"""The schema of every JSON line mmkit writes, as data: tests check docs/streams.md's
examples and real command output against it, so the docs cannot drift from the code.

A field spec is a type or a tuple of types; `Optional` fields may be absent. Decimal values
are strings; ids and times are integers.
"""

from __future__ import annotations

from typing import Any

DEC = str  # a decimal as a string, exactly as the venue sent it
INT = int
BOOL = bool
NONE = type(None)

COMMON = {"type": str, "symbol": (str, NONE), "ts": INT}

SCHEMAS: dict[str, dict[str, Any]] = {
    "book": {
        "recvTs": INT, "updateId": (INT, NONE), "stale": BOOL, "bids": list, "asks": list,
        "bestBid": (DEC, NONE), "bestAsk": (DEC, NONE), "mid": (DEC, NONE),
        "microprice": (DEC, NONE), "spreadTicks": (INT, NONE), "imbalance": (float, NONE),
    },
    "trade": {
        "tradeId": INT, "price": DEC, "qty": DEC, "side": str, "firstTradeId": INT,
        "lastTradeId": INT,
    },
    "markPrice": {"markPrice": DEC, "indexPrice": DEC, "fundingRate": DEC,
                  "nextFundingTime": INT},
    "order": {
        "orderId": INT, "clientOrderId": str, "side": str, "orderType": str,
        "timeInForce": str, "price": DEC, "qty": DEC, "executedQty": DEC, "avgPrice": DEC,
        "status": str, "execType": str, "reduceOnly": BOOL, "expireReason": INT,
    },
    "fill": {
        "tradeId": INT, "orderId": INT, "clientOrderId": str, "side": str, "price": DEC,
        "qty": DEC, "maker": BOOL, "commission": DEC, "commissionAsset": str,
        "realizedPnl": DEC, "source": str,
    },
    "position": {
        "qty": DEC, "entryPrice": DEC, "breakEvenPrice": DEC, "unrealizedPnl": DEC,
        "accumulatedRealized": DEC, "marginType": str, "positionSide": str, "reason": str,
    },
    "balance": {
        "asset": str, "walletBalance": DEC, "crossWalletBalance": DEC, "balanceChange": DEC,
        "reason": str,
    },
    "quote": {"levels": list, "reasons": dict, "paused": (str, NONE)},
    "order_new": {
        "tag": (str, NONE), "clientOrderId": (str, NONE), "orderId": (INT, NONE), "side": str,
        "price": DEC, "qty": DEC, "timeInForce": str, "reduceOnly": BOOL,
        "bookTs": (INT, NONE), "bookRecvTs": (INT, NONE), "dryRun": BOOL,
    },
    "order_modify": {
        "tag": str, "clientOrderId": str, "orderId": (INT, NONE), "side": str, "price": DEC,
        "qty": DEC, "dryRun": BOOL,
    },
    "order_ack": {
        "tag": str, "clientOrderId": str, "orderId": INT, "status": str,
        "latencyMs": (INT, NONE), "settled": BOOL, "dryRun": BOOL,
    },
    "order_cancel": {
        "clientOrderId": str, "orderId": (INT, NONE), "side": str, "price": DEC, "qty": DEC,
        "reason": str, "dryRun": BOOL,
    },
    "order_reject": {
        "tag": (str, NONE), "clientOrderId": (str, NONE), "code": (INT, NONE), "msg": str,
        "local": BOOL, "unknown": BOOL, "dryRun": BOOL,
    },
    "risk": {"guard": str, "action": str, "detail": str, "mode": str},
    "mark": {"mid": DEC, "position": DEC, "netPnl": DEC},
    "funding": {"amount": DEC, "asset": str},
    "summary": {"venueSeconds": float, "fills": INT, "makerFills": INT, "volume": DEC,
                "realizedPnl": DEC, "fees": DEC, "netPnl": DEC, "position": DEC,
                "orders": INT, "quotes": INT, "bookResyncs": INT, "riskMode": str},
    "backtest": {"startTs": INT, "hours": float, "events": INT, "fills": INT,
                 "makerFills": INT, "volume": DEC, "realizedPnl": DEC, "fees": DEC,
                 "funding": DEC, "unrealizedPnl": DEC, "netPnl": DEC, "netPnlPerHour": DEC,
                 "position": DEC, "orders": INT, "params": dict, "latency": dict},
    "pnl": {"period": str, "fills": INT, "maker_share": (float, NONE), "volume": DEC,
            "realized_pnl": DEC, "fees": DEC, "funding": DEC, "net_pnl": DEC,
            "spread_capture": (DEC, NONE), "spread_capture_bps": (float, NONE),
            "markout_1s_bps": (float, NONE), "markout_5s_bps": (float, NONE),
            "markout_30s_bps": (float, NONE), "markout_60s_bps": (float, NONE),
            "fee_bps": (float, NONE), "position_end": DEC, "mid_end": (DEC, NONE),
            "unrealized_change": (DEC, NONE), "equity_change": (DEC, NONE)},
    "verdict": {"fills": INT, "net_pnl": DEC, "edge_5s_bps": (float, NONE),
                "fee_bps": (float, NONE),
                "edge_after_fees_bps": (float, NONE), "max_drawdown": (DEC, NONE),
                "scalping": str},
    "time": {"serverTime": INT, "localTime": INT, "offsetMs": INT, "roundTripMs": float},
    "account": {
        "asset": str, "walletBalance": DEC, "availableBalance": DEC, "marginBalance": DEC,
        "unrealizedPnl": DEC, "initialMargin": DEC, "positionInitialMargin": DEC,
        "openOrderInitialMargin": DEC, "maintMargin": DEC,
    },
    "leverageBracket": {
        "bracket": INT, "initialLeverage": INT, "notionalFloor": DEC, "notionalCap": DEC,
        "maintMarginRatio": DEC,
    },
    "journal": {"table": str, "rows": INT, "files": INT, "format": str,
                "firstTs": (INT, NONE), "lastTs": (INT, NONE), "symbols": list, "runs": INT,
                "bytes": INT, "path": str},
    "symbol": {
        "status": str, "baseAsset": str, "quoteAsset": str, "marginAsset": str,
        "tickSize": DEC, "stepSize": DEC, "minQty": DEC, "maxQty": DEC, "marketMaxQty": DEC,
        "minNotional": DEC, "pricePrecision": INT, "quantityPrecision": INT,
        "multiplierUp": DEC, "multiplierDown": DEC, "orderTypes": list, "timeInForce": list,
    },
}


def check_line(line: dict[str, Any]) -> list[str]:
    """Problems with a line against its schema (empty when it conforms)."""
    kind = line.get("type")
    if kind not in SCHEMAS:
        return [f"unknown line type {kind!r}"]
    problems = []
    for name, spec in {**COMMON, **SCHEMAS[kind]}.items():
        if name not in line:
            problems.append(f"{kind}.{name}: missing")
        elif not isinstance(line[name], spec) or (spec is INT and isinstance(line[name], bool)):
            problems.append(f"{kind}.{name}: {type(line[name]).__name__} is not {_name(spec)}")
    return problems


def _name(spec: Any) -> str:
    if isinstance(spec, tuple):
        return " or ".join(_name(s) for s in spec)
    return "null" if spec is NONE else spec.__name__
