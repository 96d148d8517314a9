"""The depth feed and the user stream against the simulator and its fault knobs, in step mode
so the venue moves only when the test says: a sequence gap gives exactly one resync and the
book equals the venue's afterwards; a dropped connection and the 24-hour cut reconnect and
resync; an expired listen key is recreated and no fill is lost."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from mmkit.binance.rest import RestClient
from mmkit.binance.signing import Credentials
from mmkit.binance.ws import Backoff, StreamClient, route_for, stream_url
from mmkit.feeds import DepthFeed
from mmkit.sim.engine import EngineConfig
from mmkit.sim.instruments import default_specs
from mmkit.sim.market import SyntheticMarket
from mmkit.sim.server import ServerThread
from mmkit.sim.venue import SIM_API_KEY, SIM_API_SECRET, Venue, VenueClock
from mmkit.userstream import UserStream
from tests.simkit import static_venue

SYMBOL = "ETHUSDC"
STREAM = "ethusdc@depth@100ms"
DAY_MS = 24 * 3600 * 1000


def synthetic_step_venue(seed: int = 3) -> Venue:
    specs = default_specs([SYMBOL])
    return Venue(specs, iter(SyntheticMarket(specs[SYMBOL], seed=seed)),
                 config=EngineConfig(seed=seed), clock=VenueClock(step_mode=True), seed=seed)


class Harness:
    """A depth feed over the real client, consuming in the background while the test steps."""

    def __init__(self, server: ServerThread):
        self.server = server
        self.venue = server.venue
        self.rest = RestClient(server.base_url, Credentials(SIM_API_KEY, SIM_API_SECRET))
        self.http = httpx.AsyncClient(base_url=server.base_url)
        url = stream_url(server.ws_url, [STREAM], route_for(STREAM))
        self.stream = StreamClient(url, backoff=Backoff(base=0.01, cap=0.05))
        self.feed = DepthFeed(self.venue.specs[SYMBOL], self.stream, self.rest.depth, levels=20)
        self.lines: list[dict] = []
        self.task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        async for line in self.feed.lines_out():
            self.lines.append(line)

    async def step(self, ms: int = 100, times: int = 1) -> None:
        for _ in range(times):
            response = await self.http.post("/_sim/step", params={"ms": ms})
            response.raise_for_status()
            await asyncio.sleep(0.02)

    async def synced_with_venue(self, timeout: float = 10.0) -> dict:
        """Step until the feed's book is at the venue's update id, then return the venue's
        book (REST depth 1000: the engine's own book) for comparison."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            truth = (await self.http.get("/fapi/v1/depth",
                                         params={"symbol": SYMBOL, "limit": 1000})).json()
            if self.feed.sync.last_update_id == truth["lastUpdateId"]:
                return truth
            await asyncio.sleep(0.05)
            if self.feed.sync.last_update_id is not None:
                await self.step()
        raise AssertionError(f"feed at {self.feed.sync.last_update_id}, venue moved on")

    def assert_book_equals(self, truth: dict) -> None:
        spec = self.venue.specs[SYMBOL]
        book = self.feed.sync.book
        bids = [[spec.price_str(p), spec.qty_str(q)] for p, q in book.top_bids(1000)]
        asks = [[spec.price_str(p), spec.qty_str(q)] for p, q in book.top_asks(1000)]
        assert bids == truth["bids"] and asks == truth["asks"]
        assert not book.crossed

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.rest.aclose()
        await self.http.aclose()


async def with_harness(venue: Venue, body) -> None:
    with ServerThread(venue, "127.0.0.1", 0) as server:
        harness = Harness(server)
        try:
            await body(harness)
        finally:
            await harness.close()


def test_sequence_gap_gives_exactly_one_resync_and_the_true_book():
    async def body(h: Harness):
        await h.step(times=10)
        h.assert_book_equals(await h.synced_with_venue())
        assert h.feed.resyncs == 0
        h.venue.faults.depth_gap_rate = 1.0
        await h.step()  # this step's diff is never sent
        h.venue.faults.depth_gap_rate = 0.0
        await h.step(times=10)
        h.assert_book_equals(await h.synced_with_venue())
        assert h.feed.resyncs == 1 and h.feed.sync.counters.resyncs == 1

    asyncio.run(with_harness(synthetic_step_venue(), body))


def test_dropped_connection_reconnects_and_resyncs():
    async def body(h: Harness):
        await h.step(times=5)
        await h.synced_with_venue()
        h.venue.faults.drop_ws_every_s = 0.001
        await h.step()
        h.venue.faults.drop_ws_every_s = 0.0
        await h.step(times=5)
        h.assert_book_equals(await h.synced_with_venue())
        assert h.stream.reconnects >= 1 and h.feed.resyncs >= 1

    asyncio.run(with_harness(synthetic_step_venue(seed=4), body))


def test_the_24_hour_cut_reconnects_and_resyncs():
    async def body(h: Harness):
        await h.step()
        await h.synced_with_venue()
        await h.step(ms=DAY_MS + 1000)  # the venue closes connections older than 24 h
        await asyncio.sleep(0.3)
        h.assert_book_equals(await h.synced_with_venue())
        assert h.stream.reconnects == 1 and h.feed.resyncs == 1
        assert not any(line["stale"] for line in h.lines[-1:])

    asyncio.run(with_harness(static_venue(step=True), body))


