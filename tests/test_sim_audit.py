"""Divergences from Binance found by an audit, each checked on the wire against the simulator
on a loopback port."""

from __future__ import annotations

from tests.simkit import SignedHttp, serve, static_venue


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
