"""`mmkit pnl-report` over a large synthetic journal: DuckDB (the report as shipped) against the
same report computed in pandas, in one run.

    python benchmarks/report_bench.py [--fills N] [--days D] [--quick] [--skip-breakdown]
                                      [--tmp DIR]

Numbers are from one run of each side (not best of N: a run reads gigabytes). Ratio = pandas
seconds / DuckDB seconds (above 1: the DuckDB report is faster). DuckDB uses all CPUs (the
count is printed); pandas is single-threaded.

1. The journal (generated, untimed for the comparison)
-------------------------------------------------------
A temporary directory (under `--tmp`, default the system's; free disk is checked first and the
directory is deleted at the end, also on failure) laid out exactly as `mmkit.journal.Journal`
writes it: `<root>/VERSION` (`1`), `<root>/<table>/date=YYYY-MM-DD/symbol=ETHUSDC/<run>.jsonl`,
one file per run per UTC day, each line the stream line (docs/streams.md) plus `run`, as
`orjson.dumps` writes it; lines are built in memory per day and written in one call per file.
One symbol, ETHUSDC, over `--days` days (default 30) from 2026-10-01 09:30 UTC:
- marks: one `mark` line per second (ts = the second + 0-3 ms) with `mid` (best bid + half a
  tick, 3 decimals), `position` and `netPnl` (realized − fees + funding + unrealized), i.e.
  86,400 a day (2.59 million for 30 days) whatever `--fills` is;
- the best bid is a random walk on the 0.01 tick around 2,700 (normal steps of 0.20 a second,
  weak pull back to 2,700), spread one tick;
- fills (`--fills N`, default 10,000,000; `--quick` 1,000,000): Poisson arrivals spread over
  every second, at a random ms after that second's mark; 90 % maker (at the touch, 10 % of
  them one or two ticks deeper), 10 % taker (across the spread); qty 0.001-0.050 on the 0.001
  step (geometric, mean ~0.012); the side leans against the inventory and, for makers, towards
  the side the next second's move runs over (adverse selection, so markouts differ from the
  spread capture); commission 0.0002 (maker) / 0.0005 (taker) of notional to 8 decimals;
  realizedPnl from a running average-cost position (closing qty × (price − average entry), to
  8 decimals, "0" when opening), as the venue reports it;
- funding every 8 h (00:00, 08:00, 16:00 UTC): −position × mid × 0.0001;
- restarts: about one every 3 days the bot is down 20-90 s (no marks, no fills): the old run's
  last fill line is torn (half a line, no newline, the end of its file) and the next run
  replays its last 3 fills with `source: reconcile` (2 duplicates and the torn one), as a
  restarted `mmkit run` does. So both sides must skip torn lines and count a fill once.
Generation time and the journal's size are printed, apart.

2. DuckDB: `mmkit.report.report(root, 0, 2**62, "ETHUSDC", "day")`, timed as one
call: a fresh in-memory connection, the views of sql/views.sql, sql/pnl_report.sql (one row per
UTC day with fills, funding or marks: fills, maker share, volume, realized, fees, funding, net,
spread capture at the mark at or before the fill, markouts at the mark at or before fill +
1/5/30/60 s, in bps; the position from the fills and the last mid at the day's end, the change
in unrealized PnL and the equity change) and sql/verdict.sql (edge at 5 s, fees, max drawdown
of the equity at the marks, the verdict). The files were just written, so both sides read them
from the page cache.
Breakdown (`--skip-breakdown` to skip; not part of the comparison): the same three steps timed
one by one with the module's own helpers (`create_views`, `_sql`, `_rows`), then the same two
queries over tables loaded once from the views (`CREATE TABLE m.fills AS FROM fills`, same for
marks and funding, found first through `search_path`), to show what the views' re-reading of
the JSON at every reference costs.

3. pandas, timed end to end, reading included: each JSONL file is read whole, cut after its
last newline (a torn last line is skipped, as DuckDB's `ignore_errors` does), parsed with
`orjson.loads` as one array and turned into a DataFrame of the needed columns; decimal strings
are parsed with `pd.to_numeric` and snapped to exact integers (prices and mids in 0.001, qty
in 0.001, money in 1e-8; the run fails if a value has more decimals), so sums are exact like
DuckDB's DECIMAL(38, 12). Fills are filtered (symbol), sorted by ts and deduplicated on
(symbol, tradeId) keeping the first, then cut to the ts range; the mark at or before the fill
and at or before fill + h are `pd.merge_asof` (backward, exact matches allowed:
`f.ts + h >= m.ts`); per UTC day sums with `groupby`; funding deduplicated on (symbol, ts,
run). The days are those with fills, funding or marks; mark to market as in the SQL's header:
the position at each day's edges = the first mark's position less the fills at or before it,
plus the fills before the edge (a running sum over the days), the mid the last mark before the
edge (`np.searchsorted`), unrealized change = Δ(position × mid) − Σ side × notional −
realized, in exact integers. The drawdown: equity at each mark = position × mid − cumulative
(side × notional + fee) + cumulative funding (`np.searchsorted` into `np.cumsum`), then
`cummax`. Then every field of every row is compared with DuckDB's: decimal fields exactly,
counts and strings exactly, the bps and maker share (doubles rounded by the SQL) to the
printed precision (a difference of one unit in the last place is accepted only when the exact
value lies within 1e-9 of a rounding tie, and counted). Any other difference fails the run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import shutil
import sys
import tempfile
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mmkit import report as pr  # noqa: E402

SYMBOL = "ETHUSDC"
START = dt.datetime(2026, 10, 1, 9, 30, tzinfo=dt.UTC)
DAY_MS = 86_400_000
HORIZONS = (1, 5, 30, 60)
MAKER_FEE, TAKER_FEE = 2, 5  # 1e-4 of notional
BYTES_PER_FILL, BYTES_PER_MARK = 280, 150  # for the disk check, rounded up


# -- 1. the journal -----------------------------------------------------------------------------


def dec(value: int, digits: int) -> str:
    """An integer in units of 10**-digits as a decimal string."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}"


