"""Logs for people (text on a terminal) or machines (one JSON object per line, for Loki and
jq). The JSON schema is stable and documented in docs/operations.md ("Logs"):

    {"ts": "2026-11-25T09:13:04.123Z", "level": "warning", "event": "book_resync",
     "logger": "mmkit.feeds", "msg": "book_resync symbol=ETHUSDC reason=gap",
     "symbol": "ETHUSDC", "reason": "gap", "detail": ""}

Every record of an mmkit logger is one of the events of `EVENTS`, with that event's level and
fields. A log call is matched by its format string (`record.msg`, before the arguments are put
in), which names the event and the fields its arguments fill; so `log.warning("book_resync
symbol=%s reason=%s%s", ...)` gives the fields symbol, reason and detail without the call
knowing about JSON. An `extra={"event": ...}` wins, and other extras become fields. A message
of an mmkit logger that is not in the catalogue gets the event `unlisted` (tests fail on it);
a record of any other logger (httpx, httpcore, websockets, uvicorn, asyncio…) gets `lib`.

Order, fill and risk events are not logged: they are the data lines on stdout (`run --lines`,
docs/streams.md), which the Promtail pipeline labels by their `type`.

Secrets never reach a log: messages are formatted from values that never include them (see
mmkit.binance.signing), and `Scrub` masks signatures and listen keys whatever a library logs.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from dataclasses import dataclass

import orjson

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

LIB = "lib"  # the event of every record of a logger outside mmkit
UNLISTED = "unlisted"  # an mmkit message missing from EVENTS: a bug, tests fail on it
BASE_FIELDS = ("ts", "level", "event", "logger", "msg")


@dataclass(frozen=True)
class Event:
    """One event of the catalogue: the level it is logged at, the loggers (comma-separated),
    the fields it adds to BASE_FIELDS, what it means, and the format strings of the log calls
    that make it, each with the field each of its arguments fills."""

    name: str
    level: str
    logger: str
    fields: tuple[str, ...]
    meaning: str
    formats: tuple[tuple[str, tuple[str, ...]], ...] = ()


EVENTS: dict[str, Event] = {e.name: e for e in (
    # -- the runner (mmkit run) ------------------------------------------------------------------
    Event("run_start", "info", "mmkit.run", ("symbol", "position", "cancelled_old_orders"),
          "reconciled with the venue, about to quote",
          (("run_start symbol=%s position=%s cancelled_old_orders=%d",
            ("symbol", "position", "cancelled_old_orders")),)),
    Event("run_stop", "info", "mmkit.run", ("symbol", "fills", "position"),
          "everything cancelled, tasks stopped",
          (("run_stop symbol=%s fills=%d position=%s", ("symbol", "fills", "position")),)),
    Event("old_order_cancel", "info", "mmkit.run", ("client_order_id",),
          "an order of ours left by an earlier run, cancelled at start",
          (("old_order_cancel client_order_id=%s: left by an earlier run",
            ("client_order_id",)),)),
    Event("foreign_orders", "warning", "mmkit.run, mmkit.send", ("symbol", "count"),
          "open orders that are not ours (left alone)",
          (("foreign_orders symbol=%s count=%d: not ours, left alone", ("symbol", "count")),
           ("%d open %s orders are not ours; leaving them alone", ("count", "symbol")))),
    Event("shutdown_sweep", "warning", "mmkit.run", ("symbol",),
          "orders still in flight at shutdown were found resting and cancelled",
          (("shutdown_sweep symbol=%s: cancelled orders left in flight", ("symbol",)),)),
    Event("heartbeat_failed", "warning", "mmkit.run", ("error",),
          "renewing the dead-man's switch (countdownCancelAll) failed; retried next beat",
          (("heartbeat_failed countdownCancelAll: %s", ("error",)),)),
    Event("quote_error", "error", "mmkit.run", ("symbol", "error"),
          "the venue or the network failed one decision; the next book decides again",
          (("quote_error symbol=%s: %s", ("symbol", "error")),)),
    Event("lockstep_end", "info", "mmkit.run", ("time",),
          "run --lockstep: the venue's market is over (time: venue ms)",
          (("lockstep: the venue's market is over at %d", ("time",)),)),
    # -- market data ---------------------------------------------------------------------------
    Event("book_resync", "warning", "mmkit.feeds", ("symbol", "reason", "detail"),
          "the local book is rebuilt from a snapshot (gap, crossed book, reconnect)",
          (("book_resync symbol=%s reason=%s%s", ("symbol", "reason", "detail")),
           ("book_resync symbol=%s reason=%s (waiting for the recording's next snapshot)",
            ("symbol", "reason")))),
    Event("book_snapshot_failed", "warning", "mmkit.feeds", ("error",),
          "the depth snapshot request failed; asked again in 1 s",
          (("book snapshot failed: %s", ("error",)),)),
    Event("ws_disconnect", "warning", "mmkit.ws", ("stream", "reason"),
          "a WebSocket connection was lost (closed, failed or silent); reconnecting",
          (("ws_disconnect stream=%s reason=%s", ("stream", "reason")),)),
    Event("ws_reconnect", "info", "mmkit.ws", ("stream", "attempt"),
          "a lost WebSocket connection is back (attempt: reconnects so far)",
          (("ws_reconnect stream=%s attempt=%d", ("stream", "attempt")),)),
    Event("ws_connect_failed", "warning", "mmkit.ws", ("error", "retry_s"),
          "opening a WebSocket failed; retried after a backoff",
          (("ws connect failed (%s); retrying in %.2fs", ("error", "retry_s")),)),
    Event("ws_bad_message", "warning", "mmkit.ws", (),
          "a WebSocket message that is not JSON was dropped",
          (("ws: dropped a message that is not JSON", ()),)),
    # -- user data and orders ------------------------------------------------------------------
    Event("listen_key_renewed", "warning", "mmkit.userstream", (),
          "the listen key expired; a new one was created and the user stream reconciled",
          (("listen_key_renewed: the listen key expired; created a new one", ()),)),
    Event("reconcile_failed", "warning", "mmkit.userstream", ("error", "retry_s"),
          "reading orders, positions and missed fills after a (re)connect failed; tried again",
          (("reconcile_failed: %s; again in %.0f s", ("error", "retry_s")),)),
    Event("fill_order_unknown", "warning", "mmkit.userstream", ("order_id", "error"),
          "a recovered fill's order could not be read: its fill line has no client order id",
          (("fill_order_unknown order_id=%d: %s", ("order_id", "error")),)),
    Event("listen_key_keepalive_failed", "warning", "mmkit.userstream", ("error",),
          "the listen key keepalive failed; retried at the next keepalive",
          (("listen key keepalive failed: %s", ("error",)),)),
    Event("cancel_unknown", "warning", "mmkit.execution", ("error",),
          "a cancel's outcome is unknown (timeout, 5xx); settled by query",
          (("cancel outcome unknown: %s", ("error",)),)),
    Event("sweep_failed", "warning", "mmkit.execution", ("order_id", "error"),
          "cancelling an order found resting at shutdown failed",
          (("sweep_failed order_id=%s: %s", ("order_id", "error")),)),
    Event("seed_day_failed", "warning", "mmkit.execution", ("symbol", "error"),
          "today's earlier fills could not be read at start; the daily budgets start at zero",
          (("seed_day_failed symbol=%s: %s", ("symbol", "error")),)),
    Event("data_latency", "warning", "mmkit.send", (),
          "send: fresh books again after the watchdog cancelled on a silent feed; quoting "
          "resumes", (("data_latency: books again; quoting resumes", ()),)),
    # -- REST ------------------------------------------------------------------------------------
    Event("rest_request", "debug", "mmkit.binance.rest", ("method", "path", "status", "weight"),
          "a REST response (-vv only)",
          (("%s %s → %s (weight %s)", ("method", "path", "status", "weight")),)),
    Event("rest_throttle", "info", "mmkit.binance.rest", ("wait_ms",),
          "requests wait to stay under the venue's rate limits",
          (("throttling %d ms to stay under the venue's limits", ("wait_ms",)),)),
    # -- the simulator (embedded in mmkit run, or mmkit exchange serve) ----------------------------
    Event("sim_market_end", "info", "mmkit.sim", (),
          "the simulator's market feed is over; its book stays as it is",
          (("market feed finished; the book stays as it is", ()),)),
    Event("sim_market_behind", "warning", "mmkit.sim", ("behind_s", "behind_wall_s", "speed"),
          "the simulator replays its market late: --speed is more than the machine can do",
          (("the market is %.1f s of venue time (%.1f s of wall time) behind the clock: "
            "--speed %g is more than this machine can replay; the venue keeps answering and "
            "applies market events late", ("behind_s", "behind_wall_s", "speed")),)),
    Event("sim_market_caught_up", "info", "mmkit.sim", (),
          "the simulator's market is on time again",
          (("the market has caught up with the clock", ()),)),
    Event("sim_tick_failed", "error", "mmkit.sim.server", ("error",),
          "the simulator's clock tick raised (a simulator bug)",
          (("venue tick failed", ()),)),
    Event("sim_replay_end", "info", "mmkit.exchange", ("symbols", "reason"),
          "exchange serve: the replay of a recording ended",
          (("replay of %s %s", ("symbols", "reason")),)),
    # -- scripts/run_runner.sh (systemd) ---------------------------------------------------------
    Event("runner_start", "info", "run_runner", ("symbol",),
          "the unit's script execs mmkit run", ()),
    Event("runner_refused", "error", "run_runner", ("symbol",),
          "the unit's script refused to start (bad symbol or config, live without MMKIT_LIVE=1)",
          ()),
    # -- not mmkit's -----------------------------------------------------------------------------
    Event(LIB, "any", "any other", (),
          "a record of a library's logger (httpx, httpcore, websockets, uvicorn, asyncio): "
          "kept at WARNING unless -vv"),
)}

_BY_FORMAT: dict[str, tuple[str, tuple[str, ...]]] = {
    fmt: (event.name, names) for event in EVENTS.values() for fmt, names in event.formats}


def event_of(record: logging.LogRecord) -> tuple[str, dict[str, object]]:
    """The record's event and the fields its arguments fill."""
    given = getattr(record, "event", None)
    if given:
        return str(given), {}
    if not _ours(record.name):
        return LIB, {}
    known = _BY_FORMAT.get(record.msg) if isinstance(record.msg, str) else None
    if known is None:
        return UNLISTED, {}
    name, names = known
    args = record.args if isinstance(record.args, tuple) else ()
    return name, {field: value for field, value in zip(names, args, strict=False)}


