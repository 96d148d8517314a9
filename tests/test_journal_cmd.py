"""`mmkit journal info` and `compact`: the journal a backtest wrote, a fill replayed by a
"restart" counted once, and a Parquet copy that pnl-report reads to the same answer."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import orjson
import pytest


def mmkit(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmkit", *args], capture_output=True,
                          cwd=cwd, timeout=300)


def rows(result: subprocess.CompletedProcess) -> list[dict]:
    assert result.returncode == 0, result.stderr.decode()
    return [orjson.loads(x) for x in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def journal(tmp_path_factory):
    """A backtest's journal, plus one fill written again by a second run (a restart)."""
    root = tmp_path_factory.mktemp("journal")
    rows(mmkit("backtest", "--duration", "30m", "--seed", "4", "--journal", "j", cwd=root))
    (fills_file,) = (root / "j" / "fills").glob("*/*/*.jsonl")
    first = fills_file.read_bytes().splitlines()[0]
    (fills_file.parent / "run-again.jsonl").write_bytes(first + b"\n")
    return root


def test_info_counts_a_replayed_fill_once(journal):
    by_table = {row["table"]: row for row in rows(mmkit("journal", "info", "--journal", "j",
                                                        cwd=journal))}
    assert {"fills", "marks", "runs"} <= set(by_table)
    fills = by_table["fills"]
    lines = sum(len(p.read_bytes().splitlines())
                for p in (journal / "j" / "fills").glob("*/*/*.jsonl"))
    assert fills["rows"] == lines - 1 > 0 and fills["files"] == 2
    assert fills["format"] == "jsonl" and fills["symbols"] == ["ETHUSDC"]
    assert by_table["marks"]["rows"] > 1700  # one a second for half an hour


def test_compact_to_parquet_keeps_the_report(journal):
    compacted = rows(mmkit("journal", "compact", "--journal", "j", "--to", "pq", cwd=journal))
    assert {row["format"] for row in compacted} == {"parquet"}
    assert (journal / "pq" / "VERSION").read_text().strip() == "1"
    original = rows(mmkit("pnl-report", "--journal", "j", cwd=journal))
    assert rows(mmkit("pnl-report", "--journal", "pq", cwd=journal)) == original
    fills = next(row for row in compacted if row["table"] == "fills")
    count = duckdb.connect().execute(
        f"select count(*) from read_parquet('{journal}/pq/fills/**/*.parquet')").fetchone()[0]
    assert count == fills["rows"]  # the duplicate is gone from the copy itself

    # money columns are DECIMAL in Parquet: ad-hoc arithmetic works
    notional = duckdb.connect().execute(
        f"select sum(price * qty), sum(commission) from "
        f"read_parquet('{journal}/pq/fills/**/*.parquet')").fetchone()
    assert notional[0] > 0 and notional[1] > 0

    again = mmkit("journal", "compact", "--journal", "j", "--to", "pq", cwd=journal)
    assert again.returncode == 2 and b"not empty (--force replaces it)" in again.stderr
    forced = rows(mmkit("journal", "compact", "--journal", "j", "--to", "pq", "--force",
                        cwd=journal))
    assert [(r["table"], r["rows"]) for r in forced] == [(r["table"], r["rows"])
                                                         for r in compacted]


@pytest.mark.parametrize("setup, message", [
    ("missing", "no journal directory"),
    ("newer", "has schema version 99"),
])
def test_bad_journals_are_one_line_and_exit_2(tmp_path, setup, message):
    if setup == "newer":
        (tmp_path / "j" / "fills").mkdir(parents=True)
        (tmp_path / "j" / "VERSION").write_text("99\n")
    result = mmkit("journal", "info", "--journal", "j", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr.decode() and result.stderr.count(b"\n") == 1


def test_two_sessions_in_one_journal_both_count(tmp_path):
    """Each backtest (and each simulator) numbers its trades from the same start: a second
    session's fills share trade ids with the first's but are other fills, and count."""
    one = rows(mmkit("backtest", "--duration", "12m", "--seed", "4", "--journal", "j",
                     cwd=tmp_path))
    two = rows(mmkit("backtest", "--duration", "12m", "--seed", "5", "--journal", "j",
                     cwd=tmp_path))
    fills = one[-1]["fills"] + two[-1]["fills"]
    assert one[-1]["fills"] > 0 and two[-1]["fills"] > 0
    report = rows(mmkit("pnl-report", "--journal", "j", cwd=tmp_path))
    verdict = next(row for row in report if row["type"] == "verdict")
    assert verdict["fills"] == fills
