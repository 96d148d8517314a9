"""Fidelity fixes to the simulator, each checked on the wire: the real venue on a loopback port,
driven over REST and WebSocket as a client would."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import orjson
import pytest
import websockets

from mmkit.model import DepthDiff, Timed
from mmkit.sim.engine import EngineConfig
from mmkit.sim.instruments import default_specs
from mmkit.sim.venue import Faults, Venue, VenueClock
from tests.simkit import SignedHttp, serve, static_book, static_venue


def order(http, **params):
    base = {"symbol": "ETHUSDC", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": "0.040", "price": "2990.00"}
    sent = {k: v for k, v in {**base, **params}.items() if v is not None}
    return http.signed("POST", "/fapi/v1/order", **sent).json()


async def _user_events(ws, until) -> list[dict]:
    """Read the user stream until `until(event)` holds."""
    seen: list[dict] = []
    while not seen or not until(seen[-1]):
        seen.append(orjson.loads(await asyncio.wait_for(ws.recv(), 5)))
    return seen


def test_a_reduce_only_order_expires_when_a_market_order_closes_the_position(server, http):
    """Audit: long 0.040, a resting reduce-only SELL 0.040; a MARKET SELL 0.040 closes the
    position. The reduce-only order leaves openOrders and the depth, and the user stream
    says EXPIRED with er=4."""
    async def scenario():
        key = http.post("/fapi/v1/listenKey").json()["listenKey"]
        async with websockets.connect(f"{server.ws_url}/private/ws/{key}") as user:
            await asyncio.to_thread(order, http, timeInForce="IOC", price="3000.01")
            ro = await asyncio.to_thread(order, http, side="SELL", price="3000.10",
                                         reduceOnly="true", newClientOrderId="ro-1")
            assert ro["status"] == "NEW" and ro["reduceOnly"] is True
            closed = await asyncio.to_thread(order, http, side="SELL", type="MARKET",
                                             timeInForce=None, price=None)
            assert closed["status"] in ("NEW", "FILLED")
            return await _user_events(user, lambda e: e.get("o", {}).get("c") == "ro-1"
                                      and e["o"]["x"] == "EXPIRED")

    events = asyncio.run(scenario())
    expired = events[-1]["o"]
    assert (expired["X"], expired["er"], expired["R"], expired["z"]) == (
        "EXPIRED", "4", True, "0.000")
    assert http.signed("GET", "/fapi/v1/openOrders", symbol="ETHUSDC").json() == []
    position = http.signed("GET", "/fapi/v3/positionRisk", symbol="ETHUSDC").json()
    assert position == []  # flat and no open order: v3 lists nothing
    asks = dict(map(tuple, http.get("/fapi/v1/depth", symbol="ETHUSDC", limit=20).json()["asks"]))
    assert asks["3000.10"] == "1.000"  # the market's level alone


async def _closed(url: str, then=None) -> tuple[int, str]:
    """Connect, optionally do `then()` (in a thread), and wait for the server to close the
    socket: its close code and reason."""
    async with websockets.connect(url) as ws:
        if then is not None:
            await asyncio.to_thread(then)
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        return ws.close_code, ws.close_reason


def test_a_fault_injected_drop_closes_with_1001_and_its_reason():
    with serve(static_venue(faults=Faults(drop_ws_every_s=0.2))) as server:
        code, reason = asyncio.run(_closed(f"{server.ws_url}/public/ws/ethusdc@bookTicker"))
        assert (code, reason) == (1001, "fault injection: connection dropped")


def test_the_24_hour_close_carries_its_reason():
    with serve(static_venue(step=True)) as server:
        http = SignedHttp(server.base_url)
        code, reason = asyncio.run(_closed(
            f"{server.ws_url}/public/ws/ethusdc@bookTicker",
            lambda: http.post("/_sim/step", ms=24 * 3600 * 1000)))
        assert (code, reason) == (1000, "24h connection limit")


def test_deleting_the_listen_key_closes_its_user_stream(server, http):
    """DELETE /fapi/v1/listenKey closes the stream (the socket was left open and silent)."""
    key = http.post("/fapi/v1/listenKey").json()["listenKey"]
    code, reason = asyncio.run(_closed(f"{server.ws_url}/private/ws/{key}",
                                       lambda: http.http.delete("/fapi/v1/listenKey")))
    assert (code, reason) == (1000, "listenKey closed")
    assert http.http.put("/fapi/v1/listenKey").json()["code"] == -1125


def _metric(http, name: str) -> float:
    """One sample of the venue's /metrics (0 when absent)."""
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_depth_gaps_are_counted_only_in_updates_someone_receives():
    """With every depthUpdate dropped, the fault counts one gap per update a subscriber would
    have received: none for other symbols or for throttled streams nobody listens to."""
    with serve(static_venue(step=True, faults=Faults(depth_gap_rate=1.0))) as server:
        http = SignedHttp(server.base_url)

        async def scenario():
            async with websockets.connect(f"{server.ws_url}/public/ws") as ws:
                await ws.send('{"method":"SUBSCRIBE","params":["ethusdc@depth@0ms"],"id":1}')
                assert orjson.loads(await ws.recv()) == {"result": None, "id": 1}
                for price in ("2990.00", "2991.00", "2992.00"):
                    await asyncio.to_thread(order, http, price=price)
                await asyncio.to_thread(order, http, symbol="BTCUSDT", quantity="0.002",
                                        price="59000.0")
                await asyncio.to_thread(http.post, "/_sim/step", ms=2000)  # flush throttles

        asyncio.run(scenario())
        assert _metric(http, 'mmkit_sim_faults_total{fault="depth_gap"}') == 3


