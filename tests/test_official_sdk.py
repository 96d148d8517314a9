"""A third-party client trades against the simulator: Binance's own Python SDK
(`binance-sdk-derivatives-trading-usds-futures`), pointed at the simulator's URLs."""

from __future__ import annotations

import asyncio

import pytest

from mmkit.sim.venue import SIM_API_KEY, SIM_API_SECRET
from tests.simkit import serve

sdk = pytest.importorskip("binance_sdk_derivatives_trading_usds_futures")
from binance_common.configuration import (  # noqa: E402
    ConfigurationRestAPI,
    ConfigurationWebSocketStreams,
)
from binance_sdk_derivatives_trading_usds_futures import DerivativesTradingUsdsFutures  # noqa: E402
from binance_sdk_derivatives_trading_usds_futures.rest_api.models import (  # noqa: E402
    NewOrderNewOrderRespTypeEnum,
    NewOrderSideEnum,
    NewOrderTimeInForceEnum,
    NewOrderTypeEnum,
)


@pytest.fixture(scope="module")
def sim():
    with serve() as server:
        yield server


def client(base_url: str, ws_url: str) -> DerivativesTradingUsdsFutures:
    return DerivativesTradingUsdsFutures(
        config_rest_api=ConfigurationRestAPI(api_key=SIM_API_KEY, api_secret=SIM_API_SECRET,
                                             base_path=base_url, timeout=5000, retries=0),
        config_ws_streams=ConfigurationWebSocketStreams(stream_url=ws_url),
    )


def test_official_sdk_reads_places_cancels_and_fills(sim):
    api = client(sim.base_url, sim.ws_url).rest_api
    info = api.exchange_information().data()
    eth = next(s for s in info.symbols if s.symbol == "ETHUSDC")
    assert eth.margin_asset == "USDC"
    account = api.account_information_v3().data()
    usdc = next(a for a in account.assets if a.asset == "USDC")
    assert usdc.wallet_balance == "100.00000000"

    placed = api.new_order(symbol="ETHUSDC", side=NewOrderSideEnum.BUY,
                           type=NewOrderTypeEnum.LIMIT,
                           time_in_force=NewOrderTimeInForceEnum.GTX, quantity=0.01,
                           price=2990.0).data()
    assert placed.status == "NEW"
    canceled = api.cancel_order(symbol="ETHUSDC", order_id=placed.order_id).data()
    assert canceled.status == "CANCELED"

    with pytest.raises(Exception) as exc:
        api.new_order(symbol="ETHUSDC", side=NewOrderSideEnum.BUY, type=NewOrderTypeEnum.LIMIT,
                      time_in_force=NewOrderTimeInForceEnum.GTX, quantity=0.01, price=3000.01)
    assert "-5022" in str(exc.value) or "Post Only" in str(exc.value)

    filled = api.new_order(symbol="ETHUSDC", side=NewOrderSideEnum.BUY,
                           type=NewOrderTypeEnum.LIMIT,
                           time_in_force=NewOrderTimeInForceEnum.IOC, quantity=0.01,
                           price=3000.01,
                           new_order_resp_type=NewOrderNewOrderRespTypeEnum.RESULT).data()
    assert filled.status == "FILLED" and filled.executed_qty == "0.010"


def test_official_sdk_receives_the_fill_on_the_user_stream(sim):
    async def scenario():
        futures = client(sim.base_url, sim.ws_url)
        api = futures.rest_api
        listen_key = api.start_user_data_stream().data().listen_key
        streams = await futures.websocket_streams.create_connection()
        events = []
        stream = await streams.user_data(listen_key)
        stream.on("message", events.append)
        for _ in range(300):  # until the venue has the key's subscription
            if any(listen_key in s.listen_keys for s in sim.venue.subscribers):
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(
            api.new_order, symbol="ETHUSDC", side=NewOrderSideEnum.SELL,
            type=NewOrderTypeEnum.LIMIT, time_in_force=NewOrderTimeInForceEnum.IOC,
            quantity=0.01, price=3000.00, new_client_order_id="sdk-ioc-1")
        for _ in range(50):
            if any(_is_trade(e) for e in events):
                break
            await asyncio.sleep(0.1)
        await streams.close_connection(close_session=True)
        return events

    events = asyncio.run(scenario())
    trades = [e for e in events if _is_trade(e)]
    assert trades, f"no ORDER_TRADE_UPDATE with a TRADE among {events!r}"


def _is_trade(event) -> bool:
    inner = getattr(event, "actual_instance", event)
    order = getattr(inner, "o", None)
    return type(inner).__name__ == "OrderTradeUpdate" and getattr(order, "x", None) == "TRADE"
