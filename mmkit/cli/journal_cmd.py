"""`mmkit journal`: what the journal holds, and its Parquet copy for growth."""

from __future__ import annotations

from pathlib import Path

import click

from mmkit.cli.common import load
from mmkit.cli.output import emit

JOURNAL_OPTION = click.option("--journal", "journal_path", metavar="DIR",
                              help="The journal (default: the config's journal.path).")


@click.group("journal")
def journal() -> None:
    """The journal that run, send and backtest write (docs/analysis.md).

    \b
    Examples:
      mmkit journal info --table
      mmkit journal compact --to journal-parquet
      duckdb -c "select * from read_parquet('journal-parquet/fills/**/*.parquet') limit 5"
    """


@journal.command("info")
@JOURNAL_OPTION
@click.option("--table", is_flag=True, help="A human table instead of JSON lines.")
@click.pass_context
def info_cmd(ctx: click.Context, journal_path: str | None, table: bool) -> None:
    """One line per table: rows (duplicates counted once), files, bytes, time range, symbols,
    runs and format."""
    from mmkit.journal import info

    emit(info(_root(ctx, journal_path)), table)


@journal.command("compact")
@JOURNAL_OPTION
@click.option("--to", "out", required=True, metavar="DIR", type=click.Path(file_okay=False),
              help="Where the Parquet copy goes (new or empty).")
@click.option("--force", is_flag=True, help="Replace what is in --to.")
@click.option("--table", is_flag=True, help="A human table instead of JSON lines.")
@click.pass_context
def compact_cmd(ctx: click.Context, journal_path: str | None, out: str, force: bool,
                table: bool) -> None:
    """Copy the journal to Parquet, partitioned by date and symbol like the original, with
    duplicate fills dropped. `mmkit pnl-report --journal DIR` reads the copy, and so does any
    engine that reads Parquet (copy it to object storage when one disk is not enough)."""
    from mmkit.journal import compact

    emit(compact(_root(ctx, journal_path), out, force=force), table)


def _root(ctx: click.Context, journal_path: str | None) -> Path:
    from mmkit.errors import ConfigError

    root = Path(journal_path or load(ctx).journal.path)
    if not root.is_dir():
        raise ConfigError(f"no journal directory {root}", "--journal")
    return root
