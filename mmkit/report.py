"""The answer to "did it make money after fees, and why": the SQL in sql/ (shipped as
mmkit/sql) run by DuckDB over the journal (mmkit.journal), and its plot. `mmkit pnl-report`
is the shell around it; benchmarks/report_bench.py times `report`."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from mmkit.errors import ConfigError, InputError, MmkitError

SQL_DIR = Path(__file__).resolve().parent / "sql"  # ./sql links here


def report(root: Path, since_ms: int, until_ms: int, symbol: str, bucket: str) -> list[dict]:
    import duckdb

    from mmkit.journal import check_version

    if not any((root / table).is_dir() for table in ("fills", "marks", "funding")):
        raise InputError(f"no journal at {root} (run `mmkit run` or `mmkit backtest "
                         "--journal DIR` first, or pass --journal)", field="journal")
    check_version(root)
    params = {"root": str(root), "since_ms": str(since_ms), "until_ms": str(until_ms),
              "symbol": symbol.replace("'", ""), "bucket": bucket}
    con = duckdb.connect()
    try:
        create_views(con, root)
        rows = _rows(con, _sql("pnl_report.sql", params))
        if not rows:
            raise InputError(*_nothing_in(con, root, symbol))
        con.execute(_sql("equity.sql", params))
        verdicts = _rows(con, _sql("verdict.sql", params))
        return rows + verdicts + _no_fill_verdicts(rows, verdicts)
    except duckdb.Error as exc:  # a journal DuckDB cannot read: one line, not a traceback
        raise MmkitError(f"reading the journal at {root} failed: "
                         f"{str(exc).splitlines()[0]}") from None


def _nothing_in(con, root: Path, symbol: str) -> tuple[str, str]:
    """Why the report is empty (message, option): the symbol is not in the journal, or the
    range misses it."""
    held = [row[0] for row in con.execute(
        "SELECT DISTINCT symbol FROM marks UNION SELECT DISTINCT symbol FROM fills "
        "ORDER BY 1").fetchall()]
    if symbol != "%" and symbol not in held:
        return (f"no {symbol} in {root} (it holds {', '.join(held) or 'nothing yet'})",
                "--symbol")
    return (f"no fills, funding or marks in {root} in that range (`mmkit journal info` "
            "shows the time range it holds)", "--since/--until")


def _no_fill_verdicts(rows: list[dict], verdicts: list[dict]) -> list[dict]:
    """A symbol that ran (marks, funding) without a fill still gets its verdict line."""
    answered = {v["symbol"] for v in verdicts}
    out = []
    for name in dict.fromkeys(r["symbol"] for r in rows if r["symbol"] not in answered):
        mine = [r for r in rows if r["symbol"] == name]
        net = sum(Decimal(r["net_pnl"]) for r in mine)
        out.append({"type": "verdict", "symbol": name, "ts": mine[-1]["ts"], "fills": 0,
                    "net_pnl": format(net, "f"), "edge_5s_bps": None, "fee_bps": None,
                    "edge_after_fees_bps": None, "max_drawdown": None,
                    "scalping": "no fills in this range: nothing to tell yet"})
    return out


def plot(root: Path, rows: list[dict], since_ms: int, until_ms: int, symbol: str,
         path: str) -> None:
    """Three panels a person reads at a glance: equity over time (sql/equity.sql), inventory
    over time, and the markout curve (bps against seconds after the fill) with the fee line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'mmkit[plot]'", "--plot") from None
    import duckdb

    con = duckdb.connect()
    create_views(con, root)
    con.execute(_sql("equity.sql", {"since_ms": str(since_ms), "until_ms": str(until_ms),
                                    "symbol": symbol.replace("'", "")}))
    curves: dict[str, list] = {}
    for name, time, value, position in con.execute(
            "SELECT symbol, time, CAST(equity - first(equity) OVER (PARTITION BY symbol "
            "ORDER BY ts) AS DOUBLE), CAST(position AS DOUBLE) FROM equity ORDER BY ts"
    ).fetchall():
        curves.setdefault(name, []).append((time, value, position))
    verdicts = [r for r in rows if r["type"] == "pnl" and r["fills"]]  # markouts need fills
    fig, (equity, inventory, markouts) = plt.subplots(3, 1, figsize=(10, 9))
    for name, points in curves.items():
        times = [p[0] for p in points]
        equity.plot(times, [p[1] for p in points], label=name)
        inventory.step(times, [p[2] for p in points], where="post", label=name)
    if len(curves) > 1:
        equity.legend(fontsize="small")
    equity.set_title("equity since the start: realized − fees + funding + unrealized at mid "
                     "(quote asset)")
    equity.axhline(0, color="grey", linewidth=0.5)
    inventory.set_title("position (base asset)")
    inventory.axhline(0, color="grey", linewidth=0.5)
    horizons = [0, 1, 5, 30, 60]
    keys = ["spread_capture_bps", "markout_1s_bps", "markout_5s_bps", "markout_30s_bps",
            "markout_60s_bps"]
    for row in verdicts:
        markouts.plot(horizons, [row[k] if row[k] is not None else float("nan") for k in keys],
                      marker="o", label=f"{row['symbol']} {row['period']}")
        markouts.axhline(row["fee_bps"] or 0, color="red", linestyle="--", linewidth=0.8)
    markouts.set_title("markout: bps in our favour, seconds after the fill (red: fees)")
    markouts.set_xlabel("seconds after the fill")
    if len(verdicts) <= 10:
        markouts.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# A table the journal does not have yet is an empty view of the same shape.
