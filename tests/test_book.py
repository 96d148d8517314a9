"""OrderBook, BookSync and the decimal → ticks fast path, on small hand-made and generated
inputs (the real recordings are in test_book_replay.py)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.book import (
    CROSSED,
    GAP,
    SNAPSHOT_GAP,
    BookSync,
    DecimalUnits,
    DepthDecoder,
    OrderBook,
    Resync,
)
from mmkit.model import DepthDiff, DepthSnapshot
from mmkit.sim.instruments import default_specs


def snapshot(last_id: int, bids, asks, ts: int = 1_000) -> DepthSnapshot:
    return DepthSnapshot("ETHUSDC", ts, last_id, bids, asks)


def diff(first: int, last: int, prev: int, bids=(), asks=(), ts: int = 2_000) -> DepthDiff:
    return DepthDiff("ETHUSDC", ts, ts, first, last, prev, list(bids), list(asks))


def synced_sync(last_id: int = 100) -> BookSync:
    sync = BookSync()
    request = sync.request_snapshot()
    assert sync.on_snapshot(request, snapshot(last_id, [(100, 5), (99, 7)], [(101, 3), (103, 4)])) is None
    return sync


# -- OrderBook ---------------------------------------------------------------------------------


def test_levels_are_absolute_and_zero_deletes():
    book = OrderBook([(100, 5), (99, 7)], [(101, 3), (103, 4)])
    book.apply([(100, 2), (98, 1), (97, 0)], [(101, 0), (102, 6)])  # 97: unknown, deleted
    assert book.bids == {100: 2, 99: 7, 98: 1}
    assert book.asks == {102: 6, 103: 4}
    assert book.bbo() == (100, 2, 102, 6)


def test_reads_of_the_top():
    book = OrderBook([(100, 1), (98, 3)], [(102, 3), (105, 1)])
    assert book.spread() == 2
    assert book.mid() == 101
    assert book.microprice() == Fraction(100 * 3 + 102 * 1, 4)
    assert book.imbalance() == Fraction(1 - 3, 4)
    assert book.imbalance(depth=2) == Fraction(4 - 4, 8)
    assert book.top_bids(5) == [(100, 1), (98, 3)]
    assert book.top_asks(1) == [(102, 3)]
    assert not book.crossed


def test_empty_sides_read_as_none():
    book = OrderBook([(100, 1)], [])
    assert book.best_ask is None and book.bbo() is None
    assert book.mid() is None and book.microprice() is None and book.spread() is None
    assert book.imbalance() is None and not book.crossed
    book.apply([(100, 0)], [])
    assert book.best_bid is None and book.top_bids(3) == []


def test_best_level_removed_far_from_the_next_one():
    book = OrderBook([(10_000, 1), (10, 2)], [(10_001, 1), (90_000, 2)])
    book.apply([(10_000, 0)], [(10_001, 0)])
    assert (book.best_bid, book.best_ask) == (10, 90_000)
    assert book.top_bids(2) == [(10, 2)]


def test_crossed():
    book = OrderBook([(101, 1)], [(101, 1)])
    assert book.crossed


levels = st.lists(
    st.tuples(
        st.one_of(st.integers(990, 1010), st.integers(1, 5_000)),  # dense top, sparse tails
        st.sampled_from([0, 0, 1, 2, 50]),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(levels, levels), max_size=30))
def test_best_and_top_equal_a_naive_recomputation(updates):
    book = OrderBook()
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    for bid_levels, ask_levels in updates:
        book.apply(bid_levels, ask_levels)
        for naive, side in ((bids, bid_levels), (asks, ask_levels)):
            for price, qty in side:
                if qty:
                    naive[price] = qty
                else:
                    naive.pop(price, None)
        assert book.best_bid == (max(bids) if bids else None)
        assert book.best_ask == (min(asks) if asks else None)
        assert book.top_bids(4) == sorted(bids.items(), reverse=True)[:4]
        assert book.top_asks(4) == sorted(asks.items())[:4]
        assert (book.bids, book.asks) == (bids, asks)


# -- decimal text → ticks ------------------------------------------------------------------------

UNITS = ["0.01", "0.10", "0.1", "0.5", "1", "10", "0.001", "0.00000001", "25"]


def outcome(convert, text):
    try:
        return convert(text)
    except Exception as exc:  # the exception type must be the same too
        return type(exc)


def spec_with(unit: str):
    return replace(default_specs()["ETHUSDT"], tick_size=Decimal(unit), step_size=Decimal(unit))


plain_decimals = st.builds(
    lambda whole, fraction, point: whole + ("." + fraction if point else ""),
    st.text("0123456789", min_size=0, max_size=9),
    st.text("0123456789", min_size=0, max_size=9),
    st.booleans(),
)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(UNITS), st.one_of(plain_decimals, st.text(max_size=12)))
def test_fast_units_equal_symbolspec(unit, text):
    spec = spec_with(unit)
    ticks = DecimalUnits(spec.tick_size, spec.to_ticks)
    assert outcome(ticks.parse, text) == outcome(spec.to_ticks, text)
    assert outcome(ticks.__getitem__, text) == outcome(spec.to_ticks, text)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**12), st.integers(0, 4))
def test_fast_units_with_trailing_zeros(units, extra_zeros):
    spec = default_specs()["BTCUSDT"]  # tick 0.10: "28145.10" has more decimals than the tick
    text = f"{units * spec.tick_size:f}" + "0" * extra_zeros
    assert "." in text
    assert DepthDecoder(spec).ticks[text] == spec.to_ticks(text) == units


@pytest.mark.parametrize(
    "text",
    ["1_0.00", " 1.00", "1.00 ", "+1.00", "-1.00", "-0.000", "1e2", "\u0663.00", ".5", "5.", ".",
     "", "nan", "Infinity", "1.2.3", "0" * 30 + ".01", "9" * 40],
)
def test_fast_units_defer_odd_text_to_symbolspec(text):
    spec = default_specs()["ETHUSDT"]
    units = DecimalUnits(spec.tick_size, spec.to_ticks)
    assert outcome(units.__getitem__, text) == outcome(spec.to_ticks, text)


def test_fast_units_examples():
    decoder = DepthDecoder(default_specs()["ETHUSDT"])
    assert decoder.ticks["2681.62"] == 268162
    assert decoder.steps["0.000"] == 0
    assert decoder.steps["10.229"] == 10229
    assert decoder.ticks["5000"] == 500000
    with pytest.raises(ValueError):
        decoder.ticks["2681.625"]
    with pytest.raises(ValueError):
        decoder.ticks["2681.62.1"]


def test_memo_is_bounded():
    units = DecimalUnits(Decimal("0.01"), default_specs()["ETHUSDT"].to_ticks, limit=4)
    for cents in range(10):
        assert units[f"{cents}.00"] == cents * 100
    assert len(units) <= 4


# -- BookSync ------------------------------------------------------------------------------------


def test_diffs_before_the_snapshot_are_buffered_and_the_bracketing_one_applied():
    sync = BookSync()
    request = sync.request_snapshot()
    assert sync.on_diff(diff(80, 90, 70, bids=[(100, 1)])) is None  # u < lastUpdateId: dropped
    # U > lastUpdateId, as in real 2024 data, but pu <= lastUpdateId <= u: applied
    assert sync.on_diff(diff(101, 110, 90, bids=[(100, 9)])) is None
    assert sync.on_diff(diff(111, 120, 110, asks=[(101, 0)])) is None
    assert not sync.synced and not sync.book.bids
    assert sync.on_snapshot(request, snapshot(100, [(100, 5)], [(101, 3), (102, 1)])) is None
    assert sync.synced and sync.last_update_id == 120
    assert sync.book.bbo() == (100, 9, 102, 1)
    assert (sync.counters.applied, sync.counters.dropped) == (2, 1)


def test_gap_resyncs_and_keeps_buffering_from_the_breaking_diff():
    sync = synced_sync(100)
    assert sync.on_diff(diff(95, 105, 90)) is None
    resync = sync.on_diff(diff(111, 120, 110, bids=[(100, 1)]))
    assert resync == Resync(GAP, 105, 110)
    assert not sync.synced and sync.book.bbo() is None and sync.counters.resyncs == 1
    assert sync.on_diff(diff(121, 130, 120, bids=[(100, 2)])) is None  # buffered
    request = sync.request_snapshot()
    assert sync.on_snapshot(request, snapshot(115, [(99, 1)], [(101, 1)])) is None
    assert sync.last_update_id == 130 and sync.book.bbo() == (100, 2, 101, 1)


def test_snapshot_older_than_the_buffered_stream_resyncs():
    sync = BookSync()
    request = sync.request_snapshot()
    sync.on_diff(diff(121, 130, 120))
    sync.on_diff(diff(131, 140, 130))
    resync = sync.on_snapshot(request, snapshot(100, [(99, 1)], [(101, 1)]))
    assert resync == Resync(SNAPSHOT_GAP, 100, 120)
    assert not sync.synced and sync.counters.resyncs == 1
    request = sync.request_snapshot()
    assert sync.on_snapshot(request, snapshot(135, [(99, 1)], [(101, 1)])) is None
    assert sync.last_update_id == 140  # both buffered diffs were kept through the resync


def test_crossed_book_resyncs():
    sync = synced_sync(100)
    resync = sync.on_diff(diff(95, 105, 90, bids=[(102, 1)]))
    assert resync == Resync(CROSSED)
    assert not sync.synced and not sync.book.bids and sync.counters.resyncs == 1


def test_repeated_old_diff_is_dropped_not_a_gap():
    sync = synced_sync(100)
    first = diff(95, 105, 90, bids=[(100, 1)])
    assert sync.on_diff(first) is None
    assert sync.on_diff(diff(106, 110, 105)) is None
    assert sync.on_diff(first) is None
    assert sync.synced and sync.counters.dropped == 1 and sync.last_update_id == 110


def test_late_and_repeated_snapshot_replies_are_ignored():
    sync = BookSync()
    old = sync.request_snapshot()
    new = sync.request_snapshot()
    assert sync.on_snapshot(old, snapshot(100, [(99, 1)], [(101, 1)])) is None
    assert not sync.synced
    assert sync.on_snapshot(new, snapshot(200, [(98, 1)], [(101, 1)])) is None
    assert sync.on_snapshot(new, snapshot(300, [(97, 1)], [(101, 1)])) is None
    assert sync.last_update_id == 200 and sync.counters.late_snapshots == 2


def test_staleness_from_the_last_applied_event():
    sync = BookSync()
    assert sync.is_stale(0, 1_000)
    sync = synced_sync(100)
    assert not sync.is_stale(1_500, 1_000)  # the snapshot's E is 1000
    sync.on_diff(diff(95, 105, 90), received_ms=5_000)
    assert not sync.is_stale(6_000, 1_000)
    assert sync.is_stale(6_001, 1_000)
