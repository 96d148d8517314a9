"""The journal and `mmkit pnl-report` against hand-computed numbers: fees, realized PnL, spread
capture, markouts, funding, mark-to-market (unrealized and equity change) and drawdown; periods
with only funding or only marks; a fill journaled twice counts once; bad journals are clear
errors."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from mmkit.journal import Journal
from mmkit.lines import check_line

T0 = 1_795_500_000_000  # 2026-11-24 06:00 UTC


def fill(trade_id: int, side: str, price: str, qty: str, fee: str, realized: str, ts: int,
         maker: bool = True):
    return {"type": "fill", "symbol": "ETHUSDC", "ts": ts, "tradeId": trade_id,
            "orderId": trade_id, "clientOrderId": f"mm-t-{trade_id}", "side": side,
            "price": price, "qty": qty, "maker": maker, "commission": fee,
            "commissionAsset": "USDC", "realizedPnl": realized, "source": "stream"}


def mark(ts: int, mid: str, position: str = "0", net: str = "0"):
    return {"type": "mark", "symbol": "ETHUSDC", "ts": ts, "mid": mid, "position": position,
            "netPnl": net}


@pytest.fixture
def journal_dir(tmp_path):
    root = tmp_path / "journal"
    first = Journal(root, "run-a")
    for ts, mid, position in [(T0 - 1000, "3000.50", "0"), (T0 + 1000, "3000.80", "0.010"),
                              (T0 + 5000, "3001.00", "0.010"), (T0 + 9000, "3000.20", "0"),
                              (T0 + 14000, "3000.00", "0")]:
        first.write(mark(ts, mid, position))
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
    # flat at both ends of the day: nothing unrealized, the equity change is the net PnL
    assert pnl["position_end"] == "0" and pnl["mid_end"] == "3000"
    assert pnl["unrealized_change"] == "0" and pnl["equity_change"] == "-0.003002"
    # equity at the marks: 0; 0.010 × 3000.80 − (30.00 + 0.006) = 0.002; after 0.001 funding
    # 0.010 × 3001.00 − 30.007 = 0.003 (the peak); flat after the sell: −0.003002
    assert verdict["max_drawdown"] == "0.006002"


def test_by_hour_and_range(journal_dir, tmp_path):
    rows = [orjson.loads(x) for x in pnl_report("--journal", str(journal_dir), "--by", "hour",
                                                 cwd=tmp_path).stdout.splitlines()]
    # the first mark (05:59:59) makes a period of its own: no fills, flat, nothing changed
    early, pnl = [r for r in rows if r["type"] == "pnl"]
    assert (early["period"], pnl["period"]) == ("2026-11-24 05:00", "2026-11-24 06:00")
    assert early["fills"] == 0 and early["net_pnl"] == "0" and early["equity_change"] == "0"
    assert early["maker_share"] is None and early["fee_bps"] is None
    assert pnl["fills"] == 2 and pnl["equity_change"] == "-0.003002"
    empty = pnl_report("--journal", str(journal_dir), "--since", "2026-11-25", cwd=tmp_path)
    assert empty.returncode == 2 and b"no fills, funding or marks" in empty.stderr
    other = pnl_report("--journal", str(journal_dir), "--symbol", "BTCUSDT", cwd=tmp_path)
    assert other.returncode == 2 and b"no BTCUSDT in" in other.stderr
    backwards = pnl_report("--journal", str(journal_dir), "--since", "2026-11-25", "--until",
                           "2026-11-24", cwd=tmp_path)
    assert backwards.returncode == 2 and b"not after --since" in backwards.stderr
    for result in (empty, other, backwards):
        assert b"Error: " in result.stderr and b"Traceback" not in result.stderr


def test_a_period_with_only_funding(journal_dir, tmp_path):
    """Funding two days later, with no fills and no marks that day: its own row, in the net
    PnL of that day and of the verdict."""
    later = Journal(journal_dir, "run-c")
    later.write({"type": "funding", "symbol": "ETHUSDC", "ts": T0 + 2 * 86_400_000,
                 "amount": "-0.0025", "asset": "USDC"})
    later.close()
    result = pnl_report("--journal", str(journal_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert all(check_line(row) == [] for row in rows)
    first, funded = [r for r in rows if r["type"] == "pnl"]
    assert first["period"] == "2026-11-24 00:00" and first["net_pnl"] == "-0.003002"
    assert funded["period"] == "2026-11-26 00:00"  # the 25th has nothing: no row
    assert funded["fills"] == 0 and funded["volume"] == "0" and funded["realized_pnl"] == "0"
    assert funded["fees"] == "0" and funded["spread_capture"] == "0"
    assert funded["funding"] == "-0.0025" and funded["net_pnl"] == "-0.0025"
    assert funded["maker_share"] is None
    assert all(funded[k] is None for k in funded if k.endswith("_bps"))
    # flat: valued at the last known mid (the 24th's last mark), nothing unrealized
    assert funded["position_end"] == "0" and funded["mid_end"] == "3000"
    assert funded["unrealized_change"] == "0" and funded["equity_change"] == "-0.0025"
    (verdict,) = [r for r in rows if r["type"] == "verdict"]
    assert verdict["net_pnl"] == "-0.005502"  # −0.003002 − 0.0025: the sum of the rows


@pytest.fixture
def holding_dir(tmp_path):
    """Long 0.010 from 06:00 to 08:00: bought at 2999.90, held through an hour with only marks,
    funding paid at 08:00, sold at 3003.10."""
    root = tmp_path / "holding"
    j = Journal(root, "run-h")
    hour = 3_600_000
    for ts, mid, position in [
        (T0 + 1000, "3000.00", "0"),
        # written before the fill's stream event arrived (as in `run`): its position lags.
        # Positions come from the fills, so this does not matter.
        (T0 + 3000, "3000.40", "0"),
        (T0 + hour - 1000, "3001.00", "0.010"),  # 06:59:59, the 06:00 period's last mark
        (T0 + hour + 500, "3002.00", "0.010"),  # 07:00: marks only
        (T0 + 2 * hour - 1000, "3004.50", "0.010"),
        (T0 + 2 * hour + 50_000, "3002.00", "0.010"),  # 08:00: funding, then the sell
        (T0 + 2 * hour + 200_000, "3003.00", "0"),
    ]:
        j.write(mark(ts, mid, position))
    j.write(fill(1, "BUY", "2999.90", "0.010", "0.00599980", "0", T0 + 2000))
    j.write({"type": "funding", "symbol": "ETHUSDC", "ts": T0 + 2 * hour, "amount": "-0.003",
             "asset": "USDC"})
    j.write(fill(2, "SELL", "3003.10", "0.010", "0.00600620", "0.03200000",
                 T0 + 2 * hour + 100_000))
    j.close()
    return root


def test_unrealized_and_equity_change_by_hour(holding_dir, tmp_path):
    result = pnl_report("--journal", str(holding_dir), "--by", "hour", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert all(check_line(row) == [] for row in rows)
    six, seven, eight = [r for r in rows if r["type"] == "pnl"]
    assert [six["period"], seven["period"], eight["period"]] == [
        "2026-11-24 06:00", "2026-11-24 07:00", "2026-11-24 08:00"]
    # 06:00: flat at the start; long 0.010 at the end, valued at the 06:59:59 mid 3001.00:
    # 0.010 × 3001.00 − 0.010 × 2999.90 = 0.011 unrealized; net = −0.0059998 (the fee)
    assert six["position_end"] == "0.01" and six["mid_end"] == "3001"
    assert six["unrealized_change"] == "0.011" and six["net_pnl"] == "-0.0059998"
    assert six["equity_change"] == "0.0050002"
    # 07:00, marks only: the same 0.010 from 3001.00 to 3004.50 = 0.035, all unrealized
    assert seven["fills"] == 0 and seven["net_pnl"] == "0" and seven["funding"] == "0"
    assert seven["maker_share"] is None and seven["markout_5s_bps"] is None
    assert seven["position_end"] == "0.01" and seven["mid_end"] == "3004.5"
    assert seven["unrealized_change"] == "0.035" and seven["equity_change"] == "0.035"
    # 08:00: sold at 3003.10, realized 0.010 × (3003.10 − 2999.90) = 0.032; the unrealized
    # 0.010 × (3004.50 − 2999.90) = 0.046 at 08:00 is gone; net = 0.032 − 0.0060062 − 0.003
    assert eight["position_end"] == "0" and eight["mid_end"] == "3003"
    assert eight["realized_pnl"] == "0.032" and eight["funding"] == "-0.003"
    assert eight["net_pnl"] == "0.0229938" and eight["unrealized_change"] == "-0.046"
    assert eight["equity_change"] == "-0.0230062"
    # the rows add up: 0.0050002 + 0.035 − 0.0230062 = 0.032 − 0.012006 − 0.003 = 0.016994
    (verdict,) = [r for r in rows if r["type"] == "verdict"]
    assert verdict["net_pnl"] == "0.016994"
    # equity = position × mid − Σ (side × price × qty + fee) + funding, at each mark:
    # peak 0.010 × 3004.50 − 30.0049998 = 0.0400002 at 07:59:59; after the funding, at 08:00:50
    # 0.010 × 3002.00 − 30.0079998 = 0.0120002: a fall of 0.028
    assert verdict["max_drawdown"] == "0.028"


def test_equity_by_day_and_since(holding_dir, tmp_path):
    rows = [orjson.loads(x) for x in pnl_report("--journal", str(holding_dir),
                                                 cwd=tmp_path).stdout.splitlines()]
    (day,) = [r for r in rows if r["type"] == "pnl"]
    # flat to flat within the day: nothing unrealized, equity change = net PnL
    assert day["net_pnl"] == "0.016994" and day["unrealized_change"] == "0"
    assert day["equity_change"] == "0.016994" and day["position_end"] == "0"
    # from 07:00 the report opens long 0.010 (the fill before --since), valued at 3001.00
    result = pnl_report("--journal", str(holding_dir), "--by", "hour", "--since",
                        "2026-11-24T07:00", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    seven, eight = [orjson.loads(x) for x in result.stdout.splitlines()
                    if b'"pnl"' in x]
    assert seven["period"] == "2026-11-24 07:00" and seven["unrealized_change"] == "0.035"
    assert eight["unrealized_change"] == "-0.046"
    # by day from 07:00: one row, opened long at 3001.00: 0.035 − 0.046 + 0.0229938
    (day,) = [orjson.loads(x) for x in pnl_report(
        "--journal", str(holding_dir), "--since", "2026-11-24T07:00",
        cwd=tmp_path).stdout.splitlines() if b'"pnl"' in x]
    assert day["unrealized_change"] == "-0.011" and day["equity_change"] == "0.0119938"


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


def test_partial_fills_a_flip_and_a_maker_rebate_end_to_end(tmp_path):
    """The simulator's engine trades a scenario, its fills go to the journal as the venue
    reports them, and pnl-report adds them up to the hand computation.

    Maker fee −1 bp (a rebate), taker 5 bp. Bid 0.010 at 3000.00 filled in two parts (0.004,
    0.006): fees −0.0012 and −0.0018. Ask 0.025 at 3010.00 filled at once: closes the long
    (realized 0.010 × 10 = 0.10) and flips to short 0.015; fee −0.007525. Bought back 0.015
    at 3005.00 as taker: realized 0.015 × 5 = 0.075, fee 0.0225375. Realized 0.175, fees
    0.0120125, net 0.1629875; flat at the end."""
    from decimal import Decimal

    from mmkit.model import DepthDiff, DepthSnapshot, MarketTrade
    from mmkit.sim.engine import Engine, EngineConfig, OrderRequest
    from mmkit.sim.instruments import default_specs
    from mmkit.sim.wire import money

    spec = default_specs(["ETHUSDC"])["ETHUSDC"]
    e = Engine({"ETHUSDC": spec}, EngineConfig(maker_fee=Decimal("-0.0001"),
                                                 taker_fee=Decimal("0.0005")))
    p, q = spec.to_ticks, spec.to_steps
    t = T0
    e.apply(DepthSnapshot("ETHUSDC", t, 10, [(p("2999.00"), q("5"))], [(p("3010.50"), q("5"))]))
    e.place(t, OrderRequest("ETHUSDC", "BUY", "LIMIT", q("0.010"), p("3000.00")))
    e.apply(MarketTrade("ETHUSDC", t + 1000, 1, p("3000.00"), q("0.004"), True))
    e.apply(MarketTrade("ETHUSDC", t + 2000, 2, p("3000.00"), q("0.006"), True))
    e.place(t + 3000, OrderRequest("ETHUSDC", "SELL", "LIMIT", q("0.025"), p("3010.00")))
    e.apply(MarketTrade("ETHUSDC", t + 4000, 3, p("3010.00"), q("0.025"), False))
    e.apply(DepthDiff("ETHUSDC", t + 5000, t + 5000, 11, 11, 10, [], [(p("3005.00"), q("1"))]))
    e.place(t + 6000, OrderRequest("ETHUSDC", "BUY", "LIMIT", q("0.015"), p("3005.00"), "IOC"))
    assert [f.maker for f in e.fills] == [True, True, True, False]

    root = tmp_path / "journal"
    journal = Journal(root, "run-scenario")
    for ts, mid in [(t - 1000, "3004.75"), (t + 7000, "3007.75")]:
        journal.write(mark(ts, mid))
    for f in e.fills:
        journal.write(fill(f.trade_id, f.side, spec.price_str(f.price), spec.qty_str(f.qty),
                           money(f.commission), money(f.realized_pnl), f.ts, f.maker))
    journal.close()
    result = pnl_report("--journal", str(root), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (row,) = [r for r in map(orjson.loads, result.stdout.splitlines()) if r["type"] == "pnl"]
    assert (row["fills"], row["maker_share"]) == (4, 0.75)
    assert Decimal(row["realized_pnl"]) == Decimal("0.175")
    assert Decimal(row["fees"]) == Decimal("0.0120125")
    assert Decimal(row["net_pnl"]) == Decimal("0.1629875")
    assert Decimal(row["position_end"]) == 0


def test_a_run_without_fills_still_gets_its_report(tmp_path):
    """A short run that quoted but never filled journals marks only: the report shows the
    period and a verdict that says there is nothing to tell yet, not an error."""
    root = tmp_path / "journal"
    journal = Journal(root, "run-quiet")
    for i in range(3):
        journal.write(mark(T0 + i * 1000, "3000.00"))
    journal.close()
    result = pnl_report("--journal", str(root), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [orjson.loads(x) for x in result.stdout.splitlines()]
    assert [r["type"] for r in rows] == ["pnl", "verdict"]
    assert rows[0]["fills"] == 0 and rows[1]["fills"] == 0
    assert rows[1]["scalping"].startswith("no fills")
    assert all(check_line(r) == [] for r in rows)


def test_a_run_without_fills_gets_a_verdict_with_no_cost(tmp_path):
    root = tmp_path / "journal"
    quiet = Journal(root, "run-q")
    for ts in (T0, T0 + 1000):
        quiet.write(mark(ts, "3000.50"))
    quiet.close()
    result = pnl_report("--journal", str(root), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (verdict,) = [orjson.loads(x) for x in result.stdout.splitlines()
                  if orjson.loads(x)["type"] == "verdict"]
    assert check_line(verdict) == []
    assert verdict["fills"] == 0 and verdict["fee_bps"] is None  # no fills: no cost to state
    assert verdict["scalping"].startswith("no fills")