def generate(root: Path, n_fills: int, days: int, seed: int = 7) -> dict:
    """Writes the journal; returns counts."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    (root / "VERSION").write_text("1\n")
    start_s = int(START.timestamp())
    total_s = days * 86_400
    lam = n_fills / total_s
    # restarts: outage start second → length; never in a day's first 10 minutes
    outages: dict[int, int] = {}
    for _ in range(max(1, days // 3)):
        at = int(rng.integers(600, total_s - 600))
        if (start_s + at) % 86_400 < 600:
            at += 600
        outages[at] = int(rng.integers(20, 91))
    run_no = 0

    def run_id(k: int) -> str:
        return f"run-{k:03d}-{(k * 2654435761) % 65536:04x}"

    run = run_id(0)
    tag = run[-4:]
    state = {"pos": 0, "avg": 0.0, "real": 0, "fee": 0, "fund": 0, "tid": 5_000_000_000,
             "oid": 80_000_000_000, "seq": 0}
    counts = {"fills": 0, "marks": 0, "funding": 0, "replayed": 0, "torn": 0, "runs": 1}
    buffers: dict[tuple[str, str, str], list[bytes]] = {}
    recent: list[dict] = []  # the current run's last fills
    last_fill_at: tuple[list[bytes], int] | None = None
    down_until = -1
    bid = 270_000  # cents
    max_pos = 500  # lots (0.5 ETH): the side leans against the inventory
    qty_p = 1 / 12

    def put(table: str, ts: int, line: dict) -> tuple[list[bytes], int]:
        day = time.strftime("%Y-%m-%d", time.gmtime(ts / 1000))
        buf = buffers.setdefault((table, day, line["run"]), [])
        buf.append(orjson.dumps(line) + b"\n")
        return buf, len(buf) - 1

    def flush() -> None:
        for (table, day, rid), lines in buffers.items():
            folder = root / table / f"date={day}" / f"symbol={SYMBOL}"
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / f"{rid}.jsonl", "ab") as fh:
                fh.write(b"".join(lines))
        buffers.clear()

    done_s = 0
    while done_s < total_s:
        chunk = min(86_400 - (start_s + done_s) % 86_400, total_s - done_s)  # to UTC midnight
        steps = np.rint(rng.normal(0, 20, chunk + 1)).astype(np.int64).tolist()
        arrivals = rng.poisson(lam, chunk).tolist()
        jitters = rng.integers(0, 4, chunk).tolist()
        k = sum(arrivals)
        offsets = rng.integers(4, 1000, k).tolist()
        u_side = rng.random(k).tolist()
        u_maker = rng.random(k).tolist()
        u_deep = rng.random(k).tolist()
        lots = np.minimum(rng.geometric(qty_p, k), 50).tolist()
        j = 0
        for i in range(chunk):
            sec = done_s + i
            step = steps[i] - round((bid - 270_000) / 25_000)  # pulled back beyond ±125
            next_bid = bid + step
            if sec in outages and recent and sec >= down_until:
                # the old run dies mid-write of its last fill: half a line, no newline
                buf, idx = last_fill_at
                buf[idx] = buf[idx][: len(buf[idx]) // 2]
                counts["torn"] += 1
                down_until = sec + outages[sec]
            if sec < down_until:
                j += arrivals[i]
                bid = next_bid
                continue
            if sec == down_until:  # a new run: it replays the venue's last fills
                run_no += 1
                run, tag = run_id(run_no), run_id(run_no)[-4:]
                counts["runs"] += 1
                for old in recent[-3:]:
                    put("fills", old["ts"], {**old, "source": "reconcile", "run": run})
                    counts["replayed"] += 1
                recent = []
            abs_s = start_s + sec
            mid = bid * 10 + 5  # 1e-3
            ts0 = abs_s * 1000 + jitters[i]
            pos, avg = state["pos"], state["avg"]
            unreal = round(pos * (mid / 1000 - avg) * 100_000)  # lots × price → 1e-8
            net = state["real"] - state["fee"] + state["fund"] + unreal
            put("marks", ts0, {"type": "mark", "symbol": SYMBOL, "ts": ts0, "mid": dec(mid, 3),
                               "position": dec(pos, 3), "netPnl": dec(net, 8), "run": run})
            counts["marks"] += 1
            if abs_s % 28_800 == 0:  # funding, paid by longs when the rate is positive
                amount = -round(pos * mid * 0.0001 * 100)  # lots×1e-3 × mid×1e-3 → 1e-8
                state["fund"] += amount
                put("funding", abs_s * 1000, {"type": "funding", "symbol": SYMBOL,
                                              "ts": abs_s * 1000, "amount": dec(amount, 8),
                                              "asset": "USDC", "run": run})
                counts["funding"] += 1
            n = arrivals[i]
            if not n:
                bid = next_bid
                continue
            lean = 0.5 - 0.4 * max(-1.0, min(1.0, pos / max_pos))
            toward = 0.15 if step < 0 else -0.15 if step > 0 else 0.0
            for off in sorted(offsets[j:j + n]):
                maker = u_maker[j] < 0.9
                p_buy = lean + toward if maker else lean
                buy = u_side[j] < p_buy
                deep = (1 + (u_deep[j] < 0.03)) if maker and u_deep[j] < 0.1 else 0
                if maker:
                    price = bid - deep if buy else bid + 1 + deep
                else:
                    price = bid + 1 if buy else bid
                q = lots[j]
                j += 1
                signed = q if buy else -q
                real = 0
                if pos == 0 or (pos > 0) == buy:
                    avg = (avg * abs(pos) + price / 100 * q) / (abs(pos) + q)
                    pos += signed
                else:
                    close = min(q, abs(pos))
                    real = round(close * (price / 100 - avg) * (1 if pos > 0 else -1) * 100_000)
                    pos += signed
                    if pos == 0:
                        avg = 0.0
                    elif (pos > 0) == buy:  # flipped: the rest opens at this price
                        avg = price / 100
                notional = price * q  # 1e-5
                fee = (notional * (MAKER_FEE if maker else TAKER_FEE) + 5) // 10  # 1e-8
                state["real"] += real
                state["fee"] += fee
                state["seq"] += 1
                state["tid"] += 1
                state["oid"] += 1 + (state["seq"] % 3 == 0)
                ts = abs_s * 1000 + off
                line = {"type": "fill", "symbol": SYMBOL, "ts": ts, "tradeId": state["tid"],
                        "orderId": state["oid"], "clientOrderId": f"mm-{tag}-{state['seq']:05d}",
                        "side": "BUY" if buy else "SELL", "price": dec(price, 2),
                        "qty": dec(q, 3), "maker": maker, "commission": dec(fee, 8),
                        "commissionAsset": "USDC", "realizedPnl": dec(real, 8) if real else "0",
                        "source": "stream", "run": run}
                last_fill_at = put("fills", ts, line)
                recent.append(line)
                if len(recent) > 6:
                    del recent[:3]
                counts["fills"] += 1
            state["pos"], state["avg"] = pos, avg
            bid = next_bid
        flush()
        done_s += chunk
    counts["start_ms"] = start_s * 1000
    return counts


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.jsonl"))


# -- 2. DuckDB ----------------------------------------------------------------------------------


def duckdb_report(root: Path) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    rows = pr.report(root, 0, 2**62, SYMBOL, "day")
    return time.perf_counter() - start, rows


def duckdb_breakdown(root: Path) -> list[tuple[str, float]]:
    import duckdb

    params = {"root": str(root), "since_ms": "0", "until_ms": str(2**62), "symbol": SYMBOL,
              "bucket": "day"}
    out = []
    con = duckdb.connect()
    t = time.perf_counter()
    pr.create_views(con, root)
    out.append(("create_views (sql/views.sql)", time.perf_counter() - t))
    for name in ("pnl_report.sql", "equity.sql", "verdict.sql"):
        t = time.perf_counter()
        _run_sql(con, pr, name, params)
        out.append((f"sql/{name} over the views", time.perf_counter() - t))
    t = time.perf_counter()
    con.execute("CREATE SCHEMA m")
    for table in ("fills", "marks", "funding"):
        con.execute(f"CREATE TABLE m.{table} AS FROM main.{table}")
    con.execute("SET search_path = 'm,main'")
    out.append(("load the views into tables once", time.perf_counter() - t))
    for name in ("pnl_report.sql", "equity.sql", "verdict.sql"):
        t = time.perf_counter()
        _run_sql(con, pr, name, params)
        out.append((f"sql/{name} over the tables", time.perf_counter() - t))
    con.close()
    return out


def _run_sql(con, pr, name: str, params: dict) -> None:
    """A query's rows, or (equity.sql) the table it makes."""
    if name == "equity.sql":
        con.execute(pr._sql(name, params))
    else:
        pr._rows(con, pr._sql(name, params))


