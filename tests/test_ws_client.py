"""The stream client against a small real WebSocket server on loopback: a dropped connection
yields a gap marker and reconnects; a planned rotation overlaps connections, yields no gap
and no duplicate."""

from __future__ import annotations

import asyncio

import orjson
import websockets

from mmkit.binance.ws import Backoff, Connection, StreamClient, StreamMessage, route_for, stream_url


def test_urls_follow_the_routed_layout():
    assert route_for("ethusdc@depth@100ms") == "public"
    assert route_for("ethusdc@bookTicker") == "public"
    assert route_for("ethusdc@aggTrade") == "market"
    assert route_for("ethusdc@markPrice@1s") == "market"
    url = stream_url("ws://127.0.0.1:1/", ["ethusdc@depth", "ethusdc@bookTicker"], "public")
    assert url == "ws://127.0.0.1:1/public/stream?streams=ethusdc@depth/ethusdc@bookTicker"


class CountingFeed:
    """Sends depthUpdate messages with increasing u to every connection; every connection
    starts from the shared counter minus 2, so rotations overlap. `drop_after` closes the
    first connection after that many messages."""

    def __init__(self, drop_after: int | None = None):
        self.u = 0
        self.connections = 0
        self.drop_after = drop_after

    async def handler(self, ws):
        self.connections += 1
        first = self.connections == 1
        u = max(0, self.u - 2)
        sent = 0
        while True:
            u += 1
            self.u = max(self.u, u)
            data = {"e": "depthUpdate", "u": u, "pu": u - 1}
            await ws.send(orjson.dumps({"stream": "ethusdc@depth", "data": data}).decode())
            sent += 1
            if first and self.drop_after and sent >= self.drop_after:
                await ws.close()
                return
            await asyncio.sleep(0.002)


async def _collect(feed: CountingFeed, count: int, **client_kwargs):
    async with websockets.serve(feed.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = StreamClient(f"ws://127.0.0.1:{port}/stream?streams=ethusdc@depth",
                              backoff=Backoff(base=0.01, cap=0.05), **client_kwargs)
        items = []
        async for item in client.messages():
            items.append(item)
            if sum(isinstance(i, StreamMessage) for i in items) >= count:
                break
        return client, items


def test_dropped_connection_reconnects_with_a_gap_marker():
    client, items = asyncio.run(_collect(CountingFeed(drop_after=5), 15))
    markers = [i for i in items if isinstance(i, Connection)]
    assert [m.gap for m in markers] == [False, True]
    assert client.reconnects == 1


def test_rotation_overlaps_without_gap_or_duplicate():
    ticks = iter(range(10**6))
    clock = lambda: next(ticks)  # noqa: E731 - one virtual second per look at the clock
    client, items = asyncio.run(_collect(CountingFeed(), 40, max_age=20, clock=clock))
    markers = [i for i in items if isinstance(i, Connection)]
    assert [m.gap for m in markers] == [False]
    assert client.rotations >= 1
    us = [i.data["u"] for i in items if isinstance(i, StreamMessage)]
    assert us == sorted(set(us)), "no duplicate and no reordering across the rotation"
    assert us == list(range(us[0], us[0] + len(us))), "no gap across the rotation"
