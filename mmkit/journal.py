"""The journal: an append-only record of what the bot did, for `mmkit pnl-report` and any SQL.

Layout (hive-partitioned, one file per run per day and symbol, so writers never share a file):

    <root>/VERSION                                   schema version (an integer)
    <root>/<table>/date=YYYY-MM-DD/symbol=ETHUSDC/<run>.jsonl

Tables: `fills` (our fills), `orders` (order_new/modify/cancel/ack/reject), `risk`, `marks`
(mid and position every second: markouts and inventory over time), `funding` (funding fees paid
or received), `runs` (one summary line per run). Each row is the line mmkit printed (docs/streams.md) plus `run`.

Why JSON lines and not Parquet as it is written: a line is either whole or missing, so a killed
process leaves a readable journal (the reader skips a torn last line); appends need no
rewrite; DuckDB reads the files directly with hive partitioning, and so do other engines.
`mmkit journal compact` is the place for Parquet export (the same SQL then runs over
`read_parquet`, on a laptop or over object storage). Rows are deduplicated by exchange ids in the
views (`sql/views.sql`): a restart or a replayed stream can write a fill twice; it is counted
once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO, Any

import orjson

from mmkit.errors import ConfigError

SCHEMA_VERSION = 1
TABLES = {"fill": "fills", "order_new": "orders", "order_modify": "orders",
          "order_cancel": "orders", "order_ack": "orders", "order_reject": "orders",
          "risk": "risk", "mark": "marks", "funding": "funding", "summary": "runs",
          "backtest": "runs"}


def check_version(root: Path) -> None:
    """A journal written by a newer mmkit is refused, not misread."""
    marker = root / "VERSION"
    if not marker.exists():
        return
    try:
        version = int(marker.read_text().strip())
    except ValueError:
        raise ConfigError(f"{marker} does not hold a schema version", "journal.path") from None
    if version > SCHEMA_VERSION:
        raise ConfigError(f"the journal at {root} has schema version {version}; this mmkit "
                          f"reads up to {SCHEMA_VERSION}: upgrade mmkit", "journal.path")


class Journal:
    """Appends lines to the journal under `root` for one run (`run_id`)."""

    def __init__(self, root: str | os.PathLike, run_id: str, *, fsync_s: float = 1.0):
        self.root = Path(root)
        self.run_id = run_id
        self.fsync_s = fsync_s
        self.rows = 0
        self._files: dict[tuple[str, str, str], IO[bytes]] = {}
        self._last_sync = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        check_version(self.root)
        marker = self.root / "VERSION"
        if not marker.exists():
            marker.write_text(f"{SCHEMA_VERSION}\n")

    def write(self, line: dict[str, Any]) -> None:
        table = TABLES.get(line.get("type", ""))
        if table is None:
            return
        ts = line.get("ts") or int(time.time() * 1000)
        day = time.strftime("%Y-%m-%d", time.gmtime(ts / 1000))
        fh = self._file(table, day, line.get("symbol") or "_")
        fh.write(orjson.dumps({**line, "run": self.run_id}) + b"\n")
        fh.flush()
        self.rows += 1
        if time.monotonic() - self._last_sync >= self.fsync_s:
            self.sync()

    def _file(self, table: str, day: str, symbol: str) -> IO[bytes]:
        key = (table, day, symbol)
        fh = self._files.get(key)
        if fh is None:
            folder = self.root / table / f"date={day}" / f"symbol={symbol}"
            folder.mkdir(parents=True, exist_ok=True)
            fh = self._files[key] = open(folder / f"{self.run_id}.jsonl", "ab")  # noqa: SIM115
        return fh

    def sync(self) -> None:
        for fh in self._files.values():
            fh.flush()
            os.fsync(fh.fileno())
        self._last_sync = time.monotonic()

    def close(self) -> None:
        self.sync()
        for fh in self._files.values():
            fh.close()
        self._files.clear()


def recovery_start_ms(root: str | os.PathLike, symbol: str) -> int | None:
    """Where a restarted bot asks the venue's userTrades to start so that no fill made while
    it was down is lost: after the newest journaled fill of `symbol`, else from the oldest
    journaled order of it (a run that was killed before its first fill). None: a fresh
    journal, nothing to recover. The account is assumed to be the bot's own."""
    newest_fill = _newest_ts(Path(root) / "fills", symbol)
    if newest_fill is not None:
        return newest_fill
    return _oldest_ts(Path(root) / "orders", symbol)


def _rows_ts(folder: Path):
    for part in folder.glob("*.jsonl"):
        with open(part, "rb") as fh:
            for raw in fh:
                try:
                    ts = orjson.loads(raw).get("ts")
                except orjson.JSONDecodeError:
                    continue  # a torn last line
                if isinstance(ts, int):
                    yield ts


def _newest_ts(table: Path, symbol: str) -> int | None:
    for folder in sorted(table.glob(f"date=*/symbol={symbol}"), reverse=True):
        newest = max(_rows_ts(folder), default=None)  # the newest day with rows answers
        if newest is not None:
            return newest
    return None


def _oldest_ts(table: Path, symbol: str) -> int | None:
    for folder in sorted(table.glob(f"date=*/symbol={symbol}")):
        oldest = min(_rows_ts(folder), default=None)
        if oldest is not None:
            return oldest
    return None
