"""The simulator's market feeds (mmkit.sim.market): replayed recordings (aligned snapshot,
gapless chain, a book that matches the recorded book tickers) and the synthetic market
(deterministic, gapless, never crossed, on tick and step, close to its calibration)."""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import itertools
import json
import math
import statistics
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmkit.book import OrderBook
from mmkit.errors import InputError
from mmkit.model import BookTicker, DepthDiff, DepthSnapshot, MarketTrade, MarkPrice
from mmkit.sim.instruments import default_specs
from mmkit.sim.market import (
    FUNDING_PERIOD_MS,
    START_PRICES,
    SyntheticMarket,
    SyntheticParams,
    open_market,
    replay_hftbacktest,
    replay_recording,
)

RECORDINGS = "market/binance_usdm_hftbacktest"
SPECS = default_specs()
ETHUSDC = SPECS["ETHUSDC"]

# files of a session, symbol, book tickers compared exactly (data README, "Book rebuild")
SESSIONS = {
    "eth-20240808": (["ethusdt_20240808.gz"], "ETHUSDT", 551),
    "eth-20240718-19": (["ethusdt_20240718.gz", "ethusdt_20240719.gz"], "ETHUSDT", 834),
    "btc-20230404-05": (["btcusdt_20230404.dat.gz", "btcusdt_20230405.dat.gz"], "BTCUSDT",
                        1565),
}


def session_paths(data: Path, session: str) -> list[Path]:
    return [data / RECORDINGS / name for name in SESSIONS[session][0]]


def strip(events):
    """(at, event) without the receive-time meta."""
    return [(timed.at, timed.event) for timed in events]


# -- replay ------------------------------------------------------------------------------------


@pytest.mark.parametrize("session", SESSIONS)
def test_replay_snapshot_first_then_gapless_chain(shared_data, session):
    files, symbol, _ = SESSIONS[session]
    manifest = json.loads((shared_data / RECORDINGS / "manifest.json").read_text())
    events = list(replay_hftbacktest(session_paths(shared_data, session), SPECS[symbol]))
    first = events[0].event
    assert isinstance(first, DepthSnapshot)
    assert len(first.bids) == len(first.asks) == 1000
    assert first.bids[0][0] < first.asks[0][0]
    diffs = [t.event for t in events if isinstance(t.event, DepthDiff)]
    assert diffs[0].prev_id <= first.last_update_id <= diffs[0].last_id
    assert all(b.prev_id == a.last_id for a, b in itertools.pairwise(diffs))
    assert all(a.at <= b.at for a, b in itertools.pairwise(events))
    assert all(t.at >= t.event.ts for t in events)
    recorded = sum(count for name in files for stream, count in manifest[name]["streams"].items()
                   if "@depth" in stream)
    assert 0 <= recorded - len(diffs) < 20  # only the few diffs older than the snapshot go
    trades = [t.event for t in events if isinstance(t.event, MarketTrade)]
    assert all(b.trade_id == a.trade_id + 1 for a, b in itertools.pairwise(trades))
    if session.startswith("btc-2023"):
        marks = [t.event for t in events if isinstance(t.event, MarkPrice)]
        # the first mark after a funding time may still name it (10 ms late, as recorded)
        assert marks and all(m.next_funding_time > m.ts - 1000 for m in marks)
        # µs receive times: the 2023 recorder's clock agrees with E within a second
        assert abs(statistics.median(t.meta["recv"] - t.event.ts for t in events[1:])) < 1000
    else:
        # ns receive times, 1.3-1.5 s behind E (data README, "Clock skew")
        skew = statistics.median(t.event.ts - t.meta["recv"] for t in events[1:])
        assert 1000 < skew < 2000


