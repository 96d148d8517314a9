#!/usr/bin/env python3
"""Dry-run acceptance: `mmkit run` against the simulator with its fault knobs on, for a stretch
of venue time, then a verdict.

    python scripts/acceptance.py                       # 30 venue-minutes at 20x (90 s)
    python scripts/acceptance.py --minutes 3 --speed 20 --drop-every 5

It starts `mmkit exchange serve` (synthetic market, WebSocket drops every N wall seconds, 5xx
and delays at a rate) and `mmkit run --lines` against it, scrapes /metrics every second, and
stops the bot with SIGTERM. It passes when:
- WS reconnects stay within what was injected (drops × streams, plus slack);
- no unhandled error: the bot exits 0 and logs nothing at error level;
- no quote error: every quote decision went through (no `quote_error` event);
- the book is never stale longer than the limit (the largest book age scraped);
- nothing of ours rests at the venue afterwards.
Exit 0 on pass, 1 on fail; the verdict is a table on stdout (JSON with --json).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import orjson

STREAMS_DROPPED = 2  # depth and trades; the user stream (private) is not dropped by the fault


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> dict[str, float]:
    """Sample values by name (labels summed) from /metrics."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return {}
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})? ([-+0-9.eE]+|NaN)$", line)
        if match and match.group(3) != "NaN":
            values[match.group(1)] = values.get(match.group(1), 0.0) + float(match.group(3))
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30, help="venue minutes to run")
    parser.add_argument("--speed", type=float, default=20, help="venue time per wall time")
    parser.add_argument("--drop-every", type=float, default=20,
                        help="drop market WebSockets every N wall seconds")
    parser.add_argument("--error-rate", type=float, default=0.02, help="5xx rate")
    parser.add_argument("--delay-ms", type=int, default=5, help="REST response delay")
    parser.add_argument("--stale-limit", type=float, default=5.0,
                        help="largest acceptable book age, seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
    mmkit = [sys.executable, "-m", "mmkit"]
    sim_port, metrics_port = free_port(), free_port()
    faults = (f"drop_ws_every_s={args.drop_every},error_rate={args.error_rate},"
              f"delay_ms={args.delay_ms}")
    sim = subprocess.Popen([*mmkit, "exchange", "serve", "--port", str(sim_port), "--speed",
                            str(args.speed), "--seed", str(args.seed), "--fault", faults],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    base, ws = f"http://127.0.0.1:{sim_port}", f"ws://127.0.0.1:{sim_port}"
    workdir = ""
    try:
        _wait_for(f"{base}/fapi/v1/ping")
        wall_s = args.minutes * 60 / args.speed
        workdir = tempfile.mkdtemp(prefix="mmkit-acceptance-")  # the bot's journal goes here
        bot = subprocess.Popen([*mmkit, "--venue", "sim", "--base-url", base, "--ws-url", ws,
                                "run", "--lines", "--metrics", f"127.0.0.1:{metrics_port}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               cwd=workdir)
        samples: list[dict[str, float]] = []
        started = time.monotonic()
        while time.monotonic() - started < wall_s and bot.poll() is None:
            time.sleep(1)
            sample = scrape(metrics_port)
            if sample:
                samples.append(sample)
        if bot.poll() is None:
            bot.send_signal(signal.SIGTERM)
        out, err = bot.communicate(timeout=60)
        elapsed = time.monotonic() - started
        resting = _resting(base)
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)

    last = samples[-1] if samples else {}
    logs = [orjson.loads(x) for x in err.splitlines() if x.startswith(b"{")]
    errors = [r for r in logs if r.get("level") in ("error", "critical")]
    quote_errors = [r for r in logs if r.get("event") == "quote_error"]
    drops = int(elapsed // args.drop_every) if args.drop_every else 0
    allowed = drops * STREAMS_DROPPED + 2
    reconnects = last.get("runner_ws_reconnects_total", 0)
    oldest_book = max((s.get("runner_book_age_seconds", 0) for s in samples), default=0)
    lines = [orjson.loads(x) for x in out.splitlines() if x.startswith(b"{")]
    fills = sum(1 for x in lines if x.get("type") == "fill")
    checks = [
        ("bot exited 0 after SIGTERM", bot.returncode == 0, f"exit {bot.returncode}"),
        ("no error-level log records", not errors, f"{len(errors)} records"),
        ("no quote_error", not quote_errors, f"{len(quote_errors)} events"),
        ("WS reconnects within injected drops", reconnects <= allowed,
         f"{reconnects:.0f} reconnects, {drops} drops injected × {STREAMS_DROPPED} streams "
         f"+ 2 allowed"),
        ("book never stale beyond the limit", oldest_book <= args.stale_limit,
         f"oldest book {oldest_book:.2f} s (limit {args.stale_limit} s)"),
        ("nothing of ours left resting", resting == 0, f"{resting} open orders"),
        ("metrics were served", bool(samples), f"{len(samples)} scrapes"),
    ]
    verdict = all(ok for _, ok, _ in checks)
    summary = {"venueMinutes": round(elapsed * args.speed / 60, 1), "wallSeconds":
               round(elapsed, 1), "fills": fills, "restErrors":
               last.get("runner_rest_errors_total", 0), "quotes":
               last.get("runner_quotes_total", 0), "pass": verdict,
               "checks": [{"check": c, "pass": ok, "detail": d} for c, ok, d in checks]}
    if args.json:
        print(orjson.dumps(summary).decode())
    else:
        print(f"acceptance: {summary['venueMinutes']} venue minutes in "
              f"{summary['wallSeconds']} s, {fills} fills, {summary['quotes']:.0f} quotes, "
              f"{summary['restErrors']:.0f} REST errors (injected, handled)")
        for check, ok, detail in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {check:<40} {detail}")
        print("verdict:", "PASS" if verdict else "FAIL")
    return 0 if verdict else 1


def _wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"acceptance: the simulator did not start at {url}")


def _resting(base: str) -> int:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from mmkit.binance.signing import hmac_signature
    from mmkit.sim.venue import SIM_API_KEY, SIM_API_SECRET

    # the ground truth is read with the faults off: an injected 503 must not be counted
    httpx.post(f"{base}/_sim/faults", content=b"{}").raise_for_status()
    query = f"symbol=ETHUSDC&timestamp={int(time.time() * 1000)}&recvWindow=60000"
    query += "&signature=" + hmac_signature(SIM_API_SECRET, query)
    response = httpx.get(f"{base}/fapi/v1/openOrders?{query}",
                         headers={"X-MBX-APIKEY": SIM_API_KEY})
    response.raise_for_status()
    return len(response.json())


if __name__ == "__main__":
    sys.exit(main())
