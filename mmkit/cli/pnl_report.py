"""`mmkit pnl-report`: options and output around mmkit.report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from mmkit.cli.common import load
from mmkit.cli.output import emit
from mmkit.errors import ConfigError
from mmkit.report import plot, report


@click.command("pnl-report")
@click.option("--journal", "journal_path", metavar="DIR",
              help="The journal (default: the config's journal.path).")
@click.option("--since", metavar="DATE", help="From this UTC date or time (ISO 8601).")
@click.option("--until", metavar="DATE", help="Up to this UTC date or time (exclusive).")
@click.option("--symbol", metavar="SYMBOL", help="One symbol (default: all).")
@click.option("--by", "bucket", type=click.Choice(["hour", "day"]), default="day",
              show_default=True, help="Period of each row.")
@click.option("--table", is_flag=True, help="Human tables instead of JSON lines.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout instead of JSON lines.")
@click.option("--plot", "plot_path", metavar="PNG", type=click.Path(dir_okay=False),
              help="Also draw the equity curve, inventory and markouts to this PNG "
                   "(needs matplotlib: pip install mmkit[plot]).")
@click.pass_context
def pnl_report(ctx: click.Context, journal_path: str | None, since: str | None,
               until: str | None, symbol: str | None, bucket: str, table: bool,
               as_csv: bool, plot_path: str | None) -> None:
    """Did it make money after fees, and why: PnL, fees, funding, volume, maker share, spread
    capture, markouts and the mark-to-market equity change per period (every period with
    fills, funding or marks), then the verdict on scalping (docs/analysis.md).

    \b
    Examples:
      mmkit pnl-report --table
      mmkit pnl-report --since 2026-11-01 --by hour --symbol ETHUSDC --csv > pnl.csv
    """
    root = Path(journal_path or load(ctx).journal.path)
    since_ms, until_ms = _ms(since, "--since", 0), _ms(until, "--until", 2**62)
    if until_ms <= since_ms:
        raise click.BadParameter(f"{until} is not after --since {since}", param_hint="--until")
    rows = report(root, since_ms, until_ms, (symbol or "%").upper(), bucket)
    if plot_path:
        plot(root, rows, since_ms, until_ms, (symbol or "%").upper(), plot_path)
    if as_csv:
        _print_csv(rows)
    else:
        emit(rows, table)


def _ms(text: str | None, flag: str, default: int) -> int:
    if text is None:
        return default
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"expected an ISO date or time, got {text!r}", flag) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _print_csv(rows: list[dict[str, Any]]) -> None:
    import csv
    import sys

    for kind in dict.fromkeys(row["type"] for row in rows):
        group = [row for row in rows if row["type"] == kind]
        writer = csv.DictWriter(sys.stdout, fieldnames=list(group[0]))
        writer.writeheader()
        writer.writerows(group)
