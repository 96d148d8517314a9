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

    console = Console(soft_wrap=False)
    if not console.is_terminal:  # into a file or a pipe: no screen to fit, keep rows whole
        console = Console(soft_wrap=False, width=240)
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:  # one table per kind of row: `account` prints totals and brackets
        groups.setdefault(row.get("type"), []).append(row)
    for kind, group in groups.items():
        _print_group(console, group, title or kind)


def _print_group(console, rows: list[dict[str, Any]], title: str | None) -> None:
    columns = _columns(rows)
    # headers may fold onto two lines; values may not
    wide = sum(max(min(len(c), 9), *(len(_cell(r.get(c))) for r in rows)) + 3 for c in columns)
    if wide <= console.width or (len(rows) > 1 and len(columns) <= 12):
        console.print(_grid(rows, columns, title))  # a ranking stays a table; headers fold
        return
    for row in rows:  # too wide for the terminal: one field per line, like psql's \\x
        name = " ".join(str(row[k]) for k in ("type", "symbol", "asset") if row.get(k))
        console.print(_grid([{"field": k, "value": _cell(row.get(k))} for k in columns],
                            ["field", "value"], name))


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every key in first-seen order, without the ones that say nothing in a table: a `type`
    all rows share, columns empty in every row, and a `ts` that is 0 in every row."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    return [c for c in columns
            if any(r.get(c) not in (None, "") for r in rows)
            and not (c == "ts" and not any(r.get(c) for r in rows))
            and not (c == "type" and len({r.get("type") for r in rows}) == 1)]


def _grid(rows: list[dict[str, Any]], columns: list[str], title: str | None):
    from rich.table import Table

    grid = Table(title=title, show_lines=False)
    for column in columns:  # values never break; a long header folds
        width = max((len(_cell(row.get(column))) for row in rows), default=0)
        grid.add_column(column, overflow="fold", min_width=min(width, 24))
    for row in rows:
        grid.add_row(*(_cell(row.get(column)) for column in columns))
    return grid


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)
