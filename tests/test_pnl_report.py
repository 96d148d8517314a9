"""The journal and `mmkit pnl-report` against hand-computed numbers: fees, realized PnL, spread
capture and markouts; a fill journaled twice counts once; bad journals are clear errors."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from mmkit.journal import Journal
from mmkit.lines import check_line

T0 = 1_795_500_000_000  # 2026-11-24 06:40 UTC


def fill(trade_id: int, side: str, price: str, qty: str, fee: str, realized: str, ts: int):
    return {"type": "fill", "symbol": "ETHUSDC", "ts": ts, "tradeId": trade_id,
            "orderId": trade_id, "clientOrderId": f"mm-t-{trade_id}", "side": side,
            "price": price, "qty": qty, "maker": True, "commission": fee,
            "commissionAsset": "USDC", "realizedPnl": realized, "source": "stream"}


def mark(ts: int, mid: str, position: str = "0", net: str = "0"):
    return {"type": "mark", "symbol": "ETHUSDC", "ts": ts, "mid": mid, "position": position,
            "netPnl": net}


@pytest.fixture
def journal_dir(tmp_path):
    root = tmp_path / "journal"
    first = Journal(root, "run-a")
    for ts, mid in [(T0 - 1000, "3000.50"), (T0 + 1000, "3000.80"), (T0 + 5000, "3001.00"),
                    (T0 + 9000, "3000.20"), (T0 + 14000, "3000.00")]:
        first.write(mark(ts, mid))
    # bought 0.010 at 3000.00 (mid 3000.50), sold it at 3001.00 (mid 3001.00): both makers
    first.write(fill(1, "BUY", "3000.00", "0.010", "0.00600000", "0", T0))
    first.write(fill(2, "SELL", "3001.00", "0.010", "0.00600200", "0.01000000", T0 + 8000))
    first.write({"type": "funding", "symbol": "ETHUSDC", "ts": T0 + 3000, "amount": "-0.001",
                 "asset": "USDC"})  # funding paid while long
    first.close()
    again = Journal(root, "run-b")  # a restart replays the last fill: counted once
    again.write(fill(2, "SELL", "3001.00", "0.010", "0.00600200", "0.01000000", T0 + 8000))
    again.close()
    return root


def pnl_report(*args: str, cwd=None, tz: str = "America/New_York"):
    """The report in a subprocess, on a host clock that is not UTC: periods must be UTC."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
    env["TZ"] = tz
    return subprocess.run([sys.executable, "-m", "mmkit", "pnl-report", *args],
                          capture_output=True, env=env, cwd=cwd, timeout=60)


def test_report_matches_the_hand_computation(journal_dir, tmp_path):
    result = pnl_report("--journal", str(journal_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert all(check_line(row) == [] for row in rows)
    (pnl,) = [r for r in rows if r["type"] == "pnl"]
    assert pnl["fills"] == 2 and pnl["maker_share"] == 1.0
    assert pnl["volume"] == "60.01"
    assert pnl["realized_pnl"] == "0.01" and pnl["fees"] == "0.012002"
    assert pnl["funding"] == "-0.001"
    assert pnl["net_pnl"] == "-0.003002"  # 0.01 − 0.012002 − 0.001
    # capture at the mark before each fill: +0.50 × 0.010 on the buy, 0 on the sell
    assert pnl["spread_capture"] == "0.005"
    # 5 s markouts, at the mark at or before fill + 5 s: the buy sees 3001.00 (+1.00), the
    # sell 3000.20 (+0.80): (0.0100 + 0.0080) / 60.01 × 10,000 = 2.9995 bps
    assert pnl["markout_5s_bps"] == 3.0
    (verdict,) = [r for r in rows if r["type"] == "verdict"]
    assert verdict["fills"] == 2 and "not enough fills" in verdict["scalping"]
    assert verdict["net_pnl"] == pnl["net_pnl"]  # funding included in both


def test_by_hour_and_range(journal_dir, tmp_path):
    rows = [orjson.loads(x) for x in pnl_report("--journal", str(journal_dir), "--by", "hour",
                                                 cwd=tmp_path).stdout.splitlines()]
    assert [r["period"] for r in rows if r["type"] == "pnl"] == ["2026-11-24 06:00"]
    empty = pnl_report("--journal", str(journal_dir), "--since", "2026-11-25", cwd=tmp_path)
    assert empty.returncode == 2 and b"no fills" in empty.stderr


def test_newer_schema_and_missing_journal_are_refused(journal_dir, tmp_path):
    (journal_dir / "VERSION").write_text("99\n")
    newer = pnl_report("--journal", str(journal_dir), cwd=tmp_path)
    assert newer.returncode == 2 and b"schema version 99" in newer.stderr
    missing = pnl_report("--journal", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.count(b"\n") == 1


def test_csv_output(journal_dir, tmp_path):
    result = pnl_report("--journal", str(journal_dir), "--csv", cwd=tmp_path)
    header = result.stdout.splitlines()[0].decode()
    assert header.startswith("type,symbol,ts,period,fills")


def test_a_torn_last_line_is_skipped(journal_dir, tmp_path):
    """A killed writer can leave half a line; the report reads around it."""
    part = next((journal_dir / "fills").rglob("run-b.jsonl"))
    with open(part, "ab") as fh:
        fh.write(b'{"type": "fill", "symbol": "ETHUS')
    result = pnl_report("--journal", str(journal_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (pnl,) = [orjson.loads(x) for x in result.stdout.splitlines() if b'"pnl"' in x]
    assert pnl["fills"] == 2


def test_plot_writes_a_png(journal_dir, tmp_path):
    pytest.importorskip("matplotlib", reason="--plot needs the plot extra (matplotlib)")
    png = tmp_path / "pnl.png"
    result = pnl_report("--journal", str(journal_dir), "--plot", str(png), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