# -- 3. pandas ----------------------------------------------------------------------------------


def read_table(root: Path, table: str, columns: list[str]):
    import pandas as pd

    frames = []
    for path in sorted((root / table).glob("date=*/symbol=*/*.jsonl")):
        data = path.read_bytes()
        data = data[: data.rfind(b"\n") + 1]  # a torn last line is skipped
        if not data:
            continue
        rows = orjson.loads(b"[" + data[:-1].replace(b"\n", b",") + b"]")
        frames.append(pd.DataFrame({c: [r.get(c) for r in rows] for c in columns}))
    return pd.concat(frames, ignore_index=True)


def snap(column, scale: int, name: str) -> np.ndarray:
    """Decimal strings → exact integers in units of 1/scale (fails on finer decimals)."""
    import pandas as pd

    x = pd.to_numeric(column).to_numpy(dtype=np.float64) * scale
    r = np.rint(x)
    if len(x) and np.abs(x - r).max() > 1e-6 * max(1.0, np.abs(x).max() / 1e9):
        raise SystemExit(f"report_bench: {name} has more decimals than 1/{scale}")
    return r.astype(np.int64)


class Rounded(float):
    """A value rounded to `places` as SQL's round() prints it, remembering the exact value."""

    def __new__(cls, exact: float, places: int):
        self = super().__new__(cls, round(exact, places))
        self.exact, self.places = exact, places
        return self


