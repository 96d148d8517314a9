"""`mmkit run` as operations sees it: /metrics serves every name docs/operations.md lists, the
logs are JSON records of the documented event catalogue, and no signature or listen key
reaches them; a halt's emergency flatten shows in the depthFill metrics."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

from mmkit.ops.logs import BASE_FIELDS, EVENTS, LIB
from mmkit.sim.server import ServerThread
from mmkit.sim.venue import Faults
from tests.test_pipeline import TIGHT, fast_venue, venue_args

DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})? ([-+0-9.eE]+|NaN)$")


def documented_metrics() -> list[str]:
    text = DOC.read_text()
    section = text[text.index("\n## Metrics\n"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"^\| `(runner_\w+)` \|", section, re.M)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value, from a /metrics page."""
    found = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            found[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return found


def value(scraped: dict[str, float], name: str, **labels: str) -> float:
    """The sum of a metric's samples that carry these labels."""
    total = 0.0
    for key, number in scraped.items():
        series, _, rest = key.partition("{")
        if series == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += number
    return total


def write_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "config.yaml"
    config.write_text("log:\n  format: json\nsymbols:\n  ETHUSDC:\n    strategy:\n" + "".join(
        f"      {key.split('.')[1]}: {value}\n" for key, value in
        (s.split("=") for s in TIGHT)) + extra)
    return config


def run_until(tmp_path: Path, config: Path, sim, done, timeout: float = 30):
    """`mmkit run -v --lines` against `sim` until `done(scraped samples)`, then SIGTERM.
    Returns (last page, its samples, stdout, stderr)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
    proc = subprocess.Popen([sys.executable, "-m", "mmkit", "--config", str(config), "-v",
                             *venue_args(sim), "run", "--lines", "--metrics",
                             f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    page, scraped = "", {}
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            except httpx.TransportError:
                page = ""
            scraped = samples(page)
            if page and done(scraped):
                break
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    return page, scraped, stdout, stderr


def check_log_records(stderr: bytes) -> list[dict]:
    """Every JSON record is a catalogued event at its level, with its fields."""
    records = [orjson.loads(line) for line in stderr.splitlines() if line.startswith(b"{")]
    assert records
    for record in records:
        assert set(BASE_FIELDS) <= set(record), record
        event = EVENTS.get(record["event"])
        assert event is not None, f"not in the catalogue: {record}"
        if event.name == LIB:
            assert not record["logger"].startswith("mmkit"), record
            continue
        assert record["level"] == event.level, record
        assert record["logger"] in event.logger.split(", "), record
        assert set(event.fields) <= set(record), (event.fields, record)
        if "symbol" in event.fields:
            assert record["symbol"] == "ETHUSDC", record
    return records


def test_metrics_and_json_logs(tmp_path):
    """With WebSocket drops injected: every documented name is served, the drops show as
    disconnects of the market streams (never of the user stream, which is not dropped), the
    largest book age and the key parameters are exported, and every log record is a
    catalogued event."""
    venue = fast_venue(seed=21)
    venue.faults = Faults(drop_ws_every_s=1.0)
    with ServerThread(venue, "127.0.0.1", 0) as sim:
        page, scraped, _, stderr = run_until(
            tmp_path, write_config(tmp_path), sim,
            lambda s: value(s, "runner_fills_total") > 0
            and value(s, "runner_ws_disconnects_total", stream="depth") > 0)
    names = documented_metrics()
    assert len(names) >= 30
    for name in names:  # a labelled counter nothing has counted yet shows only its TYPE
        assert re.search(rf"^# TYPE {name}(_total)? ", page, re.M), name
    assert value(scraped, "runner_ws_disconnects_total", stream="trades") > 0
    assert value(scraped, "runner_ws_disconnects_total", stream="user") == 0
    assert value(scraped, "runner_ws_reconnects_total") == value(
        scraped, "runner_ws_disconnects_total")
    age, largest = (value(scraped, name, symbol="ETHUSDC") for name in (
        "runner_book_age_seconds", "runner_book_age_max_seconds"))
    assert largest > 0 and largest >= age
    info, = (k for k in scraped if k.startswith("runner_config_info{"))
    for label in ('symbol="ETHUSDC"', 'venue="sim"', 'model="fixed"', 'spreadTicks="2"',
                  'maxPosition="0.05"', 'reduceOnlyThreshold="0.8"'):
        assert label in info, info
    assert value(scraped, "runner_risk_limit", limit="killSwitchLoss") == 10
    assert value(scraped, "runner_depth_fill_max_slippage_bps") == 50

    records = check_log_records(stderr)
    events = {r["event"] for r in records}
    assert {"run_start", "run_stop", "book_resync"} <= events
    assert b"signature=" not in stderr or b"signature=***" in stderr
    assert not re.search(rb"signature=[0-9a-f]{64}", stderr)


def test_a_stale_spell_between_two_scrapes_shows_in_the_largest_book_age(tmp_path):
    """The book is cut off (WebSockets dropped, every snapshot refused) between two scrapes and
    then recovers: runner_book_age_max_seconds still holds the spell."""
    venue = fast_venue(seed=21)
    spell_s = 2.5

    def stall_once(scraped: dict[str, float]) -> bool:
        if not value(scraped, "runner_book_age_max_seconds") or \
                value(scraped, "runner_book_stale", symbol="ETHUSDC"):
            return False  # not quoting yet, or still in the spell
        if not getattr(stall_once, "done", False):
            venue.faults = Faults(drop_ws_every_s=0.2, error_rate=1.0)
            time.sleep(spell_s)  # no scrape in between
            venue.faults = Faults()
            stall_once.done = True
            return False
        return value(scraped, "runner_book_age_seconds", symbol="ETHUSDC") < 1

    with ServerThread(venue, "127.0.0.1", 0) as sim:
        _, scraped, _, stderr = run_until(tmp_path, write_config(tmp_path), sim, stall_once)
    assert getattr(stall_once, "done", False)
    largest = value(scraped, "runner_book_age_max_seconds", symbol="ETHUSDC")
    assert largest >= 1.0 > value(scraped, "runner_book_age_seconds", symbol="ETHUSDC")
    events = {r["event"] for r in check_log_records(stderr)}
    assert "book_snapshot_failed" in events


def test_a_halt_flattens_within_the_depth_and_the_metrics_show_it(tmp_path):
    """A stop-loss that trips on the first adverse tick (then a minute of cooldown): the
    runner halts, and the reduce-only IOC orders that flatten show in the depthFill metrics,
    their fills' slippage within the bound. (A stop-loss, not the kill switch: it trips as the
    market moves away from our resting reducing order, so that order rarely races the flatten;
    and a sped-up venue can cross 00:00 UTC, which lifts a kill switch.)"""
    config = write_config(tmp_path, "    risk:\n      stopLossPct: \"0.0001\"\n"
                                    "      emergencyRetryMs: 100\n")
    with ServerThread(fast_venue(seed=21), "127.0.0.1", 0) as sim:
        _, scraped, stdout, stderr = run_until(
            tmp_path, config, sim,
            lambda s: value(s, "runner_depth_fill_slippage_bps_count") > 0
            and value(s, "runner_position", symbol="ETHUSDC") == 0)
    lines = [orjson.loads(line) for line in stdout.splitlines()]
    assert any(x["type"] == "risk" and x["action"] == "halt" for x in lines)
    emergency = [x for x in lines if x["type"] == "order_new" and x["timeInForce"] == "IOC"]
    assert emergency and all(x["reduceOnly"] and x["tag"] == "em" for x in emergency)
    ids = {x["clientOrderId"] for x in emergency}
    fills = [x for x in lines if x["type"] == "fill" and x["clientOrderId"] in ids]
    # the last scrape came before SIGTERM: the lines may hold a little more, never less
    orders = value(scraped, "runner_depth_fill_orders_total")
    assert 1 <= orders <= len(emergency)
    assert value(scraped, "runner_depth_fill_orders_total", depth="covered") >= 1
    ordered = value(scraped, "runner_depth_fill_ordered_base_total")
    assert 0 < ordered <= sum(float(x["qty"]) for x in emergency) + 1e-9
    observed = value(scraped, "runner_depth_fill_slippage_bps_count")
    assert 1 <= observed <= len(fills)
    filled = value(scraped, "runner_depth_fill_filled_base_total")
    assert 0 < filled <= sum(float(x["qty"]) for x in fills) + 1e-9
    # every fill within the bound (50 bps): all observations in the buckets up to 50
    assert value(scraped, "runner_depth_fill_slippage_bps_bucket", le="50.0") == observed
    check_log_records(stderr)