@contextlib.asynccontextmanager
async def collected(stream: UserStream):
    """The stream's lines, gathered in the background until the block ends."""
    lines: list[dict] = []

    async def consume():
        async for line in stream.lines():
            lines.append(line)

    task = asyncio.create_task(consume())
    try:
        yield lines
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


def fill_sides(lines: list[dict]) -> list[str]:
    return [line["side"] for line in lines if line["type"] == "fill"]


@contextlib.asynccontextmanager
async def account(listen_key_ttl_s: float | None = None):
    """A static step-mode venue on loopback (listen keys expiring after `listen_key_ttl_s`
    venue seconds when given), a signed client for it and a bare one for its /_sim endpoints."""
    venue = static_venue(step=True)
    if listen_key_ttl_s is not None:
        venue.faults.listen_key_ttl_s = listen_key_ttl_s
    with ServerThread(venue, "127.0.0.1", 0) as server:
        async with RestClient(server.base_url, Credentials(SIM_API_KEY, SIM_API_SECRET)) as rest, \
                httpx.AsyncClient(base_url=server.base_url) as http:
            yield server, rest, http


async def user_stream_open(venue: Venue) -> None:
    await until(lambda: any(s.listen_keys for s in venue.subscribers))


def test_expired_listen_key_is_recreated_and_no_fill_is_lost():
    async def body():
        async with account(listen_key_ttl_s=60) as (server, rest, http):
            stream = UserStream(rest, server.ws_url, [SYMBOL])

            async def market_buy(side="BUY"):
                await rest.place_order(symbol=SYMBOL, side=side, type="MARKET",
                                       quantity="0.010")

            async with collected(stream) as lines:
                await user_stream_open(server.venue)
                await market_buy()
                await until(lambda: len(fill_sides(lines)) >= 1)
                await http.post("/_sim/step", params={"ms": 61_000})  # the key expires
                await market_buy("SELL")  # while the stream is between keys
                await until(lambda: stream.key_renewals >= 1)
                await market_buy()
                await until(lambda: len(fill_sides(lines)) >= 3)
                await asyncio.sleep(0.2)
                truth = (await http.get("/_sim/fills")).json()
        seen = [line["tradeId"] for line in lines if line["type"] == "fill"]
        assert sorted(seen) == sorted(f["tradeId"] for f in truth)
        assert len(seen) == len(set(seen)) == 3

    asyncio.run(body())


def test_a_reconnect_recovers_missed_fills_not_older_history():
    """A stream started with no account read (`mmkit userstream`) reconciles after a reconnect
    from when it first opened: a fill from before it opened is history, not a missed fill."""
    async def body():
        async with account(listen_key_ttl_s=60) as (server, rest, http):
            await rest.place_order(symbol=SYMBOL, side="BUY", type="MARKET",
                                   quantity="0.010")  # before the stream: history
            await http.post("/_sim/step", params={"ms": 1000})
            stream = UserStream(rest, server.ws_url, [SYMBOL])
            async with collected(stream) as lines:
                await user_stream_open(server.venue)
                await http.post("/_sim/step", params={"ms": 61_000})  # the key expires
                await rest.place_order(symbol=SYMBOL, side="SELL", type="MARKET",
                                       quantity="0.010")  # while between keys
                await until(lambda: stream.key_renewals and fill_sides(lines))
                await asyncio.sleep(0.2)
        assert stream.key_renewals >= 1
        assert fill_sides(lines) == ["SELL"]

    asyncio.run(body())


def test_silence_gives_stale_lines_and_the_feed_resumes_after_it():
    async def body(h: Harness):
        h.feed.stale_ms = 200  # wall-clock silence: the venue is frozen between steps
        await h.step(times=5)
        await h.synced_with_venue()
        await asyncio.sleep(0.7)
        assert [line["stale"] for line in h.lines[-2:]] == [True, True]
        assert not h.task.done()  # a timed-out wait must not end the stream
        silent = len(h.lines)
        await h.step(times=5)
        h.assert_book_equals(await h.synced_with_venue())
        # fresh lines again (on a loaded machine 200 ms can pass between two steps, so a
        # stale line may come after them too)
        assert any(line["stale"] is False for line in h.lines[silent:])

    asyncio.run(with_harness(synthetic_step_venue(seed=5), body))


def test_a_fill_before_the_stream_connects_is_recovered_once():
    """`since_ms`: the account was read at that time, an order filled before the user stream's
    socket was open; its first connection reconciles, so the fill is there, once, naming its
    order's client id as a streamed fill does."""
    async def body():
        async with account() as (server, rest, _):
            since = await rest.server_time()
            await rest.place_order(symbol=SYMBOL, side="BUY", type="MARKET", quantity="0.010",
                                   newClientOrderId="early-1")  # nobody listens yet
            stream = UserStream(rest, server.ws_url, [SYMBOL], since_ms=since)
            async with collected(stream) as lines:
                await until(lambda: any(x["type"] == "position" for x in lines))
                await rest.place_order(symbol=SYMBOL, side="SELL", type="MARKET",
                                       quantity="0.010")  # on the stream
                await until(lambda: len(fill_sides(lines)) >= 2)
                await asyncio.sleep(0.2)
        fills = [line for line in lines if line["type"] == "fill"]
        assert [f["side"] for f in fills] == ["BUY", "SELL"]
        assert fills[0]["source"] != "stream"
        # userTrades names no client order id: the venue was asked, as an order manager needs it
        assert fills[0]["clientOrderId"] == "early-1"

    asyncio.run(body())
