"""`mmkit backtest`: the bot's own strategy, risk and order code against the simulator's engine
in virtual time, over recordings or the synthetic market; `--grid` sweeps parameters."""

from __future__ import annotations

import heapq
import itertools
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import click

from mmkit.cli.common import load
from mmkit.cli.market_data import parse_interval_ms
from mmkit.cli.output import emit
from mmkit.errors import ConfigError
from mmkit.stream import LineWriter


@click.command("backtest")
@click.option("--data", "data", multiple=True, metavar="FILE", type=click.Path(dir_okay=False),
              help="A recording (mmkit .jsonl[.gz] or hftbacktest .gz); repeat for a "
                   "session's continuation files, or for other symbols (one account). "
                   "Default: the synthetic market.")
@click.option("--symbol", metavar="SYMBOL[,SYMBOL]", help="Symbol (default: the recording's, "
              "or ETHUSDC for the synthetic market); A,B trades both on one account.")
@click.option("--duration", default="1h", show_default=True, metavar="DURATION",
              help="Synthetic market only: how much market to generate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Synthetic market seed.")
@click.option("--latency", default="5ms", show_default=True, metavar="DURATION|journal:DIR",
              help="Order entry latency, each way; `journal:DIR` replays the order and "
                   "market-data latencies a run measured (its journal's order lines).")
@click.option("--market-latency", default="5ms", show_default=True, metavar="DURATION",
              help="Market data and user event latency.")
@click.option("--queue-model", default="risk_averse", show_default=True,
              help="risk_averse or prob_power[:n] (docs/simulator.md).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override a setting of the symbol's config, e.g. strategy.spreadTicks=3.")
@click.option("--grid", "grid", multiple=True, metavar="KEY=V1,V2,...",
              help="Sweep a setting (repeatable: the product of all); runs in parallel.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Processes for --grid (default: CPU count).")
@click.option("--lines", is_flag=True, help="Also write fill and risk lines (single run).")
@click.option("--journal", "journal_path", metavar="DIR", type=click.Path(file_okay=False),
              help="Write fills, orders, risk events and marks to this journal, for "
                   "`mmkit pnl-report --journal DIR` (single run).")
