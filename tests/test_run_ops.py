"""`mmkit run` as operations sees it: /metrics serves every name docs/operations.md lists, the
logs are JSON records of the documented event catalogue, and no signature or listen key reaches them."""

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
from tests.test_pipeline import TIGHT, fast_venue, venue_args

DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"


def documented_metrics() -> list[str]:
    text = DOC.read_text()
    section = text[text.index("\n## Metrics\n"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"^\| `(runner_\w+)` \|", section, re.M)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_metrics_and_json_logs(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("log:\n  format: json\nsymbols:\n  ETHUSDC:\n    strategy:\n" + "".join(
        f"      {key.split('.')[1]}: {value}\n" for key, value in
        (s.split("=") for s in TIGHT)))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
    with ServerThread(fast_venue(seed=21), "127.0.0.1", 0) as sim:
        proc = subprocess.Popen([sys.executable, "-m", "mmkit", "--config", str(config), "-v",
                                 *venue_args(sim), "run", "--lines", "--metrics",
                                 f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd=tmp_path)
        scraped = ""
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics").text
                except httpx.TransportError:
                    scraped = ""
                if "runner_fills_total{" in scraped:
                    break
                time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    names = documented_metrics()
    assert len(names) >= 20
    for name in names:  # a labelled counter nothing has counted yet shows only its TYPE
        assert re.search(rf"^# TYPE {name}(_total)? ", scraped, re.M), name
    records = [orjson.loads(line) for line in stderr.splitlines() if line.startswith(b"{")]
    assert records
    for record in records:  # every record is a catalogued event at its level, with its fields
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
    assert {"run_start", "run_stop"} <= {r["event"] for r in records}
    assert b"signature=" not in stderr or b"signature=***" in stderr
    assert not re.search(rb"signature=[0-9a-f]{64}", stderr)
