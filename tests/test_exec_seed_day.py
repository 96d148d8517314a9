"""The restart recipe of docs/risk.md against the simulator: today's fills from
GET /fapi/v1/userTrades, through the user-trade and fill-line parsers, seed a fresh risk engine
with the day's notional and realized PnL minus fees, as the venue counts them."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from mmkit.binance.rest import RestClient
from mmkit.binance.signing import Credentials
from mmkit.binance.userdata import fill_from_user_trade
from mmkit.config import InventoryConfig, RiskConfig
from mmkit.feeds import own_fill_from_line
from mmkit.risk import DAY_MS, build_guards
from mmkit.sim.instruments import default_specs
from mmkit.sim.venue import SIM_API_KEY, SIM_API_SECRET
from tests.simkit import serve, static_venue

SPEC = default_specs(["ETHUSDC"])["ETHUSDC"]


def test_todays_user_trades_seed_the_daily_budgets_of_a_restarted_engine():
    async def go(sim):
        async with RestClient(sim.base_url, Credentials(SIM_API_KEY, SIM_API_SECRET)) as rest:
            for side, price in (("BUY", "3000.01"), ("SELL", "3000.00")):  # both take
                await rest.place_order(symbol="ETHUSDC", side=side, type="LIMIT",
                                       timeInForce="GTC", quantity="0.010", price=price)
            now = rest.venue_now_ms()
            return await rest.user_trades("ETHUSDC", now // DAY_MS * DAY_MS - DAY_MS), now

    with serve(static_venue()) as sim:  # bid 3000.00, ask 3000.01
        trades, now = asyncio.run(go(sim))

    assert len(trades) == 2
    now = max(now, trades[-1]["time"])
    trades = [t for t in trades if t["time"] // DAY_MS == now // DAY_MS]  # seed_day's day
    risk = build_guards(SPEC, RiskConfig(), InventoryConfig())
    risk.on_position(0, now)
    fills = [own_fill_from_line(SPEC, fill_from_user_trade(t)) for t in trades]
    assert risk.seed_day(fills, now) == []
    assert risk.daily_notional == sum(Decimal(t["price"]) * Decimal(t["qty"]) for t in trades)
    venue_pnl = sum(Decimal(t["realizedPnl"]) - Decimal(t["commission"]) for t in trades)
    assert venue_pnl < 0 and risk.daily_pnl == venue_pnl
    assert risk.position == 0
