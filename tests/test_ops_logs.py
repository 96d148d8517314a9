"""The JSON log schema: docs/operations.md's event table is the catalogue in mmkit/ops/logs.py,
every log call in mmkit is in it, and the formatter gives each record its event and fields."""

from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path

from mmkit.ops.logs import BASE_FIELDS, EVENTS, LIB, UNLISTED, JsonFormatter, Scrub

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "operations.md"
LEVELS = {"debug", "info", "warning", "error", "critical", "exception"}


def doc_events() -> dict[str, tuple[str, str, tuple[str, ...]]]:
    text = DOC.read_text()
    section = text[text.index("\n## Logs\n"):]
    section = section[:section.index("\n## ", 1)]
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \| ([^|]+) \|([^|]*)\|", section, re.M)
    return {name: (level, logger.strip(), tuple(f.strip() for f in fields.split(",")
                                                  if f.strip()))
            for name, level, logger, fields in rows}


def test_the_documented_events_are_the_catalogue():
    documented = doc_events()
    assert set(documented) == set(EVENTS)
    for name, event in EVENTS.items():
        assert documented[name] == (event.level, event.logger, event.fields), name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name)
        assert event.level in LEVELS | {"any"}
        for _, names in event.formats:
            assert set(names) <= set(event.fields), name


def log_calls() -> list[tuple[str, str, str]]:
    """(file, level, format string) of every `log.<level>("...")` call in mmkit."""
    calls = []
    for path in sorted((ROOT / "mmkit").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LEVELS and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "log" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                calls.append((str(path.relative_to(ROOT)), node.func.attr, node.args[0].value))
    return calls


def test_every_log_call_in_mmkit_is_a_catalogued_event_at_its_level():
    formats = {fmt: event for event in EVENTS.values() for fmt, _ in event.formats}
    calls = log_calls()
    assert len(calls) >= 15
    for where, level, fmt in calls:
        event = formats.get(fmt)
        assert event is not None, f"{where}: log call {fmt!r} is not in mmkit/ops/logs.py EVENTS"
        assert event.level == {"exception": "error"}.get(level, level), (where, fmt)


def record(name: str, level: int, msg: str, args=(), **extra) -> logging.LogRecord:
    rec = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    return rec


def formatted(rec: logging.LogRecord) -> dict:
    Scrub().filter(rec)
    return json.loads(JsonFormatter().format(rec))


def test_a_record_gets_its_event_and_the_fields_of_its_arguments():
    line = formatted(record("mmkit.feeds", logging.WARNING, "book_resync symbol=%s reason=%s%s",
                            ("ETHUSDC", "gap", " (expected pu 7, got 9)")))
    assert {k: line[k] for k in ("level", "event", "symbol", "reason", "detail")} == {
        "level": "warning", "event": "book_resync", "symbol": "ETHUSDC", "reason": "gap",
        "detail": " (expected pu 7, got 9)"}
    assert line["msg"] == "book_resync symbol=ETHUSDC reason=gap (expected pu 7, got 9)"
    line = formatted(record("mmkit.binance.rest", logging.INFO,
                            "throttling %d ms to stay under the venue's limits", (250,)))
    assert (line["event"], line["wait_ms"]) == ("rest_throttle", 250)
    line = formatted(record("mmkit.run", logging.WARNING,
                            "heartbeat_failed countdownCancelAll: %s", (OSError("reset"),)))
    assert (line["event"], line["error"]) == ("heartbeat_failed", "reset")
    assert set(BASE_FIELDS) <= set(line)


def test_libraries_get_lib_and_unknown_mmkit_messages_get_unlisted():
    for name in ("httpx", "httpcore.http11", "websockets.client", "uvicorn.error", "asyncio"):
        line = formatted(record(name, logging.DEBUG, "HTTP Request: GET %s", ("/x",)))
        assert line["event"] == LIB and line["logger"] == name
    line = formatted(record("mmkit.run", logging.INFO, "something new %s", ("happened",)))
    assert line["event"] == UNLISTED
    line = formatted(record("mmkit.run", logging.INFO, "anything", event="custom_event"))
    assert line["event"] == "custom_event"


def test_scrubbing_a_secret_keeps_the_event_and_masks_its_fields():
    query = "/fapi/v1/order?symbol=ETHUSDC&signature=" + "ab" * 32
    line = formatted(record("mmkit.binance.rest", logging.DEBUG, "%s %s → %s (weight %s)",
                            ("POST", query, 200, "3")))
    assert line["event"] == "rest_request"
    assert "ab" * 32 not in json.dumps(line)
    assert line["path"].endswith("signature=***") and line["status"] == "200"


def test_listen_keys_in_websocket_paths_are_scrubbed():
    from tests.simkit import static_venue

    sim_key = static_venue().create_listen_key()
    assert len(sim_key) == 64 and sim_key.isalnum()  # Binance's form
    for key in (sim_key, "Ab-_" * 16):
        line = formatted(record("websockets.client", logging.DEBUG, "> GET /private/ws/%s HTTP/1.1",
                                (key,)))
        assert key not in json.dumps(line)