def _ours(logger: str) -> bool:
    return logger == "mmkit" or logger.startswith("mmkit.")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event, fields = event_of(record)
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": event,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in fields.items():
            entry.setdefault(key, value if isinstance(value, int | float | str | None)
                             else str(value))
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry.setdefault("error", self.formatException(record.exc_info).splitlines()[-1])
        return orjson.dumps(entry, default=str).decode()


class Scrub(logging.Filter):
    """Last line of defence: no signature or listen key in any record, whatever a library
    logs (httpx logs every URL at INFO, query string included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = _SECRET_PARAM.sub(r"\1***", message)
        scrubbed = _LISTEN_KEY_PATH.sub(r"\1***", scrubbed)
        if scrubbed != message:
            # the message is now text: keep the event and fields its format string names
            event, fields = event_of(record)
            record.msg, record.args = scrubbed, None
            record.__dict__.setdefault("event", event)
            for key, value in fields.items():
                record.__dict__.setdefault(key, str(_SECRET_PARAM.sub(
                    r"\1***", _LISTEN_KEY_PATH.sub(r"\1***", str(value)))))
        return True


_SECRET_PARAM = re.compile(r"((?:signature|listenKey)=)[^&\s\"']+")
_LISTEN_KEY_PATH = re.compile(r"(/ws/)[A-Za-z0-9_-]{32,}")  # Binance's: 64 alphanumerics
QUIET = ("httpx", "httpcore", "websockets", "uvicorn", "uvicorn.access")


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