EMPTY = {
    "fills": "SELECT NULL::VARCHAR AS symbol, NULL::BIGINT AS tradeId, NULL::BIGINT AS orderId, "
             "NULL::VARCHAR AS clientOrderId, NULL::VARCHAR AS side, NULL::BIGINT AS ts, "
             "NULL::TIMESTAMPTZ AS time, NULL::DECIMAL(38, 12) AS price, "
             "NULL::DECIMAL(38, 12) AS qty, NULL::DECIMAL(38, 12) AS notional, "
             "NULL::INTEGER AS sign, NULL::BOOLEAN AS maker, NULL::DECIMAL(38, 12) AS fee, "
             "NULL::VARCHAR AS fee_asset, NULL::DECIMAL(38, 12) AS realized_pnl, "
             "NULL::VARCHAR AS run WHERE false",
    "marks": "SELECT NULL::VARCHAR AS symbol, NULL::BIGINT AS ts, NULL::TIMESTAMPTZ AS time, "
             "NULL::DECIMAL(38, 12) AS mid, NULL::DECIMAL(38, 12) AS position, "
             "NULL::DECIMAL(38, 12) AS net_pnl, NULL::VARCHAR AS run WHERE false",
    "funding": "SELECT NULL::VARCHAR AS symbol, NULL::BIGINT AS ts, NULL::TIMESTAMPTZ AS time, "
               "NULL::DECIMAL(38, 12) AS amount, NULL::VARCHAR AS asset, NULL::VARCHAR AS run "
               "WHERE false",
}


def create_views(con, root: Path) -> None:
    """The relations of sql/views.sql, loaded once into temporary tables (each over its
    table's files), or empty when the journal has none of them (a journal written before
    funding was journaled, a run without marks)."""
    from mmkit.journal import source

    scans = {table: source(root, table) for table in ("fills", "marks", "funding")}
    text = "\n".join(line for line in _sql("views.sql", scans).splitlines()
                     if not line.lstrip().startswith("--"))
    con.execute("SET TimeZone = 'UTC'")  # periods are UTC days and hours, whatever the host
    for statement in filter(str.strip, text.split(";")):
        table = statement.split("CREATE OR REPLACE VIEW", 1)[-1].split()[0]
        if (root / table).is_dir():
            # read the JSON once into a table: the report uses marks seven times
            con.execute(statement.replace("CREATE OR REPLACE VIEW", "CREATE OR REPLACE TEMP TABLE", 1))
        elif table in EMPTY:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {EMPTY[table]}")


def _sql(name: str, params: dict[str, str]) -> str:
    text = (SQL_DIR / name).read_text()
    for key, value in params.items():
        text = text.replace("{" + key + "}", value)
    return text


def _rows(con, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [{k: _plain(v) for k, v in zip(names, row, strict=True)} for row in cursor.fetchall()]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    return value
