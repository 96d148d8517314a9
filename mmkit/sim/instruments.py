"""The simulator's listed symbols: exchangeInfo entries, leverage brackets and rate limits.

Values follow the real entries where they are known (ETHUSDT/BTCUSDT filters from a recorded
exchangeInfo; leverage brackets from Binance's leverageBracket as shipped by freqtrade). ETHUSDC's
filters are not published in any source we have; it takes ETHUSDT's, which third-party
fixtures agree with (tick 0.01, step 0.001). Only the first six brackets are listed: the rest
start at notionals far beyond a test account.
"""

from __future__ import annotations

import copy
from typing import Any

from mmkit.symbols import SymbolSpec

RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
]

ASSETS = [
    {"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"},
    {"asset": "USDC", "marginAvailable": True, "autoAssetExchange": "-10000"},
    {"asset": "BTC", "marginAvailable": True, "autoAssetExchange": "-0.10000000"},
    {"asset": "ETH", "marginAvailable": True, "autoAssetExchange": "-5"},
]


def _symbol(symbol: str, base: str, quote: str, tick: str, min_price: str, max_price: str,
            max_qty: str, market_max_qty: str, onboard: int, underlying: str) -> dict[str, Any]:
    return {
        "symbol": symbol, "pair": symbol, "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000, "onboardDate": onboard, "status": "TRADING",
        "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
        "baseAsset": base, "quoteAsset": quote, "marginAsset": quote,
        "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8, "quotePrecision": 8,
        "underlyingType": "COIN", "underlyingSubType": [underlying], "settlePlan": 0,
        "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": min_price, "maxPrice": max_price,
             "tickSize": tick},
            {"filterType": "LOT_SIZE", "stepSize": "0.001", "minQty": "0.001", "maxQty": max_qty},
            {"filterType": "MARKET_LOT_SIZE", "stepSize": "0.001", "minQty": "0.001",
             "maxQty": market_max_qty},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": "5"},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
             "multiplierDecimal": "4"},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                       "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


SYMBOLS: dict[str, dict[str, Any]] = {
    "ETHUSDC": _symbol("ETHUSDC", "ETH", "USDC", "0.01", "39.86", "306177", "10000", "2000",
                       1706169600000, "Layer-1"),
    "ETHUSDT": _symbol("ETHUSDT", "ETH", "USDT", "0.01", "39.86", "306177", "10000", "2000",
                       1569398400000, "Layer-1"),
    "BTCUSDT": _symbol("BTCUSDT", "BTC", "USDT", "0.10", "556.80", "4529764", "1000", "120",
                       1569398400000, "PoW"),
}

# (bracket, initialLeverage, notionalFloor, notionalCap, maintMarginRatio, cum)
_BRACKETS = {
    "BTCUSDT": [
        (1, 150, 0, 300000, 0.004, 0),
        (2, 100, 300000, 800000, 0.005, 300),
        (3, 75, 800000, 3000000, 0.0065, 1500),
        (4, 50, 3000000, 12000000, 0.01, 12000),
        (5, 25, 12000000, 70000000, 0.02, 132000),
        (6, 20, 70000000, 100000000, 0.025, 482000),
    ],
    "ETHUSDT": [
        (1, 150, 0, 300000, 0.004, 0),
        (2, 100, 300000, 800000, 0.005, 300),
        (3, 75, 800000, 3000000, 0.0065, 1500),
        (4, 50, 3000000, 12000000, 0.01, 12000),
        (5, 25, 12000000, 50000000, 0.02, 132000),
        (6, 20, 50000000, 65000000, 0.025, 382000),
    ],
    "ETHUSDC": [
        (1, 125, 0, 50000, 0.004, 0),
        (2, 100, 50000, 500000, 0.005, 50),
        (3, 75, 500000, 1000000, 0.0065, 800),
        (4, 50, 1000000, 5000000, 0.01, 4300),
        (5, 20, 5000000, 50000000, 0.02, 54300),
        (6, 10, 50000000, 100000000, 0.05, 1554300),
    ],
}


def leverage_brackets(symbol: str) -> list[dict[str, Any]]:
    """`GET /fapi/v1/leverageBracket` brackets for a symbol."""
    return [
        {"bracket": b, "initialLeverage": lev, "notionalCap": cap, "notionalFloor": floor,
         "maintMarginRatio": mmr, "cum": cum}
        for b, lev, floor, cap, mmr, cum in _BRACKETS[symbol]
    ]


def max_leverage(symbol: str) -> int:
    return _BRACKETS[symbol][0][1]


def exchange_info_symbols(symbols: list[str] | None = None) -> list[dict[str, Any]]:
    """Deep copies of the listed symbols' exchangeInfo entries (all when `symbols` is None)."""
    names = symbols or list(SYMBOLS)
    return [copy.deepcopy(SYMBOLS[name]) for name in names]


def default_specs(symbols: list[str] | None = None) -> dict[str, SymbolSpec]:
    return {e["symbol"]: SymbolSpec.from_exchange_info(e) for e in exchange_info_symbols(symbols)}
