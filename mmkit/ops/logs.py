"""Logs for people (text on a terminal) or machines (one JSON object per line, for Loki and
jq). The JSON schema is stable and documented in docs/operations.md:

    {"ts": "2026-11-25T09:13:04.123Z", "level": "warning", "event": "book_resync",
     "logger": "mmkit.feeds", "msg": "book_resync symbol=ETHUSDC reason=gap", ...extras}

`event` is the record's `event` extra when given, else the message's first word when it is an
identifier (mmkit's log calls start with their event name, e.g. `book_resync ...`), else the
logger's last part. Extras passed with `extra={...}` become fields. Secrets never reach a log:
messages are formatted from values that never include them (see mmkit.binance.signing).
"""

from __future__ import annotations

import logging
import re
import sys
import time

import orjson

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_EVENT = re.compile(r"^[a-z][a-z0-9_]*$")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        first = message.split(" ", 1)[0]
        event = getattr(record, "event", None) or (
            first if _EVENT.match(first) else record.name.rsplit(".", 1)[-1])
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": event,
            "logger": record.name,
            "msg": message,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return orjson.dumps(entry, default=str).decode()


class Scrub(logging.Filter):
    """Last line of defence: no signature or listen key in any record, whatever a library
    logs (httpx logs every URL at INFO, query string included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = _SECRET_PARAM.sub(r"\1***", message)
        scrubbed = _LISTEN_KEY_PATH.sub(r"\1***", scrubbed)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


_SECRET_PARAM = re.compile(r"((?:signature|listenKey)=)[^&\s\"']+")
_LISTEN_KEY_PATH = re.compile(r"(/ws/)[A-Za-z0-9]{32,}")
QUIET = ("httpx", "httpcore", "websockets", "uvicorn.access")


def setup(format_: str = "auto", level: str | int = "INFO") -> None:
    """Route logs to stderr: `json`, `text`, or `auto` (text on a terminal). Chatty libraries
    are kept at WARNING unless `level` is DEBUG."""
    if format_ == "auto":
        format_ = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if format_ == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(Scrub())
    numeric = level if isinstance(level, int) else logging.getLevelName(str(level).upper())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING)
                                         if numeric > logging.DEBUG else numeric)
