"""One way to print rows for every command: JSON lines by default, `--table` for people."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from typing import Any

import click
import orjson


def output_options(func: Callable) -> Callable:
    """Add `--table` to a command; the command receives `table: bool`."""

    @click.option("--table", is_flag=True, help="Render rows as a table instead of JSON lines.")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def emit(rows: Iterable[dict[str, Any]], table: bool = False, title: str | None = None) -> None:
    """Write rows to stdout as JSON lines, or as one rich table when `table`."""
    if not table:
        out = sys.stdout.buffer
        for row in rows:
            out.write(orjson.dumps(row, default=str) + b"\n")
        out.flush()
        return
    from rich.console import Console
    from rich.table import Table

    rows = list(rows)
    grid = Table(title=title, show_lines=False)
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*(_cell(row.get(column)) for column in columns))
    Console(soft_wrap=False).print(grid)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)
