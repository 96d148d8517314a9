"""Ad-hoc account queries: time, balance, position, account, symbol.

Each prints JSON lines (or `--table`) built from one or two REST calls; the shapes are in
docs/streams.md (`balance` and `position` lines match what `mmkit userstream` prints).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import click

from mmkit.cli.common import load, rest_client, run
from mmkit.cli.output import emit, output_options
from mmkit.errors import ConfigError


@click.command("time")
@output_options
@click.pass_context
def time_cmd(ctx: click.Context, table: bool) -> None:
    """Venue time and the local clock offset.

    \b
    Example:
      mmkit --venue sim time
    """
    async def main() -> dict:
        async with rest_client(load(ctx)) as client:
            sent = time.time()
            server = await client.server_time()
            received = time.time()
            local = int((sent + received) / 2 * 1000)
            return {"type": "time", "symbol": None, "ts": server, "serverTime": server,
                    "localTime": local, "offsetMs": server - local,
                    "roundTripMs": round((received - sent) * 1000, 3)}

    emit([run(main())], table)


@click.command("balance")
@click.option("--all", "show_all", is_flag=True, help="Include assets with a zero balance.")
@output_options
@click.pass_context
def balance(ctx: click.Context, show_all: bool, table: bool) -> None:
    """Balances per asset: wallet, available, unrealized PnL, margin balance.

    \b
    Example:
      mmkit --venue sim balance --table
    """
    async def main() -> list[dict]:
        async with rest_client(load(ctx)) as client:
            account = await client.account()
        return [balance_row(a) for a in account["assets"]
                if show_all or Decimal(a["walletBalance"]) or Decimal(a["unrealizedProfit"])]

    emit(run(main()), table)


def balance_row(asset: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "balance", "symbol": None, "ts": asset.get("updateTime", 0),
        "asset": asset["asset"], "walletBalance": asset["walletBalance"],
        "availableBalance": asset["availableBalance"], "crossUnPnl": asset["crossUnPnl"],
        "marginBalance": asset["marginBalance"],
        "crossWalletBalance": asset["crossWalletBalance"],
        "initialMargin": asset["initialMargin"], "maintMargin": asset["maintMargin"],
        "maxWithdrawAmount": asset["maxWithdrawAmount"],
        "balanceChange": "0", "reason": "SNAPSHOT",
    }


@click.command("position")
@click.argument("symbol", required=False)
@click.option("--all", "show_all", is_flag=True, help="Include flat symbols.")
@output_options
@click.pass_context
def position(ctx: click.Context, symbol: str | None, show_all: bool, table: bool) -> None:
    """Open positions (one line per symbol; flat ones too with --all).

    \b
    Examples:
      mmkit --venue sim position
      mmkit --venue sim position ETHUSDC --all --table
    """
    async def main() -> list[dict]:
        async with rest_client(load(ctx)) as client:
            rows = await client.positions(symbol.upper() if symbol else None)
        return [position_row(r) for r in rows if show_all or Decimal(r["positionAmt"])]

    emit(run(main()), table)


def position_row(row: dict[str, Any]) -> dict[str, Any]:
    amount = Decimal(row["positionAmt"])
    side = "LONG" if amount > 0 else "SHORT" if amount < 0 else "FLAT"
    return {
        "type": "position", "symbol": row["symbol"], "ts": row.get("updateTime", 0),
        "side": side, "qty": row["positionAmt"], "entryPrice": row["entryPrice"],
        "breakEvenPrice": row["breakEvenPrice"], "markPrice": row["markPrice"],
        "unrealizedPnl": row["unRealizedProfit"], "liquidationPrice": row["liquidationPrice"],
        "leverage": int(row["leverage"]) if row.get("leverage") else None,
        "notional": row["notional"], "marginType": row.get("marginType", "cross"),
        "positionSide": row.get("positionSide", "BOTH"), "reason": "SNAPSHOT",
        "accumulatedRealized": row.get("accumulatedRealized", "0"),
    }


@click.command("account")
@output_options
@click.pass_context
def account(ctx: click.Context, table: bool) -> None:
    """Account totals per margin asset, and the leverage brackets of the configured symbols.

    \b
    Example:
      mmkit --venue sim account --table
    """
    config = load(ctx)
    symbols = sorted(config.symbols) or ["ETHUSDC"]

    async def main() -> list[dict]:
        async with rest_client(config) as client:
            info = await client.account()
            brackets = await client.leverage_bracket()
        assets = {_margin_asset(s) for s in symbols}
        rows = [account_row(a, info) for a in info["assets"]
                if a["asset"] in assets or Decimal(a["walletBalance"])]
        for entry in brackets:
            if entry["symbol"] in symbols:
                rows += [bracket_row(entry["symbol"], b) for b in entry["brackets"]]
        return rows

    emit(run(main()), table)


def _margin_asset(symbol: str) -> str:
    for quote in ("USDC", "USDT", "BUSD", "FDUSD"):
        if symbol.endswith(quote):
            return quote
    return "USDT"


def account_row(asset: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "account", "symbol": None, "ts": asset.get("updateTime", 0),
        "asset": asset["asset"], "walletBalance": asset["walletBalance"],
        "availableBalance": asset["availableBalance"], "marginBalance": asset["marginBalance"],
        "unrealizedPnl": asset["unrealizedProfit"], "initialMargin": asset["initialMargin"],
        "positionInitialMargin": asset["positionInitialMargin"],
        "openOrderInitialMargin": asset["openOrderInitialMargin"],
        "maintMargin": asset["maintMargin"],
    }


def bracket_row(symbol: str, bracket: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "leverageBracket", "symbol": symbol, "ts": 0, "bracket": bracket["bracket"],
        "initialLeverage": bracket["initialLeverage"],
        "notionalFloor": str(bracket["notionalFloor"]),
        "notionalCap": str(bracket["notionalCap"]),
        "maintMarginRatio": str(bracket["maintMarginRatio"]),
    }


@click.command("symbol")
@click.argument("symbols", nargs=-1, required=True)
@output_options
@click.pass_context
def symbol(ctx: click.Context, symbols: tuple[str, ...], table: bool) -> None:
    """A symbol's trading constraints from exchangeInfo.

    \b
    Example:
      mmkit --venue sim symbol ETHUSDC
    """
    from mmkit.symbols import SymbolSpec

    async def main() -> list[dict]:
        async with rest_client(load(ctx)) as client:
            info = await client.exchange_info()
        entries = {e["symbol"]: e for e in info["symbols"]}
        rows = []
        for name in symbols:
            entry = entries.get(name.upper())
            if entry is None:
                raise ConfigError(f"no such symbol on this venue: {name}", "SYMBOL")
            rows.append(symbol_row(SymbolSpec.from_exchange_info(entry), entry,
                                   info.get("serverTime", 0)))
        return rows

    emit(run(main()), table)


def symbol_row(spec, entry: dict[str, Any], ts: int) -> dict[str, Any]:
    return {
        "type": "symbol", "symbol": spec.symbol, "ts": ts, "status": spec.status,
        "baseAsset": spec.base_asset, "quoteAsset": spec.quote_asset,
        "marginAsset": spec.margin_asset, "tickSize": _plain(spec.tick_size),
        "stepSize": _plain(spec.step_size), "minQty": _plain(spec.min_qty),
        "maxQty": _plain(spec.max_qty), "marketMaxQty": _plain(spec.market_max_qty),
        "minNotional": _plain(spec.min_notional), "pricePrecision": spec.price_precision,
        "quantityPrecision": spec.quantity_precision,
        "multiplierUp": _plain(spec.multiplier_up), "multiplierDown": _plain(spec.multiplier_down),
        "orderTypes": list(spec.order_types), "timeInForce": list(spec.time_in_force),
    }


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"