@pytest.mark.parametrize("session", SESSIONS)
def test_replayed_book_matches_book_tickers(shared_data, session):
    files, symbol, expected = SESSIONS[session]
    book = OrderBook()
    tops: dict[int, tuple[int, int, int, int] | None] = {}
    tickers: list[BookTicker] = []
    for timed in replay_hftbacktest(session_paths(shared_data, session), SPECS[symbol],
                                    include_book_ticker=True):
        event = timed.event
        if isinstance(event, DepthSnapshot):
            book.load(event.bids, event.asks)
            tops[event.last_update_id] = book.bbo()
        elif isinstance(event, DepthDiff):
            book.apply(event.bids, event.asks)
            assert not book.crossed
            tops[event.last_id] = book.bbo()
        elif isinstance(event, BookTicker):
            tickers.append(event)
    compared = [t for t in tickers if t.update_id in tops]
    assert [t for t in compared if tops[t.update_id] != (t.bid, t.bid_qty, t.ask, t.ask_qty)
            ] == []
    compared = len(compared)
    assert compared == expected


def test_recording_format_replays_like_hftbacktest(shared_data, tmp_path):
    """The first 3000 lines of a recording, rewritten in mmkit's .jsonl.gz format, replay to
    the same events, and open_market picks each reader by the file name."""
    source = shared_data / RECORDINGS / "ethusdt_20240808.gz"
    head = tmp_path / "ethusdt_20240808.gz"
    mine = tmp_path / "ethusdt_20240808.jsonl.gz"
    with gzip.open(source, "rb") as lines, gzip.open(head, "wb") as raw, \
            gzip.open(mine, "wb") as out:
        for line in itertools.islice(lines, 3000):
            raw.write(line)
            local_ns, _, body = line.partition(b" ")
            message = orjson.loads(body)
            recv = int(local_ns) // 1_000_000
            record = ({"recv": recv, "snapshot": message} if "lastUpdateId" in message
                      else {"recv": recv, **message})
            out.write(orjson.dumps(record) + b"\n")
    spec = SPECS["ETHUSDT"]
    expected = list(replay_hftbacktest(head, spec))
    assert len(expected) > 500
    assert [t.meta for t in replay_recording(mine, spec)] == [t.meta for t in expected]
    assert strip(open_market(mine, spec)) == strip(expected)
    assert strip(open_market([head])) == strip(expected)  # symbol from the file name
    # replayed onto another symbol's spec: same numbers, that symbol's name
    renamed = list(open_market(head, ETHUSDC))
    assert {t.event.symbol for t in renamed} == {"ETHUSDC"}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def depth(u_first, u_last, pu, bids=(), asks=(), e=1000):
    return {"recv": e, "stream": "ethusdc@depth@0ms", "data": {
        "e": "depthUpdate", "E": e, "T": e, "s": "ETHUSDC", "U": u_first, "u": u_last,
        "pu": pu, "b": [list(x) for x in bids], "a": [list(x) for x in asks]}}


SNAPSHOT = {"recv": 1000, "snapshot": {"lastUpdateId": 100, "E": 1001, "T": 1000,
                                       "bids": [["2000.00", "1.000"]],
                                       "asks": [["2000.01", "2.000"]]}}


def test_recording_alignment_rules(tmp_path):
    """Buffered diffs older than the snapshot go; the bridging one (pu <= id <= u, even with
    U > id) is the first; trades already in the snapshot (T <= its T) go."""
    trade = {"recv": 999, "stream": "ethusdc@trade", "data": {
        "e": "trade", "E": 999, "T": 999, "s": "ETHUSDC", "t": 7, "p": "2000.01",
        "q": "0.500", "X": "MARKET", "m": False}}
    later = dict(trade, data=dict(trade["data"], T=1002, E=1002, t=8))
    path = write_jsonl(tmp_path / "x.jsonl", [
        depth(80, 90, 70, e=990), trade, depth(95, 99, 90, e=995), SNAPSHOT, later,
        depth(102, 110, 99, bids=[("2000.00", "0.000"), ("1999.99", "3.000")], e=1003),
        depth(111, 120, 110, asks=[("2000.02", "1.500")], e=1004),
    ])
    events = [t.event for t in replay_recording(path, ETHUSDC)]
    assert isinstance(events[0], DepthSnapshot)
    assert events[0].bids == [(200000, 1000)] and events[0].asks == [(200001, 2000)]
    assert [type(e).__name__ for e in events[1:]] == ["MarketTrade", "DepthDiff", "DepthDiff"]
    assert events[1].trade_id == 8
    assert events[2].bids == [(200000, 0), (199999, 3000)]