def test_the_private_route_sends_only_the_events_asked_for(server, http):
    """/private/ws?listenKey=K&events=A/B (the 2026 routed user-data path): only those event
    types reach the socket; /private/stream wraps them with the key as the stream name."""
    key = http.post("/fapi/v1/listenKey").json()["listenKey"]
    base = f"{server.ws_url}/private"

    async def scenario():
        async with websockets.connect(f"{base}/ws?listenKey={key}&events=ACCOUNT_UPDATE") as acc, \
                websockets.connect(f"{base}/ws?listenKey={key}&events=ORDER_TRADE_UPDATE") as otu, \
                websockets.connect(f"{base}/stream?listenKey={key}&events=TRADE_LITE") as lite:
            await asyncio.to_thread(order, http, timeInForce="GTX", newClientOrderId="f-1")
            await asyncio.to_thread(order, http, timeInForce="IOC", price="3000.01",
                                    newClientOrderId="f-2")
            await asyncio.to_thread(order, http, timeInForce="GTX", newClientOrderId="f-3")
            first_acc = orjson.loads(await asyncio.wait_for(acc.recv(), 5))
            orders = await _user_events(otu, lambda e: e.get("o", {}).get("c") == "f-3")
            first_lite = orjson.loads(await asyncio.wait_for(lite.recv(), 5))
            return first_acc, orders, first_lite

    first_acc, orders, first_lite = asyncio.run(scenario())
    assert first_acc["e"] == "ACCOUNT_UPDATE" and first_acc["a"]["m"] == "ORDER"
    assert {e["e"] for e in orders} == {"ORDER_TRADE_UPDATE"}
    assert [(e["o"]["c"], e["o"]["x"]) for e in orders] == [
        ("f-1", "NEW"), ("f-2", "NEW"), ("f-2", "TRADE"), ("f-3", "NEW")]
    assert first_lite["stream"] == key and first_lite["data"]["e"] == "TRADE_LITE"
    assert first_lite["data"]["c"] == "f-2"


def _busy_market(spec):
    """The static ETHUSDC book, then a diff every ms of market time, forever."""
    first = static_book("ETHUSDC", spec, "3000.00")
    yield first
    deep = spec.to_ticks("2900.00")
    for i in itertools.count(1):
        update = first.event.last_update_id + i
        yield Timed(i, DepthDiff("ETHUSDC", i, i, update, update, update - 1,
                                 [(deep, 1 + i % 7)], []))


def _busy_venue(speed: float, wall=time.time) -> Venue:
    specs = default_specs(["ETHUSDC"])
    return Venue(specs, _busy_market(specs["ETHUSDC"]), config=EngineConfig(),
                 clock=VenueClock(speed=speed, wall=wall))


def test_a_tick_applies_a_bounded_batch_and_says_how_far_behind_the_market_is(caplog):
    """Audit: at high --speed a tick applied every due event at once and starved the server.
    Now a tick applies at most a batch; the rest waits for the next tick and the venue
    reports the lag (a gauge, and a warning once it is more than a second of wall time)."""
    wall = [1000.0]
    venue = _busy_venue(1.0, lambda: wall[0])
    assert venue.tick(max_events=100) is False  # the snapshot: nothing else is due
    lag = "mmkit_sim_market_lag_ms"
    wall[0] += 10  # 10 s of market due at once
    with caplog.at_level(logging.INFO, logger="mmkit.sim"):
        assert venue.tick(max_events=100) is True
        applied = "mmkit_sim_market_events_total"
        assert venue.metrics.registry.get_sample_value(applied) == 101
        assert 9_800 <= venue.metrics.registry.get_sample_value(lag) <= 10_000
        assert "behind" in caplog.text
        ticks = 1
        while venue.tick(max_events=100):
            ticks += 1
        ticks += 1  # the one that applied the last batch and found nothing due
        assert ticks == 100 and venue.metrics.registry.get_sample_value(applied) == 10_001
        assert venue.metrics.registry.get_sample_value(lag) == 0
        assert "caught up" in caplog.text


def test_the_venue_answers_while_the_market_cannot_keep_up():
    """--speed far beyond what the machine can replay: REST and WebSocket still answer, and
    /metrics says how far behind the market is (before, /fapi/v1/time stopped answering)."""
    with serve(_busy_venue(100_000.0)) as server:
        http = SignedHttp(server.base_url)
        http.http.timeout = 30  # liveness, not speed: the old venue never answered

        async def depth_update():
            async with websockets.connect(
                    f"{server.ws_url}/public/ws/ethusdc@depth@100ms") as ws:
                return orjson.loads(await asyncio.wait_for(ws.recv(), 30))

        for _ in range(3):
            assert "serverTime" in http.get("/fapi/v1/time").json()
        assert asyncio.run(depth_update())["e"] == "depthUpdate"
        assert _metric(http, "mmkit_sim_market_lag_ms") > 0