def money(units: int, digits: int, places: int) -> Decimal:
    """An exact integer in 10**-digits, rounded to `places` half away from zero (DuckDB's)."""
    return Decimal(int(units)).scaleb(-digits).quantize(Decimal(1).scaleb(-places),
                                                        rounding=ROUND_HALF_UP)


def pandas_report(root: Path, since_ms: int, until_ms: int, symbol: str) -> list[dict]:
    import pandas as pd

    f = read_table(root, "fills", ["symbol", "tradeId", "side", "ts", "price", "qty", "maker",
                                   "commission", "realizedPnl"])
    m = read_table(root, "marks", ["symbol", "ts", "mid", "position"])
    fund_path = root / "funding"
    fu = (read_table(root, "funding", ["symbol", "ts", "amount", "run"])
          if fund_path.is_dir() else None)

    # every fill of the symbol once (positions need the fills before --since too), in ts order
    f = f[f["symbol"] == symbol].sort_values("ts", kind="stable")
    f = f.drop_duplicates(["symbol", "tradeId"]).reset_index(drop=True)
    ts_all = f["ts"].to_numpy(np.int64)
    price_all = snap(f["price"], 1000, "price")
    qty_all = snap(f["qty"], 1000, "qty")
    sign_all = np.where(f["side"].to_numpy() == "BUY", 1, -1)
    fee_all = snap(f["commission"], 10**8, "commission")
    dq_all = sign_all * qty_all  # 1e-3
    sel = (ts_all >= since_ms) & (ts_all < until_ms)
    ts, price, qty, sign, fee = ts_all[sel], price_all[sel], qty_all[sel], sign_all[sel], \
        fee_all[sel]
    maker = f["maker"].to_numpy(dtype=bool)[sel]
    real = snap(f["realizedPnl"][sel], 10**8, "realizedPnl")
    notional = price * qty  # 1e-6
    m = m[(m["symbol"] == symbol) & m["mid"].notna()].sort_values("ts", kind="stable")
    m = m.reset_index(drop=True)
    mts = m["ts"].to_numpy(np.int64)
    mids = snap(m["mid"], 1000, "mid")
    marks = pd.DataFrame({"mts": mts, "mid": mids})

    def out_at(h_ms: int) -> np.ndarray:
        """sign × (mid at or before ts + h − price) × qty in 1e-6; 0 (and not counted, as SQL's
        NULL) when no mark precedes."""
        left = pd.DataFrame({"key": ts + h_ms})
        mid = pd.merge_asof(left, marks, left_on="key", right_on="mts")["mid"].to_numpy()
        mid = np.asarray(mid, dtype=np.float64)
        ok = ~np.isnan(mid)
        return np.where(ok, sign * (np.where(ok, mid, 0).astype(np.int64) - price) * qty, 0)

    day = ts // DAY_MS
    per = pd.DataFrame({"day": day, "n": 1, "maker": maker.astype(np.int64), "vol": notional,
                        "real": real, "fee": fee, "cap": out_at(0), "dq": sign * qty,
                        "cash": sign * notional})
    for h in HORIZONS:
        per[f"o{h}"] = out_at(h * 1000)
    sums = per.groupby("day").sum()

    funding: dict[int, int] = {}
    fund_ts, fund_amt = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if fu is not None and len(fu):
        fu = fu.drop_duplicates(["symbol", "ts", "run"])
        fu = fu[(fu["ts"] < until_ms) & (fu["symbol"] == symbol)].sort_values("ts")
        fund_ts = fu["ts"].to_numpy(np.int64)
        fund_amt = snap(fu["amount"], 10**8, "amount")
        ranged = fund_ts >= since_ms
        amounts = pd.Series(fund_amt[ranged], index=fund_ts[ranged] // DAY_MS)
        funding = amounts.groupby(level=0).sum().to_dict()

    def bps(num: int, den: int) -> Rounded:
        return Rounded(10_000 * int(num) / int(den), 3)  # int / int: correctly rounded

    # mark to market (sql/pnl_report.sql): positions from the fills, anchored to the first
    # mark's position; mids from the last mark before each edge
    anchor = int(snap(m["position"][:1], 1000, "position")[0]) - \
        int(dq_all[ts_all <= mts[0]].sum()) if len(mts) else 0
    position = anchor + int(dq_all[ts_all < since_ms].sum())
    in_range = (mts >= since_ms) & (mts < until_ms)
    periods = sorted(set(sums.index) | set(funding) | set((mts[in_range] // DAY_MS).tolist()))

    def mid_before(t: int) -> int | None:
        k = int(np.searchsorted(mts, t, side="left"))
        return int(mids[k - 1]) if k else None

    def value(q: int, mid: int | None) -> int | None:  # 1e-6
        return 0 if q == 0 else None if mid is None else q * mid

    nothing = pd.Series(0, index=sums.columns)  # a period without fills
    rows = []
    for d in periods:
        start, end = max(d * DAY_MS, since_ms), min((d + 1) * DAY_MS, until_ms)
        s = sums.loc[d] if d in sums.index else nothing

        def get(key: str, s=s) -> int:
            return int(s[key])

        start_pos, position = position, position + get("dq")
        mid_start, mid_end = mid_before(start), mid_before(end)
        if mid_start is None:  # no mark before: the period's first mark
            k = int(np.searchsorted(mts, start, side="left"))
            mid_start = int(mids[k]) if k < len(mts) and mts[k] < end else None
        v0, v1 = value(start_pos, mid_start), value(position, mid_end)
        fund = int(funding.get(d, 0))
        net = get("real") - get("fee") + fund  # 1e-8
        du = None if v0 is None or v1 is None else (v1 - v0 - get("cash")) * 100 - get("real")
        vol, n = get("vol"), get("n")
        rows.append({
            "type": "pnl", "symbol": symbol, "ts": int(d) * DAY_MS,
            "period": time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(d) * 86_400)),
            "fills": n, "maker_share": Rounded(get("maker") / n, 4) if n else None,
            "volume": money(vol, 6, 2), "realized_pnl": money(get("real"), 8, 8),
            "fees": money(get("fee"), 8, 8), "funding": money(fund, 8, 8),
            "net_pnl": money(net, 8, 8),
            "spread_capture": money(get("cap"), 6, 8),
            "spread_capture_bps": bps(get("cap"), vol) if n else None,
            **{f"markout_{h}s_bps": bps(get(f"o{h}"), vol) if n else None for h in HORIZONS},
            "fee_bps": bps(get("fee"), 100 * vol) if n else None,
            "position_end": Decimal(position).scaleb(-3),
            "mid_end": None if mid_end is None else Decimal(mid_end).scaleb(-3),
            "unrealized_change": None if du is None else money(du, 8, 8),
            "equity_change": None if du is None else money(net + du, 8, 8),
        })
    # the verdict; the drawdown of equity = position × mid − Σ (side × notional + fee) +
    # Σ funding at each mark in range (fills and funding at or before the mark)
    vol, fees, out5 = int(notional.sum()), int(fee.sum()), int(per["o5"].sum())
    at = np.searchsorted(ts_all, mts[in_range], side="right")
    held = anchor + np.concatenate([[0], np.cumsum(dq_all)])[at]
    paid = np.concatenate([[0], np.cumsum(sign_all * price_all * qty_all * 100 + fee_all)])[at]
    got = np.concatenate([[0], np.cumsum(fund_amt)])[
        np.searchsorted(fund_ts, mts[in_range], side="right")]
    equity = pd.Series(held * mids[in_range] * 100 - paid + got)  # 1e-8
    drawdown = int((equity.cummax() - equity).max()) if len(equity) else None
    edge_after = out5 * 100 - fees  # 1e-8
    rows.append({
        "type": "verdict", "symbol": symbol, "ts": int(ts.max()), "fills": len(ts),
        "net_pnl": money(int(real.sum()) - fees + sum(int(v) for v in funding.values()), 8, 8),
        "edge_5s_bps": bps(out5, vol),
        "fee_bps": bps(fees, 100 * vol), "edge_after_fees_bps": bps(edge_after, 100 * vol),
        "max_drawdown": None if drawdown is None else money(drawdown, 8, 8),
        "scalping": ("not enough fills to tell (fewer than 30)" if len(ts) < 30 else
                     "yes: the 5 s edge per fill beats the fees" if edge_after > 0 else
                     "no: after fees the fills lose to the market within 5 s"),
    })
    return rows


def compare(duck: list[dict], ours: list[dict]) -> int:
    """Fails the run on any difference beyond the printed precision; returns the number of
    last-place differences accepted at a rounding tie."""
    problems, ties = [], 0
    if len(duck) != len(ours):
        problems.append(f"{len(duck)} DuckDB rows, {len(ours)} pandas rows")
    for a, b in zip(duck, ours, strict=False):
        if list(a) != list(b):
            problems.append(f"columns differ: {list(a)} vs {list(b)}")
            continue
        for key, x in a.items():
            y = b[key]
            if isinstance(y, Decimal):
                same = x is not None and Decimal(x) == y
            elif isinstance(y, Rounded):
                same = x is not None and math.isclose(x, y, rel_tol=0, abs_tol=1e-12)
                if not same and x is not None and abs(x - y) <= 1.000001 * 10**-y.places:
                    scaled = abs(y.exact) * 10**y.places
                    same = abs(scaled - math.floor(scaled) - 0.5) < 1e-9 * max(1.0, scaled)
                    ties += same
            else:
                same = x == y
            if not same:
                problems.append(f"{a['type']} {a.get('period', '')} {key}: DuckDB {x!r}, "
                                f"pandas {y!r}")
    if problems:
        print("FAIL: DuckDB and pandas disagree:")
        for p in problems[:30]:
            print("  " + p)
        sys.exit(1)
    return ties


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fills", type=int, default=None,
                        help="fills to generate (default 10,000,000; --quick 1,000,000)")
    parser.add_argument("--days", type=int, default=30, help="days of journal (default 30)")
    parser.add_argument("--quick", action="store_true", help="1,000,000 fills")
    parser.add_argument("--skip-breakdown", action="store_true",
                        help="no per-query DuckDB breakdown")
    parser.add_argument("--tmp", metavar="DIR", default=None,
                        help="where the temporary journal goes (default: the system's)")
    args = parser.parse_args()
    n_fills = args.fills or (1_000_000 if args.quick else 10_000_000)
    import duckdb
    import pandas as pd

    need = n_fills * BYTES_PER_FILL + args.days * 86_400 * BYTES_PER_MARK
    base = Path(args.tmp or tempfile.gettempdir())
    free = shutil.disk_usage(base).free
    if free < 2 * need:
        sys.exit(f"report_bench: {free / 1e9:.1f} GB free under {base}, need about "
                 f"{2 * need / 1e9:.1f} GB")
    work = Path(tempfile.mkdtemp(prefix="report_bench-", dir=base))
    try:
        root = work / "journal"
        print(f"pnl-report benchmark: {n_fills:,} fills requested over {args.days} days, "
              f"{SYMBOL}; duckdb {duckdb.__version__}, pandas {pd.__version__}, numpy "
              f"{np.__version__}; {os.cpu_count()} CPUs; {free / 1e9:.0f} GB free under {base}")
        t = time.perf_counter()
        c = generate(root, n_fills, args.days)
        gen_s = time.perf_counter() - t
        size = tree_bytes(root)
        print(f"journal: {c['fills']:,} fills (+{c['replayed']} replayed, {c['torn']} torn "
              f"lines), {c['marks']:,} marks, {c['funding']} funding, {c['runs']} runs; "
              f"{size / 1e9:.2f} GB of JSONL; generated in {gen_s:.1f} s (untimed)")

        duck_s, duck_rows = duckdb_report(root)
        print(f"duckdb: report() {duck_s:.2f} s, {len(duck_rows)} rows")
        t = time.perf_counter()
        ours = pandas_report(root, 0, 2**62, SYMBOL)
        pandas_s = time.perf_counter() - t
        print(f"pandas: {pandas_s:.2f} s, {len(ours)} rows")
        ties = compare(duck_rows, ours)
        print(f"check: all {len(duck_rows)} rows agree field by field (decimals exactly, bps to "
              f"3 places; {ties} last-place difference(s) at a rounding tie)")
        verdict = duck_rows[-1]
        print(f"verdict: {orjson.dumps(verdict).decode()}")
        print(f"first day: {orjson.dumps(duck_rows[0]).decode()}")
        print()
        header = f"  {'fills':>12} {'marks':>11} {'duckdb s':>9} {'pandas s':>9} {'ratio':>7}"
        print(header)
        print("  " + "-" * (len(header) - 2))
        print(f"  {c['fills']:>12,} {c['marks']:>11,} {duck_s:>9.2f} {pandas_s:>9.2f} "
              f"{pandas_s / duck_s:>7.2f}")
        print("  ratio = pandas s / duckdb s (above 1: the DuckDB report is faster)")
        if not args.skip_breakdown:
            print()
            print("DuckDB breakdown (a second run, not part of the comparison):")
            for label, seconds in duckdb_breakdown(root):
                print(f"  {label:<40} {seconds:>8.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
