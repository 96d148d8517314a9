#!/usr/bin/env python
"""Calibrate the synthetic market (`mmkit.sim.market.SyntheticParams`) on the real ETHUSDT
recordings in ../shared/data/market/binance_usdm_hftbacktest.

    /work/venv/bin/python scripts/calibrate_market.py [--data DIR] [--json]

Both ETHUSDT sessions (2024-08-08, and 2024-07-18 + 07-19) are replayed with
`mmkit.sim.market.replay_hftbacktest` (book tickers included) into a local book, and pooled:

- spread: time-weighted over the book tickers (every best bid/offer change);
- depth: the rebuilt book sampled every second, quantity of the k-th level from the best
  (k = 1..20, both sides pooled), and the mean tick gap between neighbouring levels;
- diffs: median interval between `depthUpdate` events and levels changed per diff;
- trades: rate, lognormal fit of the size in steps, buyer share, and a Hawkes branching ratio
  from the variance of 10 s counts (Fano factor F: n = 1 − 1/√F);
- mid: 1 s log returns of the book-ticker mid in bps; a second is "volatile" when the RMS of
  the returns in the 5 s around it exceeds twice the median of that RMS; a "jump" is a 1 s
  return beyond 6 × the calm volatility.

The defaults of `SyntheticParams` are the rounded numbers printed under "SyntheticParams";
tests/test_market.py checks they agree.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from bisect import bisect_right
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmkit.book import OrderBook  # noqa: E402
from mmkit.model import BookTicker, DepthDiff, DepthSnapshot, MarketTrade  # noqa: E402
from mmkit.sim.instruments import default_specs  # noqa: E402
from mmkit.sim.market import replay_hftbacktest  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data"
SESSIONS = [["ethusdt_20240808.gz"], ["ethusdt_20240718.gz", "ethusdt_20240719.gz"]]
RECORDINGS = "market/binance_usdm_hftbacktest"
LEVELS = 20
FANO_WINDOWS_S = (1, 10)
VOL_WINDOW_S = 5
VOLATILE_FACTOR = 2.0
JUMP_FACTOR = 6.0
NEAR_TICKS = 50  # "near the top" for the count of levels a diff changes


def session_stats(paths: list[Path]) -> dict:
    """Raw samples of one contiguous session."""
    spec = default_specs(["ETHUSDT"])["ETHUSDT"]
    book = OrderBook()
    spreads: Counter[int] = Counter()  # spread ticks → ms
    wide_runs: list[int] = []  # ms of each episode with spread > 1
    wide_since: int | None = None
    depth: list[list[int]] = [[] for _ in range(LEVELS)]
    gaps_near: list[int] = []
    gaps_far: list[int] = []
    deep_qty: list[int] = []
    diff_times: list[int] = []
    diff_levels: list[int] = []
    diff_near: list[int] = []
    trades: list[tuple[int, int, bool]] = []
    tickers: list[tuple[int, float]] = []  # (E, mid ticks)
    first_mid = None
    last_ticker: BookTicker | None = None
    next_sample = None
    for timed in replay_hftbacktest(paths, spec, include_book_ticker=True):
        event = timed.event
        if isinstance(event, DepthSnapshot):
            book.load(event.bids, event.asks)
            next_sample = event.ts + 1000
            first_mid = (event.bids[0][0] + event.asks[0][0]) / 2
        elif isinstance(event, DepthDiff):
            book.apply(event.bids, event.asks)
            diff_times.append(event.ts)
            diff_levels.append(len(event.bids) + len(event.asks))
            bid, ask = book.best_bid, book.best_ask
            if bid is not None and ask is not None:
                diff_near.append(sum(1 for p, _ in event.bids if bid - p <= NEAR_TICKS)
                                 + sum(1 for p, _ in event.asks if p - ask <= NEAR_TICKS))
            while next_sample is not None and event.ts >= next_sample:
                next_sample += 1000
                for side in (book.top_bids(1000), book.top_asks(1000)):
                    for k, (_, qty) in enumerate(side[:LEVELS]):
                        depth[k].append(qty)
                    prices = [p for p, _ in side]
                    gaps = [abs(b - a) for a, b in zip(prices, prices[1:], strict=False)]
                    gaps_near += gaps[: LEVELS - 1]
                    gaps_far += gaps[LEVELS - 1:]
                    deep_qty += [q for _, q in side[LEVELS:]]
        elif isinstance(event, MarketTrade):
            trades.append((event.ts, event.qty, not event.buyer_is_maker))
        elif isinstance(event, BookTicker):
            if last_ticker is not None and event.ts > last_ticker.ts:
                spreads[last_ticker.ask - last_ticker.bid] += event.ts - last_ticker.ts
            spread = event.ask - event.bid
            if spread > 1 and wide_since is None:
                wide_since = event.ts
            elif spread == 1 and wide_since is not None:
                wide_runs.append(event.ts - wide_since)
                wide_since = None
            last_ticker = event
            tickers.append((event.ts, (event.bid + event.ask) / 2))
    return {
        "spreads": spreads, "wide_runs": wide_runs, "depth": depth, "gaps_near": gaps_near,
        "gaps_far": gaps_far, "deep_qty": deep_qty, "diff_times": diff_times,
        "diff_levels": diff_levels,
        "diff_near": diff_near, "trades": trades, "tickers": tickers,
        "first_mid": first_mid,
    }


def one_second_returns(tickers: list[tuple[int, float]]) -> list[float]:
    """Log returns (bps) of the last mid at or before each whole second."""
    times = [t for t, _ in tickers]
    start, end = times[0] // 1000 + 1, times[-1] // 1000
    mids = [tickers[bisect_right(times, s * 1000) - 1][1] for s in range(start, end + 1)]
    return [1e4 * math.log(b / a) for a, b in zip(mids, mids[1:], strict=False)]


def taker_orders(trades: list[tuple[int, int, bool]]) -> list[int]:
    """Times of the taker orders: consecutive fills with the same time and side are one."""
    times: list[int] = []
    last = None
    for ts, _, buy in trades:
        if (ts, buy) != last:
            times.append(ts)
            last = (ts, buy)
    return times


def fano_factor(sessions: list[list[int]], window_s: float) -> float:
    """Variance / mean of the counts in whole windows, pooled over sessions."""
    counts: list[int] = []
    for times in sessions:
        per = Counter(int((t - times[0]) // (window_s * 1000)) for t in times)
        counts += [per[i] for i in range(max(per))]
    return statistics.pvariance(counts) / statistics.mean(counts)


def hawkes_fano(n: float, decay: float, window_s: float) -> float:
    """Fano factor of a stationary Hawkes process with an exponential kernel (branching n,
    decay rate `decay` per second) over windows of `window_s`."""
    a = 1 / (1 - n) ** 2
    x = decay * (1 - n) * window_s
    return a * (1 - (1 - 1 / a) * (1 - math.exp(-x)) / x)


def fit_hawkes(fano: dict[float, float]) -> tuple[float, float]:
    """(branching, decay/s) matching the Fano factors at the given windows (grid search on
    log error)."""
    best = (math.inf, 0.0, 1.0)
    for i in range(1, 99):
        n = i / 100
        for j in range(1, 400):
            decay = 0.1 * 1.02 ** j
            err = sum(math.log(hawkes_fano(n, decay, w) / f) ** 2 for w, f in fano.items())
            if err < best[0]:
                best = (err, n, decay)
    return best[1], best[2]


def regimes(returns: list[float]) -> tuple[list[bool], float]:
    half = VOL_WINDOW_S // 2
    rms = []
    for i in range(len(returns)):
        window = returns[max(0, i - half): i + half + 1]
        rms.append(math.sqrt(sum(r * r for r in window) / len(window)))
    threshold = VOLATILE_FACTOR * statistics.median(rms)
    return [v > threshold for v in rms], threshold


def calibrate(data: Path) -> dict:
    per_session = [session_stats([data / RECORDINGS / name for name in files])
                   for files in SESSIONS]
    spreads: Counter[int] = Counter()
    for s in per_session:
        spreads.update(s["spreads"])
    total_ms = sum(spreads.values())
    ordered = sorted(spreads)
    cumulative, median_spread = 0, ordered[0]
    for k in ordered:
        cumulative += spreads[k]
        if cumulative * 2 >= total_ms:
            median_spread = k
            break
    mean_spread = sum(k * ms for k, ms in spreads.items()) / total_ms
    wide_fraction = 1 - spreads[1] / total_ms
    wide_runs = [r for s in per_session for r in s["wide_runs"]]
    wide_extra = sum((k - 1) * ms for k, ms in spreads.items() if k > 1) / max(
        1, sum(ms for k, ms in spreads.items() if k > 1))

    depth = [statistics.median([q for s in per_session for q in s["depth"][k]])
             for k in range(LEVELS)]
    logs = [math.log(q / depth[k]) for s in per_session for k in range(1, LEVELS)
            for q in s["depth"][k]]
    top_sigma = statistics.pstdev([math.log(q / depth[0]) for s in per_session
                                   for q in s["depth"][0]])
    depth_sigma = statistics.pstdev(logs)
    gap_near = statistics.mean([g for s in per_session for g in s["gaps_near"]])
    gap_far = statistics.mean([g for s in per_session for g in s["gaps_far"]])
    deep_median = statistics.median([q for s in per_session for q in s["deep_qty"]])

    intervals = [b - a for s in per_session
                 for a, b in zip(s["diff_times"], s["diff_times"][1:], strict=False)]
    levels_per_diff = statistics.mean([n for s in per_session for n in s["diff_levels"]])

    near_per_diff = statistics.mean([n for s in per_session for n in s["diff_near"]])

    trades = [t for s in per_session for t in s["trades"]]
    seconds = sum((s["tickers"][-1][0] - s["tickers"][0][0]) / 1000 for s in per_session)
    rate = len(trades) / seconds
    log_sizes = [math.log(q) for _, q, _ in trades]
    size_mu, size_sigma = statistics.mean(log_sizes), statistics.pstdev(log_sizes)
    buy_share = sum(1 for *_, buy in trades if buy) / len(trades)
    orders = [taker_orders(s["trades"]) for s in per_session]
    n_orders = sum(len(o) for o in orders)
    fills_per_order = len(trades) / n_orders
    fano = {w: fano_factor(orders, w) for w in FANO_WINDOWS_S}
    branching, decay = fit_hawkes(fano)

    returns: list[float] = []
    volatile: list[bool] = []
    for s in per_session:
        r = one_second_returns(s["tickers"])
        flags, _ = regimes(r)
        returns += r
        volatile += flags
    vol_all = math.sqrt(sum(r * r for r in returns) / len(returns))
    calm = [r for r, v in zip(returns, volatile, strict=True) if not v]
    wild = [r for r, v in zip(returns, volatile, strict=True) if v]
    vol_calm = math.sqrt(sum(r * r for r in calm) / len(calm))
    vol_wild = math.sqrt(sum(r * r for r in wild) / len(wild)) if wild else vol_calm
    runs, run = [], 0
    for v in volatile + [False]:
        if v:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    jumps = [r for r in returns if abs(r) > JUMP_FACTOR * vol_calm]
    first_mid = per_session[0]["first_mid"]
    return {
        "sessions": [" + ".join(files) for files in SESSIONS],
        "seconds": round(seconds, 1),
        "spread_median_ticks": median_spread,
        "spread_mean_ticks": mean_spread,
        "spread_share": {k: spreads[k] / total_ms for k in ordered[:6]},
        "wide_fraction": wide_fraction,
        "wide_mean_ms": statistics.mean(wide_runs) if wide_runs else 0.0,
        "wide_extra_ticks": wide_extra,
        "depth_median_steps": depth,
        "depth_sigma": depth_sigma,
        "depth_sigma_top": top_sigma,
        "level_gap_near_ticks": gap_near,
        "level_gap_far_ticks": gap_far,
        "deep_median_steps": deep_median,
        "diff_interval_ms_median": statistics.median(intervals),
        "levels_per_diff_mean": levels_per_diff,
        "near_levels_per_diff_mean": near_per_diff,
        "trade_rate_per_s": rate,
        "trade_size_mu": size_mu,
        "trade_size_sigma": size_sigma,
        "trade_size_median_steps": math.exp(size_mu),
        "trade_buy_share": buy_share,
        "taker_orders_per_s": n_orders / seconds,
        "fills_per_order": fills_per_order,
        "order_fano": fano,
        "trade_branching": branching,
        "trade_decay_per_s": decay,
        "vol_1s_bps": vol_all,
        "vol_calm_bps": vol_calm,
        "vol_volatile_bps": vol_wild,
        "volatile_fraction": sum(volatile) / len(volatile),
        "volatile_mean_s": statistics.mean(runs) if runs else 0.0,
        "jumps": len(jumps),
        "jump_per_hour": len(jumps) / seconds * 3600,
        "jump_mean_abs_bps": statistics.mean([abs(j) for j in jumps]) if jumps else 0.0,
        "start_price": first_mid / 100,
    }


def params_from(c: dict) -> dict:
    """The `SyntheticParams` defaults, rounded as they are written in mmkit/sim/market.py."""
    return {
        "start_price": f"{round(c['start_price']):d}.00",
        "diff_interval_ms": int(round(c["diff_interval_ms_median"])),
        "near_levels_per_diff": round(c["near_levels_per_diff_mean"], 1),
        "far_levels_per_diff": round(
            c["levels_per_diff_mean"] - c["near_levels_per_diff_mean"], 1),
        "wide_fraction": round(c["wide_fraction"], 3),
        "wide_extra_ticks": round(c["wide_extra_ticks"], 2),
        "depth_median": tuple(int(round(q)) for q in c["depth_median_steps"]),
        "depth_sigma": round(c["depth_sigma"], 2),
        "depth_sigma_top": round(c["depth_sigma_top"], 2),
        "deep_median": int(round(c["deep_median_steps"])),
        "level_gap_near": round(c["level_gap_near_ticks"], 2),
        "level_gap_far": round(c["level_gap_far_ticks"], 2),
        "trade_rate": round(c["trade_rate_per_s"], 1),
        "fills_per_order": round(c["fills_per_order"], 2),
        "trade_branching": round(c["trade_branching"], 2),
        "trade_decay": round(c["trade_decay_per_s"], 1),
        "trade_size_mu": round(c["trade_size_mu"], 2),
        "trade_size_sigma": round(c["trade_size_sigma"], 2),
        "buy_share": round(c["trade_buy_share"], 2),
        "vol_calm_bps": round(c["vol_calm_bps"], 3),
        "vol_volatile_bps": round(c["vol_volatile_bps"], 3),
        "volatile_fraction": round(c["volatile_fraction"], 3),
        "volatile_mean_s": round(c["volatile_mean_s"], 1),
        "jump_per_hour": round(c["jump_per_hour"], 1),
        "jump_bps": round(c["jump_mean_abs_bps"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="the shared data directory (default: ../shared/data)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if not (args.data / RECORDINGS).is_dir():
        print(f"no recordings at {args.data / RECORDINGS}", file=sys.stderr)
        return 1
    c = calibrate(args.data)
    params = params_from(c)
    if args.json:
        print(json.dumps({"calibration": c, "params": params}, indent=2, default=str))
        return 0
    print(f"ETHUSDT, {' and '.join(c['sessions'])}: {c['seconds']} s")
    print(f"spread ticks          median {c['spread_median_ticks']}  "
          f"mean {c['spread_mean_ticks']:.3f}  (time-weighted)")
    print("spread share          " + "  ".join(
        f"{k}:{v:.4f}" for k, v in c["spread_share"].items()))
    print(f"wide spread           {c['wide_fraction']:.4f} of the time, episodes "
          f"{c['wide_mean_ms']:.0f} ms, {c['wide_extra_ticks']:.2f} extra ticks")
    print("depth median steps    " + " ".join(f"{q:g}" for q in c["depth_median_steps"]))
    print(f"depth log-sd          levels 2-20 {c['depth_sigma']:.3f}, level 1 "
          f"{c['depth_sigma_top']:.3f}; deep levels (21..1000) median "
          f"{c['deep_median_steps']:g}")
    print(f"level gap ticks       levels 1-20 {c['level_gap_near_ticks']:.2f}  "
          f"levels 20-1000 {c['level_gap_far_ticks']:.2f}")
    print(f"diffs                 every {c['diff_interval_ms_median']:g} ms (median), "
          f"{c['levels_per_diff_mean']:.1f} levels each (mean), "
          f"{c['near_levels_per_diff_mean']:.1f} within {NEAR_TICKS} ticks of the best")
    print(f"trades                {c['trade_rate_per_s']:.2f}/s, size lognormal mu "
          f"{c['trade_size_mu']:.3f} sigma {c['trade_size_sigma']:.3f} (steps; median "
          f"{c['trade_size_median_steps']:.1f}), buyer-taker share {c['trade_buy_share']:.3f}")
    fano = ", ".join(f"{w} s {f:.2f}" for w, f in c["order_fano"].items())
    print(f"taker orders          {c['taker_orders_per_s']:.2f}/s, {c['fills_per_order']:.2f} "
          f"fills each; Fano {fano} → Hawkes branching {c['trade_branching']:.2f}, decay "
          f"{c['trade_decay_per_s']:.1f}/s")
    print(f"1 s mid volatility    {c['vol_1s_bps']:.3f} bps (calm {c['vol_calm_bps']:.3f}, "
          f"volatile {c['vol_volatile_bps']:.3f})")
    print(f"volatile seconds      {c['volatile_fraction']:.3f}, runs of "
          f"{c['volatile_mean_s']:.1f} s (mean)")
    print(f"jumps (> {JUMP_FACTOR:g} x calm)   {c['jumps']} = {c['jump_per_hour']:.1f}/h, "
          f"mean |jump| {c['jump_mean_abs_bps']:.2f} bps")
    print("\nSyntheticParams")
    for key, value in params.items():
        print(f"    {key} = {value!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
