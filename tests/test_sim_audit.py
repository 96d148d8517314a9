"""Divergences from Binance found by an audit, each checked on the wire against the simulator
on a loopback port."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import orjson
import websockets

from mmkit.model import MarkPrice, Timed
from mmkit.sim.engine import OrderRequest
from mmkit.sim.instruments import default_specs
from mmkit.sim.venue import Faults, Venue, VenueClock
from tests.simkit import SignedHttp, serve, static_book, static_venue


def order(http, **params):
    base = {"symbol": "ETHUSDC", "side": "BUY", "type": "LIMIT", "timeInForce": "GTX",
            "quantity": "0.010", "price": "2990.00"}
    return http.signed("POST", "/fapi/v1/order", **{**base, **params})


def test_all_orders_pages_from_an_order_id_or_answers_the_newest_within_a_time_window():
    with serve(static_venue(step=True)) as server:
        http = SignedHttp(server.base_url)
        placed = []
        for price in ("2990.00", "2989.00", "2988.00", "2987.00", "2986.00"):
            placed.append(order(http, price=price).json())
            http.post("/_sim/step", ms=1000)
        ids = [p["orderId"] for p in placed]

        def all_orders(**params):
            rows = http.signed("GET", "/fapi/v1/allOrders", symbol="ETHUSDC", **params).json()
            return [r["orderId"] for r in rows]

        assert all_orders() == ids
        assert all_orders(orderId=ids[1], limit=2) == ids[1:3]
        assert all_orders(orderId=ids[3]) == ids[3:]
        assert all_orders(limit=2) == ids[3:]
        times = [p["updateTime"] for p in placed]
        assert all_orders(startTime=times[1], endTime=times[3]) == ids[1:4]
        assert all_orders(startTime=times[2], limit=1) == ids[4:]
        week = http.signed("GET", "/fapi/v1/allOrders", symbol="ETHUSDC", startTime=0,
                           endTime=7 * 86_400_000 + 1)
        assert week.json()["code"] == -1127


async def _next_event(ws, timeout: float) -> dict | None:
    try:
        return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
    except TimeoutError:
        return None


def test_only_private_and_legacy_unrouted_connections_carry_user_data(server, http):
    """/public and /market never deliver user data, not even for a listen key SUBSCRIBEd on
    them; /private does, and so do the legacy unrouted /ws/<key> and /stream + SUBSCRIBE."""
    async def scenario():
        key = http.post("/fapi/v1/listenKey").json()["listenKey"]
        ws = server.ws_url
        urls = {"public-ws": f"{ws}/public/ws/{key}", "market-ws": f"{ws}/market/ws/{key}",
                "public-sub": f"{ws}/public/stream", "market-sub": f"{ws}/market/ws",
                "private": f"{ws}/private/ws/{key}", "legacy-ws": f"{ws}/ws/{key}",
                "legacy-sub": f"{ws}/stream"}
        sockets = {name: await websockets.connect(url) for name, url in urls.items()}
        try:
            for name in ("public-sub", "market-sub", "legacy-sub"):
                await sockets[name].send(orjson.dumps(
                    {"method": "SUBSCRIBE", "params": [key], "id": 1}).decode())
                assert await _next_event(sockets[name], 2) == {"result": None, "id": 1}
            await asyncio.to_thread(order, http)
            return {name: await _next_event(sock, 1) for name, sock in sockets.items()}
        finally:
            for sock in sockets.values():
                await sock.close()

    got = asyncio.run(scenario())
    assert {n for n, e in got.items() if e is not None} == {"private", "legacy-ws",
                                                            "legacy-sub"}
    assert got["private"]["e"] == "ORDER_TRADE_UPDATE"
    assert got["legacy-sub"]["data"]["e"] == "ORDER_TRADE_UPDATE"


def test_listen_key_expired_is_wrapped_on_a_combined_private_stream():
    with serve(static_venue(faults=Faults(listen_key_ttl_s=0.3))) as server:
        http = SignedHttp(server.base_url)

        async def scenario():
            key = http.post("/fapi/v1/listenKey").json()["listenKey"]
            url = f"{server.ws_url}/private/stream?listenKey={key}"
            async with websockets.connect(url) as user:
                return key, orjson.loads(await asyncio.wait_for(user.recv(), 3))

        key, event = asyncio.run(scenario())
        assert event["stream"] == key
        assert event["data"]["e"] == "listenKeyExpired" and event["data"]["listenKey"] == key


def test_decimal_parameters_are_plain_digits_as_on_binance(http):
    legal = "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'"
    for quantity in ("1e-2", "2e3", ".01", "+2000", "abc", "-0.010", "0.010 "):
        refused = order(http, quantity=quantity)
        assert refused.status_code == 400, quantity
        assert refused.json() == {"code": -1100, "msg": "Illegal characters found in parameter "
                                  f"'quantity'; legal range is {legal}."}
    assert order(http, price="3e3").json()["code"] == -1100
    assert order(http, quantity="0.010", price="2990").json()["status"] == "NEW"
    placed = order(http).json()
    modify = http.signed("PUT", "/fapi/v1/order", symbol="ETHUSDC", orderId=placed["orderId"],
                         side="BUY", quantity="0.02", price="2.991e3")
    assert modify.json()["msg"].startswith("Illegal characters found in parameter 'price'")
    batch = orjson.dumps([{"symbol": "ETHUSDC", "side": "BUY", "type": "LIMIT",
                           "timeInForce": "GTX", "quantity": q, "price": "2990.00"}
                          for q in (".01", "0.010")]).decode()
    first, second = http.signed("POST", "/fapi/v1/batchOrders", batchOrders=batch).json()
    assert first["code"] == -1100 and second["status"] == "NEW"


def test_open_order_notional_is_the_same_in_account_and_position_risk(http):
    order(http, price="2990.00", quantity="0.010")
    order(http, side="SELL", price="3010.00", quantity="0.020")
    account = http.signed("GET", "/fapi/v2/account").json()
    row = next(p for p in account["positions"] if p["symbol"] == "ETHUSDC")
    risk = http.signed("GET", "/fapi/v3/positionRisk", symbol="ETHUSDC").json()[0]
    assert (row["bidNotional"], row["askNotional"]) == ("29.90000000", "60.20000000")
    assert (risk["bidNotional"], risk["askNotional"]) == (row["bidNotional"], row["askNotional"])


def test_leverage_bracket_of_one_symbol_is_an_object(http):
    one = http.signed("GET", "/fapi/v1/leverageBracket", symbol="ETHUSDC").json()
    assert one["symbol"] == "ETHUSDC" and one["brackets"][0]["bracket"] == 1
    every = http.signed("GET", "/fapi/v1/leverageBracket").json()
    assert [row["symbol"] for row in every] == ["ETHUSDC", "ETHUSDT", "BTCUSDT"]


def test_price_match_is_never_sent_with_a_price(http):
    both = order(http, timeInForce="GTC", priceMatch="QUEUE")
    assert both.status_code == 400
    assert both.json() == {"code": -1106, "msg": "Parameter 'price' sent when not required."}
    assert http.signed("GET", "/fapi/v1/openOrders", symbol="ETHUSDC").json() == []


def test_a_replay_in_real_time_keeps_funding_on_the_funding_hours():
    """The replay is moved to the wall clock by an arbitrary offset; nextFundingTime (and the
    funding itself) stays on 00/08/16 UTC instead of moving with it."""
    eight_hours = 8 * 3600 * 1000
    recorded = 1723086780000  # 2024-08-08 03:13 UTC; its next funding is 08:00
    specs = default_specs(["ETHUSDC"])
    mark = MarkPrice("ETHUSDC", recorded + 10, Decimal("3000"), Decimal("3000"),
                     Decimal("0.0001"), 1723104000000)
    book = static_book("ETHUSDC", specs["ETHUSDC"], "3000.00").event
    market = iter([Timed(recorded, book), Timed(recorded + 10, mark)])
    wall = [1_800_000_123.456]  # seconds; a time far from the recording's
    venue = Venue(specs, market, clock=VenueClock(wall=lambda: wall[0]))
    venue.tick()
    wall[0] += 0.02
    venue.tick()
    now = venue.now()
    funding = venue.mark_payload("ETHUSDC", now)["T"]
    assert funding % eight_hours == 0 and now < funding <= now + eight_hours
    spec = specs["ETHUSDC"]
    venue.engine.place(now, OrderRequest("ETHUSDC", "BUY", "LIMIT", spec.to_steps("0.010"),
                                         spec.to_ticks("3000.01"), "IOC"))
    wall[0] += (funding - now) / 1000 + 1
    venue.tick()
    paid = [i for i in venue.engine.incomes if i.income_type == "FUNDING_FEE"]
    assert [i.ts for i in paid] == [funding]


def test_partial_depth_carries_the_update_id_chain_of_the_diff_stream(server, http):
    partial, diff = "ethusdc@depth5@100ms", "ethusdc@depth@100ms"

    async def scenario():
        async with websockets.connect(
                f"{server.ws_url}/public/stream?streams={partial}/{diff}") as ws:
            seen: dict[str, list[dict]] = {partial: [], diff: []}
            for count, price in enumerate(("2990.00", "2989.00"), 1):  # two 100 ms intervals
                await asyncio.to_thread(order, http, price=price)
                while min(len(seen[partial]), len(seen[diff])) < count:
                    message = orjson.loads(await asyncio.wait_for(ws.recv(), 3))
                    seen[message["stream"]].append(message["data"])
            return seen

    seen = asyncio.run(scenario())
    chains = {name: [(e["U"], e["u"], e["pu"]) for e in seen[name][:2]] for name in seen}
    assert chains[partial] == chains[diff]
    (_, first_u, _), (second_U, second_u, second_pu) = chains[partial]
    assert second_pu == first_u and second_U > first_u and second_u >= second_U


def test_without_a_stp_mode_a_self_cross_trades_with_fees_on_both_sides():
    """Binance's default selfTradePreventionMode is NONE (recorded mainnet orders sent without
    it say so): our taker that reaches our resting order trades with it at its price."""
    money = {"USDC": Decimal(100_000), "USDT": Decimal(100_000)}
    with serve(static_venue(balances=money)) as server:
        http = SignedHttp(server.base_url)
        maker = order(http, side="SELL", price="3000.01").json()
        assert maker["selfTradePreventionMode"] == "NONE"
        taker = order(http, timeInForce="IOC", price="3000.01", quantity="1.010",
                      newOrderRespType="RESULT").json()
        assert (taker["status"], taker["executedQty"]) == ("FILLED", "1.010")
        maker = http.signed("GET", "/fapi/v1/order", symbol="ETHUSDC",
                            orderId=maker["orderId"]).json()
        assert (maker["status"], maker["executedQty"]) == ("FILLED", "0.010")
        trades = http.signed("GET", "/fapi/v1/userTrades", symbol="ETHUSDC").json()
        assert {t["marginAsset"] for t in trades} == {"USDC"}
        ours = {(t["orderId"], t["maker"], t["qty"], t["commission"]) for t in trades
                if t["qty"] == "0.010"}
        assert ours == {(maker["orderId"], True, "0.010", "0.00600002"),
                        (taker["orderId"], False, "0.010", "0.01500005")}
        position = http.signed("GET", "/fapi/v3/positionRisk", symbol="ETHUSDC").json()[0]
        assert position["positionAmt"] == "1.000"  # the market's 1.000; ours nets out
        fees = sum(Decimal(t["commission"]) for t in trades)
        wallet = http.signed("GET", "/fapi/v2/balance").json()
        usdc = next(row for row in wallet if row["asset"] == "USDC")
        assert Decimal(usdc["balance"]) == 100_000 - fees


def test_the_endpoints_a_bot_calls_at_start_answer(http):
    config = http.signed("GET", "/fapi/v1/accountConfig").json()
    assert (config["dualSidePosition"], config["multiAssetsMargin"]) == (False, False)
    symbols = http.signed("GET", "/fapi/v1/symbolConfig", symbol="ETHUSDC").json()
    assert symbols == [{"symbol": "ETHUSDC", "marginType": "CROSSED", "isAutoAddMargin": False,
                        "leverage": 20, "maxNotionalValue": symbols[0]["maxNotionalValue"]}]
    crossed = http.signed("POST", "/fapi/v1/marginType", symbol="ETHUSDC", marginType="CROSSED")
    assert crossed.json() == {"code": -4046, "msg": "No need to change margin type."}
    isolated = http.signed("POST", "/fapi/v1/marginType", symbol="ETHUSDC",
                           marginType="ISOLATED")
    assert isolated.status_code == 400 and "not supported" in isolated.json()["msg"]
    assert http.signed("GET", "/fapi/v1/multiAssetsMargin").json() == {
        "multiAssetsMargin": False}
    single = http.signed("POST", "/fapi/v1/multiAssetsMargin", multiAssetsMargin="false")
    assert single.json()["code"] == -4171
    limits = http.signed("GET", "/fapi/v1/rateLimit/order").json()
    assert {(r["interval"], r["limit"]) for r in limits} == {("MINUTE", 1200), ("SECOND", 300)}


def test_ticker_24hr_summarises_the_trades_the_venue_keeps():
    with serve() as server:
        http = SignedHttp(server.base_url)
        order(http, timeInForce="IOC", price="3000.01", quantity="0.010")
        order(http, side="SELL", timeInForce="IOC", price="3000.00", quantity="0.030")
        ticker = http.get("/fapi/v1/ticker/24hr", symbol="ETHUSDC").json()
        assert (ticker["openPrice"], ticker["lastPrice"], ticker["highPrice"],
                ticker["lowPrice"]) == ("3000.01", "3000.00", "3000.01", "3000.00")
        assert (ticker["count"], ticker["volume"], ticker["priceChange"]) == (2, "0.040", "-0.01")
        assert ticker["lastId"] > ticker["firstId"] and ticker["weightedAvgPrice"] != "0"
        assert len(http.get("/fapi/v1/ticker/24hr").json()) == 3


def test_funding_rate_history_lists_every_settlement_on_the_funding_hours():
    eight_hours = 8 * 3600 * 1000
    with serve(static_venue(step=True)) as server:
        http = SignedHttp(server.base_url)
        book = server.venue.engine.books["ETHUSDC"]
        book.funding_rate, book.next_funding_time = Decimal("0.0001"), (
            server.venue.now() // eight_hours + 1) * eight_hours
        order(http, timeInForce="IOC", price="3000.01")  # a position: funding is paid
        for _ in range(2):
            http.post("/_sim/step", ms=eight_hours)
        paid = http.signed("GET", "/fapi/v1/income", incomeType="FUNDING_FEE").json()
        assert [p["info"] for p in paid] == ["FUNDING_FEE", "FUNDING_FEE"]
        history = http.get("/fapi/v1/fundingRate", symbol="ETHUSDC").json()
        assert [h["fundingTime"] % eight_hours for h in history] == [0, 0]
        assert history[0]["fundingRate"] == "0.00010000" and history[0]["symbol"] == "ETHUSDC"
        assert history[1]["fundingTime"] - history[0]["fundingTime"] == eight_hours
        first = http.get("/fapi/v1/fundingRate", startTime=0, limit=1).json()
        assert first == history[:1]
