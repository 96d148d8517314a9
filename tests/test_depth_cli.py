"""`mmkit depth` and `mmkit trades` as a user runs them: replaying the real recordings (the book
equals every bookTicker with the same update id and is never crossed), recording from the
simulator and replaying that recording to the same book, and bad recordings."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time

import orjson
import pytest

from mmkit.lines import check_line
from mmkit.recording import hftbacktest_messages
from tests.simkit import finish, serve, until_streaming

RECORDINGS = "market/binance_usdm_hftbacktest"


def mmkit(*args: str, cwd=None, timeout: float = 120):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
    return subprocess.run([sys.executable, "-m", "mmkit", *args], capture_output=True,
                          env=env, cwd=cwd, timeout=timeout)


def json_lines(stdout: bytes) -> list[dict]:
    return [orjson.loads(line) for line in stdout.splitlines()]


@pytest.mark.parametrize("files, expected", [
    (["ethusdt_20240808.gz"], 551),
    (["ethusdt_20240718.gz", "ethusdt_20240719.gz"], 834),
])
def test_replayed_book_equals_every_book_ticker(shared_data, tmp_path, files, expected):
    paths = [str(shared_data / RECORDINGS / name) for name in files]
    args = [a for p in paths for a in ("--replay", p)]
    result = mmkit("depth", *args, "--levels", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    tickers = {m["data"]["u"]: m["data"] for _, m, _, _ in hftbacktest_messages(paths)
               if isinstance(m, dict) and m.get("data", {}).get("e") == "bookTicker"}
    compared = 0
    for line in json_lines(result.stdout):
        assert check_line(line) == []
        assert line["bestBid"] < line["bestAsk"] and line["spreadTicks"] >= 1
        ticker = tickers.get(line["updateId"])
        if ticker is None:
            continue
        compared += 1
        assert (line["bestBid"], line["bids"][0][1], line["bestAsk"], line["asks"][0][1]) == \
            (ticker["b"], ticker["B"], ticker["a"], ticker["A"])
    assert compared == expected


def test_trades_replay_emits_every_recorded_trade(shared_data, tmp_path):
    path = shared_data / RECORDINGS / "ethusdt_20240808.gz"
    manifest = json.loads((shared_data / RECORDINGS / "manifest.json").read_text())
    expected = sum(n for stream, n in manifest["ethusdt_20240808.gz"]["streams"].items()
                   if stream.endswith("@trade"))
    result = mmkit("trades", "--replay", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trades = json_lines(result.stdout)
    assert len(trades) == expected
    assert {t["side"] for t in trades} == {"BUY", "SELL"}
    assert all(check_line(t) == [] for t in trades)


def test_truncated_recording_replays_what_came_before_then_names_the_line(shared_data,
                                                                         tmp_path):
    data = (shared_data / RECORDINGS / "ethusdt_20240808.gz").read_bytes()
    truncated = tmp_path / "ethusdt_cut.gz"
    truncated.write_bytes(data[: len(data) // 3])
    result = mmkit("depth", "--replay", str(truncated), "--levels", "1", cwd=tmp_path)
    assert result.returncode == 2
    assert len(json_lines(result.stdout)) > 100
    stderr = result.stderr.decode()
    assert stderr.count("\n") == 1 and f"{truncated}:" in stderr and "truncated" in stderr


def test_malformed_recording_line_is_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('# mmkit recording v1\n{"recv": 1, "snapshot": {"lastUpdateId": 1, "E": 1, '
                   '"T": 1, "bids": [["2500.00", "1.000"]], "asks": [["2500.01", "1.000"]]}}\n'
                   '{"recv": 2, "stream": "ethusdc@depth", "data": {"e": "depthUpdate"\n')
    result = mmkit("depth", "ETHUSDC", "--replay", str(bad), cwd=tmp_path)
    assert result.returncode == 2 and f"{bad}:3" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


def test_continuation_file_alone_says_why_there_is_no_book(shared_data, tmp_path):
    result = mmkit("depth", "--replay", str(shared_data / RECORDINGS / "ethusdt_20240719.gz"),
                   cwd=tmp_path)
    assert result.returncode == 2 and "no depth snapshot" in result.stderr.decode()


def test_record_then_replay_rebuilds_the_same_book(tmp_path):
    recording = tmp_path / "eth.jsonl.gz"
    with serve(_synthetic_venue()) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
        live = subprocess.Popen(
            [sys.executable, "-m", "mmkit", "--venue", "sim", "--base-url", sim.base_url,
             "--ws-url", sim.ws_url, "depth", "ETHUSDC", "--levels", "5", "--record",
             str(recording)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            cwd=tmp_path)
        try:
            deadline = time.monotonic() + 30
            lines = []
            while len(lines) < 20 and time.monotonic() < deadline:
                lines.append(orjson.loads(live.stdout.readline()))
        finally:
            rest, stderr = finish(live)
    assert live.returncode == 0, stderr
    lines += json_lines(rest)
    assert len(lines) >= 20
    replayed = json_lines(mmkit("depth", "--replay", str(recording), "--levels", "5",
                                cwd=tmp_path).stdout)
    by_id = {line["updateId"]: line for line in replayed}
    for line in lines:
        twin = by_id[line["updateId"]]
        assert (twin["bids"], twin["asks"]) == (line["bids"], line["asks"])
    with gzip.open(recording, "rt") as fh:
        kinds = {("snapshot" if "snapshot" in m else m["data"]["e"])
                 for m in map(json.loads, (x for x in fh if not x.startswith("#")))}
    assert {"snapshot", "depthUpdate", "aggTrade"} <= kinds


def _synthetic_venue():
    from mmkit.sim.instruments import default_specs
    from mmkit.sim.market import SyntheticMarket
    from mmkit.sim.venue import Venue

    specs = default_specs(["ETHUSDC"])
    return Venue(specs, iter(SyntheticMarket(specs["ETHUSDC"], seed=5)))


def _stream_lines(sim, args: list[str], count: int, action=None, timeout: float = 30,
                  user: bool = False) -> list[dict]:
    """Start a streaming command on `sim`, run `action` once its stream is open, read `count`
    lines (at most `timeout` s: then it is stopped), SIGTERM it; it must exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
    proc = subprocess.Popen([sys.executable, "-m", "mmkit", "--venue", "sim", "--base-url",
                             sim.base_url, "--ws-url", sim.ws_url, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    lines = []
    too_long = threading.Timer(timeout, proc.terminate)  # a read never waits past it
    too_long.start()
    try:
        if action is not None:
            until_streaming(sim.venue, proc, user=user, timeout=timeout)
            action()
        while len(lines) < count:
            raw = proc.stdout.readline()
            if not raw:
                break
            lines.append(orjson.loads(raw))
    finally:
        too_long.cancel()
        _, stderr = finish(proc)
    assert proc.returncode == 0, stderr
    return lines


def test_live_trades_from_the_simulator():
    with serve(_synthetic_venue()) as sim:
        lines = _stream_lines(sim, ["trades", "ETHUSDC"], 3)
    assert len(lines) == 3
    assert all(line["type"] == "trade" and check_line(line) == [] for line in lines)


@pytest.mark.parametrize("raw", [False, True])
def test_userstream_shows_an_order_and_its_fill(raw):
    from tests.simkit import SignedHttp

    with serve() as sim:
        def buy():
            SignedHttp(sim.base_url).signed("POST", "/fapi/v1/order", symbol="ETHUSDC",
                                            side="BUY", type="MARKET", quantity="0.010")

        args = ["userstream", *(["--raw"] if raw else [])]
        lines = _stream_lines(sim, args, 3 if raw else 5, action=buy, user=True)
    if raw:
        assert {line["e"] for line in lines} >= {"ORDER_TRADE_UPDATE"}
    else:
        assert {line["type"] for line in lines} == {"order", "fill", "position", "balance"}
        assert all(check_line(line) == [] for line in lines)
        (fill,) = [line for line in lines if line["type"] == "fill"]
        assert fill["qty"] == "0.010" and fill["maker"] is False and fill["source"] == "stream"


@pytest.mark.parametrize("args, says", [
    (["depth", "ETHUSDC", "--every", "1s", "--on-change"], "--every and --on-change"),
    (["depth", "ETHUSDC", "--speed", "10"], "--speed"),
    (["trades", "ETHUSDC", "--speed", "1"], "--speed"),
    (["depth", "--replay", "eth.jsonl.gz", "--user"], "--user"),
])
def test_contradictory_flags_are_usage_errors(tmp_path, args, says):
    result = mmkit(*args, cwd=tmp_path, timeout=30)
    stderr = result.stderr.decode()
    assert result.returncode == 2 and says in stderr and "Traceback" not in stderr