def test_recording_gaps_and_missing_snapshot_fail_loud(tmp_path):
    gap = write_jsonl(tmp_path / "gap.jsonl", [
        SNAPSHOT, depth(95, 105, 99), depth(120, 130, 110)])
    with pytest.raises(InputError, match=r"gap.jsonl:3.*pu 110 != previous u 105"):
        list(replay_recording(gap, ETHUSDC))
    late = write_jsonl(tmp_path / "late.jsonl", [SNAPSHOT, depth(105, 110, 101)])
    with pytest.raises(InputError, match="starts after it"):
        list(replay_recording(late, ETHUSDC))
    alone = write_jsonl(tmp_path / "alone.jsonl", [depth(95, 105, 99)])
    with pytest.raises(InputError, match="no REST depth snapshot"):
        list(open_market(alone, ETHUSDC))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"recv": 1, "snapshot": {"lastUpdateId": 1}}\n')
    with pytest.raises(InputError, match="bad.jsonl:1"):
        list(replay_recording(bad, ETHUSDC))


def test_continuation_file_alone_needs_its_first_file(shared_data):
    with pytest.raises(InputError, match="no REST depth snapshot"):
        list(replay_hftbacktest(shared_data / RECORDINGS / "ethusdt_20240719.gz",
                                SPECS["ETHUSDT"]))


# -- synthetic -----------------------------------------------------------------------------------


def check_market(events, spec=ETHUSDC) -> OrderBook:
    """Snapshot first; gapless chain; never crossed; everything on tick and step, positive;
    times non-decreasing; marks on the second with funding on the 8 h boundary."""
    snapshot = events[0].event
    assert isinstance(snapshot, DepthSnapshot) and snapshot.symbol == spec.symbol
    assert len(snapshot.bids) == len(snapshot.asks) == 1000
    assert [p for p, _ in snapshot.bids] == sorted((p for p, _ in snapshot.bids), reverse=True)
    assert [p for p, _ in snapshot.asks] == sorted(p for p, _ in snapshot.asks)
    book = OrderBook(snapshot.bids, snapshot.asks)
    assert not book.crossed
    last_id = snapshot.last_update_id
    last_at = events[0].at
    for timed in events[1:]:
        event = timed.event
        assert timed.at == event.ts >= last_at
        last_at = timed.at
        assert type(timed.at) is int
        if isinstance(event, DepthDiff):
            assert event.prev_id == last_id < event.first_id <= event.last_id
            last_id = event.last_id
            assert event.bids or event.asks
            for price, qty in event.bids + event.asks:
                assert type(price) is int and type(qty) is int and price > 0 and qty >= 0
            book.apply(event.bids, event.asks)
            assert not book.crossed
            assert all(qty > 0 for qty in book.bids.values())
        elif isinstance(event, MarketTrade):
            assert type(event.price) is int and type(event.qty) is int
            assert event.price > 0 and event.qty > 0
        elif isinstance(event, MarkPrice):
            assert event.ts % 1000 == 0
            assert event.next_funding_time % FUNDING_PERIOD_MS == 0
            assert 0 < event.next_funding_time - event.ts <= FUNDING_PERIOD_MS
            mid = (book.best_bid + book.best_ask) / 2
            assert abs(float(event.mark / spec.tick_size) - mid) < 200
    return book


