"""Replaying the real recordings through the simulator: its book equals every recorded
bookTicker that has the same update id (the data README's "Book rebuild" counts), through the
engine directly and through the served venue (REST and WebSocket, in step mode)."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
import websockets

from mmkit.model import BookTicker, DepthDiff, DepthSnapshot
from mmkit.sim.engine import Engine
from mmkit.sim.instruments import default_specs
from mmkit.sim.market import open_market
from mmkit.sim.server import ServerThread
from mmkit.sim.venue import Venue, VenueClock

RECORDINGS = "market/binance_usdm_hftbacktest"

# ../shared/data/README.md, market/binance_usdm_hftbacktest, "Book rebuild": the number of
# bookTickers whose update id is a diff's u (or the snapshot's lastUpdateId), compared exactly.
SESSIONS = [
    pytest.param(["ethusdt_20240808.gz"], 551, id="ETHUSDT-20240808"),
    pytest.param(["ethusdt_20240718.gz", "ethusdt_20240719.gz"], 834, id="ETHUSDT-20240718-19"),
    pytest.param(["btcusdt_20240808.gz"], 629, id="BTCUSDT-20240808"),
    pytest.param(["btcusdt_20240718.gz", "btcusdt_20240719.gz"], 625, id="BTCUSDT-20240718-19"),
    pytest.param(["btcusdt_20230404.dat.gz", "btcusdt_20230405.dat.gz"], 1565,
                 id="BTCUSDT-20230404-05"),
]

Top = tuple[tuple[int, int], tuple[int, int]]  # ((bid, qty), (ask, qty)) in ticks and steps


def ticker_top(ticker: BookTicker) -> Top:
    return (ticker.bid, ticker.bid_qty), (ticker.ask, ticker.ask_qty)


def engine_top(engine: Engine, symbol: str) -> Top:
    snap = engine.depth(symbol, 1)  # the public book, as REST and the streams show it
    return snap.bids[0], snap.asks[0]


def replay_through_engine(paths: list, symbol: str) -> tuple[int, list, int]:
    """Apply the replay to an Engine as the venue does; compare each recorded bookTicker with
    the engine's book at the ticker's update id. Returns (compared, mismatches, tickers).

    A recorder receives the bookTicker and depth streams on separate sockets, so a bookTicker
    is often logged just before, or a little after, the diff with the same u: the engine's top
    is kept per applied update id and each ticker is compared with the top at its own id."""
    engine = Engine(default_specs([symbol]))
    book = engine.books[symbol]
    tops: dict[int, Top] = {}
    tickers: list[BookTicker] = []
    renumbered = 0
    for timed in open_market(paths, include_book_ticker=True):
        event = timed.event
        if isinstance(event, BookTicker):
            tickers.append(event)
            continue
        previous = book.last_id
        engine.apply(event)
        if isinstance(event, DepthSnapshot):
            assert book.last_id == event.last_update_id
        if isinstance(event, DepthDiff):
            # The engine's ids are the recording's, except that it never repeats one: the
            # bridging diff whose u equals the snapshot's lastUpdateId becomes lastUpdateId + 1.
            assert book.last_id == max(event.last_id, previous + 1)
            renumbered += book.last_id != event.last_id
        if isinstance(event, DepthSnapshot | DepthDiff):
            top = engine_top(engine, symbol)
            assert top[0][0] < top[1][0], f"crossed book at u={book.last_id}: {top}"
            tops[book.last_id] = top
    assert renumbered <= 1
    compared = [t for t in tickers if t.update_id in tops]
    mismatches = [(t.update_id, ticker_top(t), tops[t.update_id]) for t in compared
                  if ticker_top(t) != tops[t.update_id]]
    return len(compared), mismatches, len(tickers)


@pytest.mark.parametrize(("names", "expected"), SESSIONS)
def test_engine_book_equals_every_recorded_book_ticker_with_its_update_id(
        shared_data, names, expected):
    paths = [shared_data / RECORDINGS / name for name in names]
    symbol = names[0].split("_")[0].upper()
    compared, mismatches, tickers = replay_through_engine(paths, symbol)
    assert tickers > 1000
    assert mismatches == []
    assert compared == expected


# -- the same over the wire --------------------------------------------------------------------


STEP_MS = 250
STEPS = 240  # the first minute of the recording, then one step to past its end


def test_served_replay_in_step_mode_agrees_with_the_engine_and_the_recording(shared_data):
    """A step-mode venue over the 2024-08-08 ETHUSDT replay: after each POST /_sim/step,
    GET /fapi/v1/ticker/bookTicker and /fapi/v1/depth?limit=5 equal a reference Engine fed the
    same events up to the same venue time; every bookTicker the venue streams equals that
    engine's top at its update id, and the recording's bookTicker where one has that id (all
    551: the venue streams a bookTicker whenever its top changes, as Binance does). At the end
    of the replay the venue keeps serving the last book."""
    path = shared_data / RECORDINGS / "ethusdt_20240808.gz"
    specs = default_specs(["ETHUSDT"])
    spec = specs["ETHUSDT"]
    timeline = list(open_market(path, include_book_ticker=True))
    feed = [t for t in timeline if not isinstance(t.event, BookTicker)]
    recorded = {t.event.update_id: ticker_top(t.event) for t in timeline
                if isinstance(t.event, BookTicker)}
    start = feed[0].at  # the snapshot: the venue applies it at its first tick

    reference = Engine(specs)
    ref_tops: dict[int, Top] = {}
    cursor = 0

    def advance_reference(to_at: int) -> None:
        nonlocal cursor
        while cursor < len(feed) and feed[cursor].at <= to_at:
            reference.apply(feed[cursor].event)
            if isinstance(feed[cursor].event, DepthSnapshot | DepthDiff):
                ref_tops[reference.books["ETHUSDT"].last_id] = engine_top(reference, "ETHUSDT")
            cursor += 1

    def levels(rows) -> list[list[str]]:
        return [[spec.price_str(p), spec.qty_str(q)] for p, q in rows]

    venue = Venue(specs, iter(feed), clock=VenueClock(step_mode=True))

    async def scenario(server: ServerThread) -> tuple[list[dict], int]:
        checked = 0
        url = f"{server.ws_url}/ws/ethusdt@bookTicker"
        async with websockets.connect(url, max_queue=None) as ws, \
                httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":1}')  # subscribed from here on
            assert orjson.loads(await ws.recv()) == {"result": ["ethusdt@bookTicker"], "id": 1}
            elapsed = 0
            for step in [STEP_MS] * STEPS + [400_000]:
                stepped = await http.post("/_sim/step", params={"ms": step})
                assert stepped.status_code == 200, stepped.text
                elapsed += step
                advance_reference(start + elapsed)
                ticker = (await http.get("/fapi/v1/ticker/bookTicker",
                                         params={"symbol": "ETHUSDT"})).json()
                depth = (await http.get("/fapi/v1/depth",
                                        params={"symbol": "ETHUSDT", "limit": 5})).json()
                want = reference.depth("ETHUSDT", 5)
                assert ticker["lastUpdateId"] == depth["lastUpdateId"] == want.last_update_id
                assert [[ticker["bidPrice"], ticker["bidQty"]],
                        [ticker["askPrice"], ticker["askQty"]]] == levels(
                    [want.bids[0], want.asks[0]])
                assert depth["bids"] == levels(want.bids) and depth["asks"] == levels(want.asks)
                assert float(depth["bids"][0][0]) < float(depth["asks"][0][0])
                checked += 1
            assert cursor == len(feed) and venue.market_done
            # the replay is over: the venue still answers, with the last book
            again = (await http.get("/fapi/v1/depth",
                                    params={"symbol": "ETHUSDT", "limit": 5})).json()
            assert again["lastUpdateId"] == want.last_update_id and again["bids"] == depth["bids"]
            streamed = []
            while True:
                try:
                    streamed.append(orjson.loads(await asyncio.wait_for(ws.recv(), 0.5)))
                except TimeoutError:
                    return streamed, checked

    with ServerThread(venue, "127.0.0.1", 0) as server:
        streamed, checked = asyncio.run(scenario(server))
    assert checked == STEPS + 1

    assert len(streamed) > 1000
    with_recording = 0
    for message in streamed:
        top = ((spec.to_ticks(message["b"]), spec.to_steps(message["B"])),
               (spec.to_ticks(message["a"]), spec.to_steps(message["A"])))
        assert ref_tops[message["u"]] == top, message
        if message["u"] in recorded:
            assert recorded[message["u"]] == top, message
            with_recording += 1
    assert with_recording == 551  # every one of the README's exact comparisons, over the wire


def test_public_trade_ids_keep_rising_after_a_fill_of_ours():
    """A replay's trade ids are the recording's; our taker fill is numbered apart by the
    engine. The venue's streams merge both into one rising sequence, as Binance's are (a
    client that drops non-increasing ids as rotation overlap must lose nothing)."""
    from mmkit.model import MarketTrade, Timed
    from mmkit.sim.engine import OrderRequest
    from mmkit.sim.venue import Subscriber, Venue, VenueClock

    specs = default_specs(["ETHUSDC"])
    market = iter([
        Timed(1000, DepthSnapshot("ETHUSDC", 1000, 10, [(300000, 5000)], [(300001, 5000)])),
        Timed(1001, MarketTrade("ETHUSDC", 1001, 700, 300001, 10, False)),
        Timed(1003, MarketTrade("ETHUSDC", 1003, 701, 300000, 10, True)),
    ])
    venue = Venue(specs, market, clock=VenueClock(step_mode=True))
    sent: list[bytes] = []
    venue.subscribers.append(Subscriber(sent.append, "market", False,
                                        {"ethusdc@aggTrade", "ethusdc@trade"}))
    venue.step_events(2)
    _, events = venue.engine.place(venue.now(), OrderRequest("ETHUSDC", "BUY", "MARKET", 5))
    venue.dispatch(events)  # our taker fill prints a trade with the engine's own id
    venue.step_events(1)
    for kind, key in (("aggTrade", "a"), ("trade", "t")):
        ids = [d[key] for d in map(orjson.loads, sent) if d["e"] == kind]
        assert len(ids) == 3 and ids == sorted(set(ids)), ids
    assert venue.market_over
