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
`mmkit journal compact` copies it to Parquet, partitioned the same way: `pnl-report` reads
either (`source`), and so does any engine, on a laptop or over object storage. Rows are
deduplicated by exchange ids in the views (`sql/views.sql`): a restart or a replayed stream can
write a fill twice; it is counted once, and `compact` keeps it once.
"""

from __future__ import annotations

import os
import shutil
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


def newest_ts(root: str | os.PathLike, symbol: str) -> int | None:
    """The time of the newest mark, fill or order of `symbol`: where a sped-up paper run
    starts its venue clock so two runs' rows in one journal never interleave."""
    found = [_newest_ts(Path(root) / table, symbol) for table in ("marks", "fills", "orders")]
    return max((ts for ts in found if ts is not None), default=None)


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


# -- reading: JSON lines as written, or Parquet after `compact` -------------------------------

# A fill is written again by a restart's recovery or a replayed stream: the same fill has the
# same (symbol, tradeId) on Binance, and also the same orderId and time. The simulator and the
# backtester number each session's trades from the same start, so the key carries orderId and
# ts too: two sessions' fills in one journal both count.
FILL_KEY = "symbol, tradeId, orderId, ts"
DEDUPE = {  # what `compact` keeps once (the views dedupe the same way)
    "fills": f"DISTINCT ON ({FILL_KEY}) * FROM {{scan}} ORDER BY {FILL_KEY}",
    "funding": "DISTINCT ON (symbol, ts, run) * FROM {scan} ORDER BY symbol, ts",
}
# Decimal strings in the lines (exact, as the venue sent them) become DECIMAL in Parquet, so
# ad-hoc SQL can do arithmetic on them; the views cast the JSON lines the same way.
DECIMAL_COLUMNS = ("price", "qty", "commission", "realizedPnl", "mid", "position", "netPnl",
                   "amount")
DECIMAL_TYPE = "DECIMAL(38, 12)"


def source(root: str | os.PathLike, table: str) -> str:
    """The DuckDB scan of one table's files, with `date` and `symbol` from the partitions."""
    folder = Path(root) / table
    if next(folder.glob("*/*/*.parquet"), None) is not None:
        return (f"read_parquet('{folder}/*/*/*.parquet', hive_partitioning = true, "
                "union_by_name = true)")
    return (f"read_json_auto('{folder}/*/*/*.jsonl', hive_partitioning = true, "
            "union_by_name = true, ignore_errors = true, format = 'newline_delimited')")


def tables(root: str | os.PathLike) -> list[str]:
    return sorted(t for t in set(TABLES.values()) if (Path(root) / t).is_dir())


def info(root: str | os.PathLike) -> list[dict[str, Any]]:
    """One `journal` line per table: rows (deduplicated where the views dedupe), files, time
    range, symbols and runs."""
    import duckdb

    root = Path(root)
    check_version(root)
    con = duckdb.connect()
    out = []
    for table in tables(root):
        scan = source(root, table)
        rows_sql = f"SELECT {DEDUPE[table].format(scan=scan)}" if table in DEDUPE else \
            f"SELECT * FROM {scan}"
        rows, first, last, symbols, runs = con.execute(
            f"SELECT count(*), min(ts), max(ts), list(DISTINCT symbol ORDER BY symbol), "
            f"count(DISTINCT run) FROM ({rows_sql})").fetchone()
        files = [p for p in (root / table).glob("*/*/*") if p.suffix in (".jsonl", ".parquet")]
        out.append({"type": "journal", "symbol": symbols[0] if len(symbols or []) == 1 else None,
                    "ts": int(time.time() * 1000), "table": table, "rows": rows,
                    "files": len(files),
                    "format": "parquet" if "read_parquet" in scan else "jsonl",
                    "firstTs": first, "lastTs": last, "symbols": symbols or [], "runs": runs,
                    "bytes": sum(p.stat().st_size for p in files), "path": str(root / table)})
    return out


def compact(root: str | os.PathLike, out: str | os.PathLike, *, force: bool = False
            ) -> list[dict[str, Any]]:
    """Copy the journal to Parquet under `out` (same tables and partitions, duplicates
    dropped, rows in time order). `out` must be new or empty unless `force` replaces it."""
    import duckdb

    root, out = Path(root), Path(out)
    check_version(root)
    if not tables(root):
        raise ConfigError(f"no journal at {root}", "--journal")
    if out.resolve() == root.resolve():
        raise ConfigError("write the Parquet copy somewhere else than the journal", "--to")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise ConfigError(f"{out} is not empty (--force replaces it)", "--to")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    for table in tables(root):
        scan = source(root, table)
        rows = f"SELECT {DEDUPE[table].format(scan=scan)}" if table in DEDUPE else \
            f"SELECT * FROM {scan} ORDER BY ts"
        columns = {row[0] for row in con.execute(f"DESCRIBE ({rows})").fetchall()}
        casts = [f"CAST({c} AS {DECIMAL_TYPE}) AS {c}" for c in DECIMAL_COLUMNS if c in columns]
        query = f"SELECT * REPLACE ({', '.join(casts)}) FROM ({rows})" if casts else rows
        con.execute(f"COPY ({query}) TO '{out / table}' "
                    "(FORMAT parquet, PARTITION_BY (date, symbol), COMPRESSION zstd)")
    (out / "VERSION").write_text(f"{SCHEMA_VERSION}\n")
    return info(out)
