"""The simulator on the wire: authentication, limits, faults and streams, driven over
loopback HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import time

import orjson
import websockets

from mmkit.binance.signing import hmac_signature
from mmkit.sim.venue import Faults
from tests.simkit import SignedHttp, serve, static_venue


def order(http, **params):
    base = {"symbol": "ETHUSDC", "side": "BUY", "type": "LIMIT", "timeInForce": "GTX",
            "quantity": "0.010", "price": "2990.00"}
    return http.signed("POST", "/fapi/v1/order", **{**base, **params})


def test_public_endpoints_carry_weight_headers(http):
    response = http.get("/fapi/v1/depth", symbol="ETHUSDC", limit=1000)
    assert response.status_code == 200
    assert int(response.headers["X-MBX-USED-WEIGHT-1M"]) >= 20
    body = response.json()
    assert body["bids"][0] == ["3000.00", "1.000"] and body["asks"][0] == ["3000.01", "1.000"]
    assert http.get("/fapi/v1/depth", symbol="ETHUSDC", limit=7).json()["code"] == -4021
    assert http.get("/fapi/v1/depth", symbol="NOPE").json()["code"] == -1121


def test_signed_requests_are_checked(http):
    assert order(http).status_code == 200
    wrong = SignedHttp(http.http.base_url, secret="0" * 64)
    assert order(wrong).json()["code"] == -1022
    unknown = SignedHttp(http.http.base_url, api_key="x" * 64)
    response = order(unknown)
    assert response.status_code == 401 and response.json()["code"] == -2015
    stale = order(http, timestamp=int(time.time() * 1000) - 10_000)
    assert stale.json()["code"] == -1021
    ahead = order(http, timestamp=int(time.time() * 1000) + 5_000)
    assert ahead.json()["code"] == -1021


def test_body_and_query_are_signed_together(http):
    """Binance signs query + body with nothing between them."""
    query = "symbol=ETHUSDC&side=BUY&type=LIMIT&timeInForce=GTX"
    body = f"quantity=0.010&price=2990.00&timestamp={int(time.time() * 1000)}"
    signature = hmac_signature(http.secret, query + body)
    response = http.http.post(f"/fapi/v1/order?{query}", content=f"{body}&signature={signature}",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200, response.text


def test_filters_answer_with_binance_codes(http):
    assert order(http, price="2990.001").json()["code"] == -1111
    assert order(http, quantity="0.0001").json()["code"] == -1111
    assert order(http, quantity="0.001").json()["code"] == -4164
    assert order(http, timeInForce="FOO").json()["code"] == -1115
    assert order(http, type="STOP_MARKET").json()["code"] == -4120
    assert order(http, newClientOrderId="bad id!").json()["code"] == -4015
    assert order(http, price="3000.01").json()["code"] == -5022


def test_order_lifecycle_and_queries(http):
    placed = order(http, newClientOrderId="t-1").json()
    assert placed["status"] == "NEW" and placed["clientOrderId"] == "t-1"
    again = order(http, newClientOrderId="t-1").json()
    assert again["code"] == -4116
    got = http.signed("GET", "/fapi/v1/order", symbol="ETHUSDC", origClientOrderId="t-1").json()
    assert got["orderId"] == placed["orderId"]
    modified = http.signed("PUT", "/fapi/v1/order", symbol="ETHUSDC", orderId=placed["orderId"],
                           side="BUY", quantity="0.020", price="2991.00").json()
    assert modified["origQty"] == "0.020" and modified["price"] == "2991.00"
    assert (modified["pair"], modified["cumBase"]) == ("ETHUSDC", "0.000")
    canceled = http.signed("DELETE", "/fapi/v1/order", symbol="ETHUSDC",
                           orderId=placed["orderId"]).json()
    assert canceled["status"] == "CANCELED"
    again = http.signed("DELETE", "/fapi/v1/order", symbol="ETHUSDC", orderId=placed["orderId"])
    assert again.json()["code"] == -2011
    missing = http.signed("GET", "/fapi/v1/order", symbol="ETHUSDC", orderId=1)
    assert missing.json()["code"] == -2013


def test_batch_orders_answer_per_element(http):
    batch = orjson.dumps([
        {"symbol": "ETHUSDC", "side": "BUY", "type": "LIMIT", "timeInForce": "GTX",
         "quantity": "0.010", "price": "2990.00"},
        {"symbol": "ETHUSDC", "side": "BUY", "type": "LIMIT", "timeInForce": "GTX",
         "quantity": "0.010", "price": "3000.01"},
    ]).decode()
    results = http.signed("POST", "/fapi/v1/batchOrders", batchOrders=batch).json()
    assert results[0]["status"] == "NEW" and results[1]["code"] == -5022
    done = http.signed("DELETE", "/fapi/v1/allOpenOrders", symbol="ETHUSDC").json()
    assert done == {"code": 200, "msg": "The operation of cancel all open order is done."}
    assert http.signed("GET", "/fapi/v1/openOrders", symbol="ETHUSDC").json() == []


def test_a_batch_counts_five_on_the_ten_second_window_and_one_on_the_minute():
    """Binance's order-entry costs: POST/PUT /fapi/v1/batchOrders count 5 on ORDERS 10s and
    1 on ORDERS 1m (the audit saw X-MBX-ORDER-COUNT-1M go 6 → 11 after one batch)."""
    with serve(static_venue(step=True)) as server:  # step mode: the windows cannot roll over
        http = SignedHttp(server.base_url)
        one = order(http)
        assert (one.headers["X-MBX-ORDER-COUNT-10S"], one.headers["X-MBX-ORDER-COUNT-1M"]) == (
            "1", "1")
        batch = orjson.dumps([{"symbol": "ETHUSDC", "side": "BUY", "type": "LIMIT",
                               "timeInForce": "GTX", "quantity": "0.010", "price": p}
                              for p in ("2989.00", "2988.00")]).decode()
        placed = http.signed("POST", "/fapi/v1/batchOrders", batchOrders=batch)
        assert [r["status"] for r in placed.json()] == ["NEW", "NEW"]
        assert placed.headers["X-MBX-ORDER-COUNT-10S"] == "6"
        assert placed.headers["X-MBX-ORDER-COUNT-1M"] == "2"
        modified = orjson.dumps([{"symbol": "ETHUSDC", "orderId": r["orderId"], "side": "BUY",
                                  "quantity": "0.020", "price": r["price"]}
                                 for r in placed.json()]).decode()
        again = http.signed("PUT", "/fapi/v1/batchOrders", batchOrders=modified)
        assert (again.headers["X-MBX-ORDER-COUNT-10S"],
                again.headers["X-MBX-ORDER-COUNT-1M"]) == ("11", "3")


def test_a_fill_shows_in_trades_income_and_positions(http):
    filled = order(http, timeInForce="IOC", price="3000.01", newOrderRespType="RESULT").json()
    assert filled["status"] == "FILLED" and filled["avgPrice"] == "3000.01"
    trades = http.signed("GET", "/fapi/v1/userTrades", symbol="ETHUSDC").json()
    assert trades[-1]["qty"] == "0.010" and trades[-1]["maker"] is False
    assert trades[-1]["commission"] == "0.01500005"
    income = http.signed("GET", "/fapi/v1/income", symbol="ETHUSDC").json()
    assert income[-1]["incomeType"] == "COMMISSION" and income[-1]["income"] == "-0.01500005"
    position = http.signed("GET", "/fapi/v3/positionRisk", symbol="ETHUSDC").json()[0]
    assert position["positionAmt"] == "0.010" and position["entryPrice"] == "3000.01"


def test_user_trades_spans_at_most_seven_days(http):
    week = 7 * 86_400_000
    ok = http.signed("GET", "/fapi/v1/userTrades", symbol="ETHUSDC", startTime=0, endTime=week)
    too_long = http.signed("GET", "/fapi/v1/userTrades", symbol="ETHUSDC", startTime=0,
                           endTime=week + 1)
    assert ok.status_code == 200
    assert too_long.status_code == 400 and too_long.json()["code"] == -1127


def test_countdown_cancel_all_is_a_dead_mans_switch():
    with serve(static_venue(step=True)) as server:
        http = SignedHttp(server.base_url)
        order(http)
        http.signed("POST", "/fapi/v1/countdownCancelAll", symbol="ETHUSDC", countdownTime=5000)
        http.post("/_sim/step", ms=4000)
        assert len(http.signed("GET", "/fapi/v1/openOrders").json()) == 1
        http.post("/_sim/step", ms=2000)
        assert http.signed("GET", "/fapi/v1/openOrders").json() == []


def test_weight_limit_gives_429_then_418():
    # step mode: the venue's clock stands still, so no minute rolls over mid-test
    with serve(static_venue(step=True)) as server:
        http = SignedHttp(server.base_url)
        statuses = [http.get("/fapi/v1/depth", symbol="ETHUSDC", limit=1000).status_code
                    for _ in range(135)]
        assert statuses[:120] == [200] * 120
        assert 429 in statuses and statuses[-1] == 418
        banned = http.get("/fapi/v1/time")
        assert banned.status_code == 418 and "Retry-After" in banned.headers


def test_faults_are_injected_and_counted():
    faults = Faults(error_rate=1.0)
    with serve(static_venue(faults=faults)) as server:
        http = SignedHttp(server.base_url)
        response = http.get("/fapi/v1/time")
        assert response.status_code == 503
        server.venue.faults = Faults(lose_order_response_rate=1.0)
        lost = order(http, newClientOrderId="lost-1")
        assert lost.status_code == 503 and lost.json()["code"] == -1007
        found = http.signed("GET", "/fapi/v1/order", symbol="ETHUSDC",
                            origClientOrderId="lost-1").json()
        assert found["status"] == "NEW"  # accepted although the answer was lost
        metrics = http.get("/metrics").text
        assert 'mmkit_sim_faults_total{fault="error_5xx"} 1.0' in metrics
        assert 'mmkit_sim_faults_total{fault="lost_order_response"} 1.0' in metrics


def test_a_client_that_hangs_up_mid_request_is_no_error(server, http, caplog):
    """A bot stopped while its order is on the wire: the venue drops the half-sent request
    quietly (it used to log a ClientDisconnect traceback) and serves the next one."""
    import logging
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(server.base_url)
    with caplog.at_level(logging.ERROR), socket.create_connection((url.hostname, url.port)) as s:
        s.sendall(b"POST /fapi/v1/order HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                  b"Content-Type: application/x-www-form-urlencoded\r\n\r\nsymbol=ETH")
    assert http.get("/fapi/v1/time").status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_clock_skew_fault_moves_server_time():
    with serve(static_venue(faults=Faults(clock_skew_ms=30_000))) as server:
        http = SignedHttp(server.base_url)
        server_time = http.get("/fapi/v1/time").json()["serverTime"]
        assert server_time - time.time() * 1000 > 25_000
        assert order(http).json()["code"] == -1021
        # counted like every other fault: once per REST request served on the skewed clock
        metrics = http.get("/metrics").text
        assert 'mmkit_sim_faults_total{fault="clock_skew"} 2.0' in metrics


def test_streams_follow_the_book_and_the_user_stream_reports_fills(server, http):
    async def scenario():
        url = f"{server.ws_url}/public/stream?streams=ethusdc@depth@0ms/ethusdc@bookTicker"
        listen_key = http.post("/fapi/v1/listenKey").json()["listenKey"]
        async with websockets.connect(url) as market, \
                websockets.connect(f"{server.ws_url}/private/ws/{listen_key}") as user:
            await asyncio.to_thread(order, http, newClientOrderId="s-1")
            depth = orjson.loads(await asyncio.wait_for(market.recv(), 2))
            assert depth["stream"] in ("ethusdc@depth@0ms", "ethusdc@bookTicker")
            await asyncio.to_thread(order, http, side="SELL", timeInForce="IOC",
                                    price="3000.00", newClientOrderId="s-2")
            seen = []
            while not any(e.get("e") == "ACCOUNT_UPDATE" for e in seen):
                seen.append(orjson.loads(await asyncio.wait_for(user.recv(), 2)))
            return seen

    events = asyncio.run(scenario())
    kinds = [(e["e"], e.get("o", {}).get("x")) for e in events]
    assert ("ORDER_TRADE_UPDATE", "NEW") in kinds
    assert ("TRADE_LITE", None) in kinds and ("ORDER_TRADE_UPDATE", "TRADE") in kinds
    trade = next(e for e in events if e.get("o", {}).get("x") == "TRADE")["o"]
    assert trade["c"] == "s-2" and trade["l"] == "0.010" and trade["N"] == "USDC"


def test_listen_key_expires_early_under_the_fault():
    with serve(static_venue(faults=Faults(listen_key_ttl_s=0.3))) as server:
        http = SignedHttp(server.base_url)

        async def scenario():
            key = http.post("/fapi/v1/listenKey").json()["listenKey"]
            async with websockets.connect(f"{server.ws_url}/private/ws/{key}") as user:
                return orjson.loads(await asyncio.wait_for(user.recv(), 3))

        event = asyncio.run(scenario())
        assert event["e"] == "listenKeyExpired"
        keepalive = http.http.put("/fapi/v1/listenKey")
        assert keepalive.json()["code"] == -1125


def test_control_messages(server):
    async def scenario():
        async with websockets.connect(f"{server.ws_url}/public/ws") as ws:
            await ws.send('{"method":"SUBSCRIBE","params":["ethusdc@bookTicker"],"id":1}')
            replies = [orjson.loads(await ws.recv())]
            await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":2}')
            replies.append(orjson.loads(await ws.recv()))
            await ws.send("not json")
            replies.append(orjson.loads(await ws.recv()))
            return replies

    subscribed, listed, invalid = asyncio.run(scenario())
    assert subscribed == {"result": None, "id": 1}
    assert listed == {"result": ["ethusdc@bookTicker"], "id": 2}
    assert invalid["code"] == 3