@click.option("--csv", "csv_path", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the result rows as CSV too.")
@click.option("--table", is_flag=True, help="A table instead of JSON lines.")
@click.pass_context
def backtest(ctx: click.Context, data: tuple[str, ...], symbol: str | None, duration: str,
             seed: int, latency: str, market_latency: str, queue_model: str,
             settings: tuple[str, ...], grid: tuple[str, ...], workers: int | None,
             lines: bool, journal_path: str | None, csv_path: str | None,
             table: bool) -> None:
    """Replay a market through the bot in virtual time and report what it would have made.

    \b
    Examples:
      mmkit backtest --data ../shared/data/market/binance_usdm_hftbacktest/ethusdt_20240808.gz
      mmkit backtest --duration 6h --seed 3 --set strategy.spreadTicks=4 --table
      mmkit backtest --data eth.jsonl.gz --grid strategy.spreadTicks=1,2,4 \\
        --grid strategy.skew=0.5,1 --table
      mmkit backtest --data eth.gz --data btc.gz --latency journal:journal
    """
    from mmkit.cli.settings import settings_tree

    config = load(ctx)
    job = {"config_path": getattr(ctx.find_root().obj, "config_path", None),
           "data": list(data), "symbol": symbol.upper() if symbol else None,
           "duration_ms": parse_interval_ms(duration), "seed": seed,
           **_latency(latency, market_latency),
           "queue_model": queue_model, "settings": settings_tree(settings) if settings else {}}
    del config  # validated above; each run loads its own (in its own process for --grid)
    variants = _variants(grid)
    if len(variants) == 1:
        rows = _single(job, variants[0], lines, journal_path)
    else:
        if lines or journal_path:
            raise click.UsageError("--lines and --journal are for a single run, not --grid")
        rows = _ranked(_sweep(job, variants, workers))
    _warn_about_limits(rows)
    if csv_path:
        _write_csv(csv_path, rows)
    emit([_flat(row, brief=True) for row in rows] if table else rows, table)


def _single(job: dict[str, Any], variant: dict[str, str], lines: bool,
            journal_path: str | None) -> list[dict[str, Any]]:
    from mmkit.journal import Journal

    out = LineWriter()
    journal = Journal(journal_path, f"bt-{int(time.time())}") if journal_path else None

    def emit_line(line: dict[str, Any]) -> None:
        if journal is not None:
            journal.write(line)
        if lines and line["type"] != "mark":
            out.write(line)

    try:
        rows = run_one({**job, "grid": variant}, emit_line if lines or journal else None)
        if journal is not None:
            for row in rows:
                journal.write(row)
        return rows
    finally:
        if journal is not None:
            journal.close()


HOLDING_GUARDS = {"daily_notional": "risk.dailyMax", "order_rate": "risk.maxOrdersPerWindow",
                  "kill_switch": "risk.killSwitchLoss"}


def _warn_about_limits(rows: list[dict[str, Any]]) -> None:
    """Say when a risk limit stopped the strategy early: the numbers then describe the
    limit as much as the strategy (a sweep of spreads would look flat)."""
    for guard, key in HOLDING_GUARDS.items():
        hours = [row["guardsActed"][guard] for row in rows if guard in row.get("guardsActed", {})]
        total = rows[0]["hours"] if rows else 0
        if hours and min(hours) < 0.5 * total:
            print(f"mmkit backtest: note: the {guard} guard held orders from {min(hours):.2f} h "
                  f"of {total:.2f} h in at least one run; `--set {key}=…` to see the strategy "
                  "without that limit", file=sys.stderr)


def _latency(latency: str, market_latency: str) -> dict[str, Any]:
    if latency.startswith("journal:"):
        root = latency.removeprefix("journal:")
        if not os.path.isdir(root):
            raise ConfigError(f"no journal directory {root!r}", "--latency")
        return {"latency_journal": root, "order_ms": 0, "market_ms": 0}
    return {"order_ms": parse_interval_ms(latency),
            "market_ms": parse_interval_ms(market_latency)}


def _variants(grid: tuple[str, ...]) -> list[dict[str, str]]:
    axes = []
    for item in grid:
        key, sep, values = item.partition("=")
        if not sep or "." not in key or not values:
            raise ConfigError(f"expected KEY=V1,V2 with a dotted key, got {item!r}", "--grid")
        axes.append([(key.strip(), v.strip()) for v in values.split(",") if v.strip()])
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def run_one(job: dict[str, Any], emit_line=None) -> list[dict[str, Any]]:
    """One backtest from a plain dict (picklable, for --grid's worker processes): a row per
    symbol (several symbols trade one account)."""
    from mmkit.backtest import Backtest, Latency, ReplayedLatency
    from mmkit.cli.settings import settings_tree
    from mmkit.config import SymbolConfig, load_config
    from mmkit.sim.engine import EngineConfig
    from mmkit.sim.instruments import default_specs
    from mmkit.sim.market import open_market, recorded_symbol

    specs = default_specs()
    by_symbol = _files_by_symbol(job["data"], recorded_symbol)
    wanted = [s for s in (job["symbol"] or "").split(",") if s]
    if by_symbol and wanted and set(wanted) != set(by_symbol):
        raise ConfigError(f"the recording holds {', '.join(by_symbol)}, not "
                          f"{', '.join(wanted)}", "--symbol")
    symbols = list(by_symbol) or wanted or ["ETHUSDC"]
    for symbol in symbols:
        if symbol not in specs:
            raise ConfigError(f"unknown symbol {symbol!r}; known: {', '.join(specs)}",
                              "--symbol")
    tree = _merge(job["settings"], settings_tree(tuple(f"{k}={v}"
                                                       for k, v in job["grid"].items())))
    overrides = {"symbols": {symbol: tree for symbol in symbols}} if tree else {}
    config = load_config(job["config_path"], overrides=overrides)
    engine = EngineConfig(seed=job["seed"], queue_model=job["queue_model"])
    bots = Backtest.together([(specs[s], config.symbols.get(s, SymbolConfig())) for s in symbols],
                             engine_config=engine, emit=emit_line,
                             latency=Latency(job["order_ms"], job["market_ms"]))
    for bot in bots:
        if job.get("latency_journal"):
            try:
                bot.latency = ReplayedLatency.from_journal(job["latency_journal"], bot.symbol,
                                                           job["seed"])
            except ValueError as exc:
                raise ConfigError(str(exc), "--latency") from None
    if by_symbol:
        markets = [open_market(paths, specs[s]) for s, paths in by_symbol.items()]
    else:
        from mmkit.sim.market import SyntheticMarket

        markets = [iter(SyntheticMarket(specs[s], seed=job["seed"] + i,
                                        duration_ms=job["duration_ms"]))
                   for i, s in enumerate(symbols)]
    market = markets[0] if len(markets) == 1 else heapq.merge(*markets, key=lambda t: t.at)
    started = time.perf_counter()
    bots[0].run(market)
    wall = round(time.perf_counter() - started, 3)
    rows = []
    for bot in bots:
        row = bot.summary.as_line()
        row["params"] = job["grid"]
        row["latency"] = {"orderMs": bot.latency.order_ms, "marketMs": bot.latency.market_ms,
                          "model": _latency_model(bot.latency)}
        row["wallSeconds"] = wall
        row["eventsPerSecond"] = int(sum(b.summary.events for b in bots) / max(wall, 1e-9))
        rows.append(row)
    return rows


def _files_by_symbol(paths: list[str], recorded_symbol) -> dict[str, list[str]]:
    """Recordings grouped by the symbol each holds, in the order given."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault(_recording_symbol([path], recorded_symbol), []).append(path)
    return groups


def _recording_symbol(paths: list[str], recorded_symbol) -> str:
    from mmkit.sim.instruments import default_specs

    named = paths[0].rsplit("/", 1)[-1].split("_")[0].split(".")[0].upper()
    return named if named in default_specs() else (recorded_symbol(paths) or named)


def _merge(base: dict, top: dict) -> dict:
    merged = dict(base)
    for key, value in top.items():
        merged[key] = _merge(merged.get(key, {}), value) if isinstance(value, dict) else value
    return merged


def _ranked(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Runs best first by net PnL (summed over their symbols); each row gets its run's rank."""
    runs = sorted(runs, key=lambda rows: sum(float(r["netPnl"]) for r in rows), reverse=True)
    for rank, rows in enumerate(runs, 1):
        for row in rows:
            row["rank"] = rank
    return [row for rows in runs for row in rows]


def _sweep(job: dict[str, Any], variants: list[dict[str, str]], workers: int | None) -> list:
    from rich.progress import Progress

    rows = []
    with ProcessPoolExecutor(max_workers=workers) as pool, \
            Progress(transient=True, console=_stderr_console()) as progress:
        task = progress.add_task("backtests", total=len(variants))
        futures = [pool.submit(run_one, {**job, "grid": v}) for v in variants]
        for future in as_completed(futures):
            rows.append(future.result())
            progress.advance(task)
    return rows


def _stderr_console():
    from rich.console import Console

    return Console(file=sys.stderr)


BRIEF = {"symbol": "symbol", "fills": "fills", "makerFills": "maker", "volume": "volume", "fees": "fees",
         "netPnl": "net", "netPnlPerHour": "net/h", "position": "pos"}
FULL = ("rank", "symbol", "hours", "fills", "makerFills", "volume", "realizedPnl", "fees",
        "funding", "unrealizedPnl", "netPnl", "netPnlPerHour", "position", "orders",
        "rejects", "postOnlyRejects", "riskEvents", "eventsPerSecond")


def _flat(row: dict[str, Any], brief: bool = False) -> dict[str, Any]:
    """A table or CSV row: the swept parameters first, then the numbers that decide."""
    flat = {"rank": row["rank"]} if "rank" in row else {}
    flat.update({k.split(".")[-1]: v for k, v in (row.get("params") or {}).items()})
    if brief:
        flat.update({short: row[k] for k, short in BRIEF.items() if k in row})
    else:
        flat.update({k: row[k] for k in FULL if k in row})
    return flat


def _write_csv(path: str, rows: list[dict[str, Any]]) -> None:
    import csv

    flat = [_flat(row) for row in rows]
    columns = list(dict.fromkeys(k for row in flat for k in row))
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat)


def _latency_model(latency) -> str:
    from mmkit.backtest import ReplayedLatency

    if not isinstance(latency, ReplayedLatency):
        return "constant"
    return "journal (other symbols)" if latency.borrowed else "journal"