def test_synthetic_is_deterministic_per_seed():
    market = SyntheticMarket(ETHUSDC, seed=7, start_ms=1_700_000_000_000)
    first = strip(itertools.islice(market, 2000))
    assert strip(itertools.islice(market, 2000)) == first  # a new iteration starts afresh
    again = SyntheticMarket(ETHUSDC, seed=7, start_ms=1_700_000_000_000)
    assert strip(itertools.islice(again, 2000)) == first
    other = SyntheticMarket(ETHUSDC, seed=8, start_ms=1_700_000_000_000)
    assert strip(itertools.islice(other, 2000)) != first


def test_synthetic_chain_book_and_units():
    events = list(itertools.islice(SyntheticMarket(ETHUSDC, seed=1), 30_000))
    check_market(events)
    kinds = {type(t.event) for t in events}
    assert kinds == {DepthSnapshot, DepthDiff, MarketTrade, MarkPrice}
    trades = [t.event for t in events if isinstance(t.event, MarketTrade)]
    assert all(b.trade_id == a.trade_id + 1 for a, b in itertools.pairwise(trades))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1),
       symbol=st.sampled_from(["ETHUSDC", "ETHUSDT", "BTCUSDT"]),
       volatile=st.booleans())
def test_synthetic_invariants_over_seeds(seed, symbol, volatile):
    params = SyntheticParams()
    if volatile:  # always volatile, frequent big jumps, often wide: the book must hold
        params = dataclasses.replace(params, volatile_fraction=0.99, jump_per_hour=3600.0,
                                     jump_bps=20.0, wide_fraction=0.5)
    spec = SPECS[symbol]
    market = SyntheticMarket(spec, seed=seed, params=params, duration_ms=60_000)
    events = list(market)
    assert events[-1].at <= market.start_ms + 60_000
    check_market(events, spec)


def test_synthetic_statistics_match_the_calibration():
    """Ten minutes of generated market against its parameters (loose bands)."""
    params = SyntheticParams()
    duration = 600_000
    book = OrderBook()
    spreads, mids, trades = [], [], 0
    next_sample = None
    for timed in SyntheticMarket(ETHUSDC, seed=3, duration_ms=duration):
        event = timed.event
        if isinstance(event, DepthSnapshot):
            book.load(event.bids, event.asks)
            next_sample = event.ts + 100
        elif isinstance(event, DepthDiff):
            book.apply(event.bids, event.asks)
            while event.ts >= next_sample:
                next_sample += 100
                spreads.append(book.spread())
                if next_sample % 1000 == 0:
                    mids.append(float(book.mid()))
        elif isinstance(event, MarketTrade):
            trades += 1
    assert statistics.median(spreads) == 1
    assert statistics.mean(spreads) < 1.2
    rate = trades / (duration / 1000)
    assert abs(rate / params.trade_rate - 1) < 0.3
    returns = [1e4 * math.log(b / a) for a, b in itertools.pairwise(mids)]
    vol = math.sqrt(statistics.mean(r * r for r in returns))
    expected = math.sqrt((1 - params.volatile_fraction) * params.vol_calm_bps ** 2
                         + params.volatile_fraction * params.vol_volatile_bps ** 2)
    assert 0.6 < vol / expected < 1.6
    top = [q for _, q in book.top_bids(1)]
    assert top and top[0] > 0


def test_open_market_synthetic():
    a = strip(itertools.islice(open_market(ETHUSDC, seed=5, start_ms=0), 500))
    b = strip(itertools.islice(open_market("synthetic", ETHUSDC, seed=5, start_ms=0), 500))
    assert a == b
    with pytest.raises(ValueError):
        open_market("synthetic")


def test_params_defaults_are_the_calibration(shared_data):
    """SyntheticParams' defaults are what scripts/calibrate_market.py prints."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "calibrate_market.py"
    spec = importlib.util.spec_from_file_location("calibrate_market", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    printed = module.params_from(module.calibrate(shared_data))
    defaults = dataclasses.asdict(SyntheticParams())
    defaults["start_price"] = START_PRICES["ETH"]  # None: by base asset; ETH's is calibrated
    assert {key: defaults[key] for key in printed} == printed
