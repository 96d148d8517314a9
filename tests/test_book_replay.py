"""The local book rebuilt from real Binance recordings (hftbacktest format, see the data
README): REST snapshot + every diff through BookSync, checked against every bookTicker that
carries the update id of an applied diff."""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from mmkit.book import GAP, BookSync, DepthDecoder, OrderBook
from mmkit.model import DepthDiff, DepthSnapshot
from mmkit.sim.instruments import default_specs

RECORDINGS = "market/binance_usdm_hftbacktest"

# (files of one contiguous session, exact comparisons). The manifest has no rebuild counts;
# these are the data README's "Book rebuild" numbers, found by the same comparison.
SESSIONS = {
    "eth-20240808": (["ethusdt_20240808.gz"], 551),
    "eth-20240718-19": (["ethusdt_20240718.gz", "ethusdt_20240719.gz"], 834),
    "btc-20240808": (["btcusdt_20240808.gz"], 629),
    "btc-20240718-19": (["btcusdt_20240718.gz", "btcusdt_20240719.gz"], 625),
    "btc-20230404-05": (["btcusdt_20230404.dat.gz", "btcusdt_20230405.dat.gz"], 1565),
}


def read_recording(path: Path, local_ts_unit: str) -> Iterator[tuple[int, dict]]:
    """(local receive time in ms, decoded message) for each `<local_ts> <json>` line."""
    per_ms = {"ns": 1_000_000, "us": 1_000}[local_ts_unit]
    with gzip.open(path, "rb") as lines:
        for line in lines:
            local_ts, _, body = line.partition(b" ")
            yield int(local_ts) // per_ms, orjson.loads(body)


def session_messages(data: Path, files: list[str]) -> Iterator[tuple[int, dict]]:
    manifest = json.loads((data / RECORDINGS / "manifest.json").read_text())
    for name in files:
        yield from read_recording(data / RECORDINGS / name, manifest[name]["local_ts_unit"])


def depth_count(data: Path, files: list[str]) -> int:
    manifest = json.loads((data / RECORDINGS / "manifest.json").read_text())
    return sum(
        count
        for name in files
        for stream, count in manifest[name]["streams"].items()
        if "@depth" in stream
    )


def decoder_for(files: list[str]) -> DepthDecoder:
    return DepthDecoder(default_specs()[files[0][:7].upper()])


@pytest.mark.parametrize("session", SESSIONS)
def test_rebuilt_book_matches_every_book_ticker(shared_data, session):
    files, expected_comparisons = SESSIONS[session]
    decoder = decoder_for(files)
    sync = BookSync()
    request = sync.request_snapshot()
    tops: dict[int, tuple[int, int, int, int] | None] = {}
    tickers = []
    depth_events = 0
    for local_ms, message in session_messages(shared_data, files):
        if "lastUpdateId" in message:
            assert sync.on_snapshot(request, decoder.snapshot(message), local_ms) is None
            tops[sync.last_update_id] = sync.book.bbo()
            continue
        data = message["data"]
        if data["e"] == "depthUpdate":
            depth_events += 1
            diff = decoder.diff(data)
            assert sync.on_diff(diff, local_ms) is None
            if sync.last_update_id == diff.last_id:
                assert not sync.book.crossed
                tops[diff.last_id] = sync.book.bbo()
        elif data["e"] == "bookTicker":
            tickers.append(decoder.book_ticker(data))

    compared = [t for t in tickers if t.update_id in tops]
    mismatches = [
        t for t in compared if tops[t.update_id] != (t.bid, t.bid_qty, t.ask, t.ask_qty)
    ]
    assert depth_events == depth_count(shared_data, files)
    assert sync.counters.resyncs == 0
    assert sync.counters.applied + sync.counters.dropped == depth_events
    assert len(compared) == expected_comparisons
    assert mismatches == []


def eth_session(data: Path) -> tuple[DepthDecoder, DepthSnapshot, list[DepthDiff]]:
    """The 2024-08-08 ETHUSDT snapshot and all its diffs, in arrival order."""
    files = SESSIONS["eth-20240808"][0]
    decoder = decoder_for(files)
    snapshot, diffs = None, []
    for _, message in session_messages(data, files):
        if "lastUpdateId" in message:
            snapshot = decoder.snapshot(message)
        elif message["data"]["e"] == "depthUpdate":
            diffs.append(decoder.diff(message["data"]))
    assert snapshot is not None
    return decoder, snapshot, diffs


def synced(snapshot: DepthSnapshot, diffs: list[DepthDiff]) -> BookSync:
    sync = BookSync()
    request = sync.request_snapshot()
    assert sync.on_snapshot(request, snapshot) is None
    for diff in diffs:
        assert sync.on_diff(diff) is None
    return sync


def snapshot_of(book: OrderBook, last_update_id: int, ts: int) -> DepthSnapshot:
    bids = sorted(book.bids.items(), reverse=True)
    asks = sorted(book.asks.items())
    return DepthSnapshot("ETHUSDT", ts, last_update_id, bids, asks)


def test_dropped_diff_gives_one_resync_then_recovers_from_a_new_snapshot(shared_data):
    _, snapshot, diffs = eth_session(shared_data)
    live = [d for d in diffs if d.last_id >= snapshot.last_update_id]
    dropped_at, snapshot_at = 100, 140

    reference = synced(snapshot, live[: snapshot_at + 1])
    later_snapshot = snapshot_of(reference.book, live[snapshot_at].last_id, live[snapshot_at].ts)
    final = synced(snapshot, live)

    sync = synced(snapshot, live[:dropped_at])
    resyncs = [sync.on_diff(d) for d in live[dropped_at + 1 : snapshot_at + 20]]
    breaks = [r for r in resyncs if r is not None]
    assert len(breaks) == 1
    assert breaks[0].reason == GAP
    assert breaks[0].expected_pu == live[dropped_at - 1].last_id
    assert breaks[0].got_pu == live[dropped_at].last_id
    assert not sync.synced and not sync.book.bids and sync.counters.resyncs == 1

    request = sync.request_snapshot()
    assert sync.on_snapshot(request, later_snapshot) is None
    for diff in live[snapshot_at + 20 :]:
        assert sync.on_diff(diff) is None
    assert sync.synced and sync.counters.resyncs == 1
    assert sync.last_update_id == final.last_update_id
    assert (sync.book.bids, sync.book.asks) == (final.book.bids, final.book.asks)


def test_late_snapshot_reply_is_not_applied(shared_data):
    _, snapshot, diffs = eth_session(shared_data)
    sync = BookSync()
    first = sync.request_snapshot()
    second = sync.request_snapshot()
    assert sync.on_snapshot(first, snapshot) is None
    assert not sync.synced and not sync.book.asks
    assert sync.counters.late_snapshots == 1

    for diff in diffs:
        sync.on_diff(diff)
    assert sync.on_snapshot(second, copy.deepcopy(snapshot)) is None
    assert sync.synced and sync.last_update_id == diffs[-1].last_id
    assert sync.on_snapshot(second, snapshot) is None  # answered already
    assert sync.counters.late_snapshots == 2
    assert sync.last_update_id == diffs[-1].last_id
