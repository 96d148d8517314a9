#!/usr/bin/env python3
"""Dry-run acceptance: `mmkit run` against the simulator with its fault knobs on, for a stretch
of venue time, then a verdict.

    python scripts/acceptance.py                       # 30 venue-minutes at 20x (90 s)
    python scripts/acceptance.py --minutes 3 --speed 20 --drop-every 5
    python scripts/acceptance.py --port 39210 --metrics-port 39211   # fixed ports

It starts `mmkit exchange serve` (synthetic market, WebSocket drops every N wall seconds, 5xx
and delays at a rate) and `mmkit run --lines` against it, scrapes the bot's /metrics every
second, and stops the bot with SIGTERM. It passes when:
- the bot exits 0 and logs nothing at error level (no unhandled error, REST ones included);
- no quote error: every quote decision went through (no `quote_error` event);
- WS disconnects stay within what was injected: the market streams lost no more connections
  than the simulator dropped (its own count, /metrics), the user stream (never dropped) none;
- WS reconnects are bounded: one per disconnect, and no more failed attempts than
  disconnects;
- the book is never stale longer than the limit: the bot's largest book age since the start
  (runner_book_age_max_seconds, so no spell between two scrapes is missed). The bot keeps
  venue time (it reads the simulator's speed), but a reconnect and its snapshot take wall
  time whatever the speed, so the age is compared in wall seconds: venue seconds / speed;
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

MARKET_STREAMS = ("depth", "trades")  # dropped by the fault; the user stream (private) is not


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> dict[str, float]:
    """Sample values from /metrics by name (labels summed) and by `name{label="value"}` for
    each label (summed over the others)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return {}
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})? ([-+0-9.eE]+|NaN)$", line)
        if match and match.group(3) != "NaN":
            name, number = match.group(1), float(match.group(3))
            keys = [name] + [f'{name}{{{label}="{value}"}}' for label, value in
                             re.findall(r'(\w+)="([^"]*)"', match.group(2) or "")]
            for key in keys:
                values[key] = values.get(key, 0.0) + number
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
                        help="largest acceptable book age, wall seconds (the bot's venue-time "
                        "age divided by --speed)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=0,
                        help="the simulator's port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--metrics-port", type=int, default=0,
                        help="the bot's /metrics port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
    mmkit = [sys.executable, "-m", "mmkit"]
    metrics_port = args.metrics_port or free_port()
    faults = (f"drop_ws_every_s={args.drop_every},error_rate={args.error_rate},"
              f"delay_ms={args.delay_ms}")
    workdir = tempfile.mkdtemp(prefix="mmkit-acceptance-")  # the bot's journal goes here
    sim_log = open(os.path.join(workdir, "exchange.log"), "w+b")  # noqa: SIM115
    sim = subprocess.Popen([*mmkit, "exchange", "serve", "--port", str(args.port), "--speed",
                            str(args.speed), "--seed", str(args.seed), "--fault", faults],
                           stdout=subprocess.DEVNULL, stderr=sim_log, env=env)
    try:
        base = _served_at(sim, sim_log)
        ws = "ws" + base.removeprefix("http")
        wall_s = args.minutes * 60 / args.speed
        # its output goes to files: a pipe nobody reads during the run would fill up and
        # block the bot's event loop on a write
        out_path, err_path = (os.path.join(workdir, name) for name in ("out", "err"))
        with open(out_path, "wb") as out_file, open(err_path, "wb") as err_file:
            bot = subprocess.Popen([*mmkit, "--venue", "sim", "--base-url", base, "--ws-url",
                                    ws, "run", "--lines", "--metrics",
                                    f"127.0.0.1:{metrics_port}"],
                                   stdout=out_file, stderr=err_file, env=env, cwd=workdir)
        samples: list[dict[str, float]] = []
        # the venue minutes count from when the bot serves its metrics (it is up)
        deadline = time.monotonic() + 60
        while not samples and bot.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            sample = scrape(metrics_port)
            if sample:
                samples.append(sample)
        started = time.monotonic()
        while bot.poll() is None:  # a scrape a second, the last one just before SIGTERM
            left = wall_s - (time.monotonic() - started)
            if left <= 0:
                break
            time.sleep(min(1.0, left))
            sample = scrape(metrics_port)
            if sample:
                samples.append(sample)
        elapsed = time.monotonic() - started
        if bot.poll() is None:
            bot.send_signal(signal.SIGTERM)
        bot.wait(timeout=60)
        with open(out_path, "rb") as f_out, open(err_path, "rb") as f_err:
            out, err = f_out.read(), f_err.read()
        resting = _resting(base)
        injected = scrape(int(base.rpartition(":")[2]))
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
        sim_log.close()
        shutil.rmtree(workdir, ignore_errors=True)

    last = samples[-1] if samples else {}
    logs = [orjson.loads(x) for x in err.splitlines() if x.startswith(b"{")]
    errors = [r for r in logs if r.get("level") in ("error", "critical")]
    quote_errors = [r for r in logs if r.get("event") == "quote_error"]
    failed_connects = [r for r in logs if r.get("event") == "ws_connect_failed"]
    dropped = injected.get('mmkit_sim_faults_total{fault="ws_drop"}', 0)
    lost = {stream: last.get(f'runner_ws_disconnects_total{{stream="{stream}"}}', 0)
            for stream in (*MARKET_STREAMS, "user")}
    market_lost = sum(lost[s] for s in MARKET_STREAMS)
    reconnects = last.get("runner_ws_reconnects_total", 0)
    disconnects = sum(lost.values())
    oldest_book = max((s.get("runner_book_age_max_seconds", 0) for s in samples), default=0)
    oldest_book_wall = oldest_book / args.speed
    lines = [orjson.loads(x) for x in out.splitlines() if x.startswith(b"{")]
    fills = sum(1 for x in lines if x.get("type") == "fill")
    checks = [
        ("bot exited 0 after SIGTERM", bot.returncode == 0, f"exit {bot.returncode}"),
        ("no error-level log records", not errors, f"{len(errors)} records"),
        ("no quote_error", not quote_errors, f"{len(quote_errors)} events"),
        ("WS disconnects within injected drops", market_lost <= dropped and not lost["user"],
         f"{market_lost:.0f} market-stream disconnects, {dropped:.0f} connections dropped by "
         f"the simulator; {lost['user']:.0f} user-stream"),
        ("WS reconnects bounded", reconnects <= disconnects
         and len(failed_connects) <= disconnects,
         f"{reconnects:.0f} reconnects, {len(failed_connects)} failed attempts, for "
         f"{disconnects:.0f} disconnects"),
        ("book never stale beyond the limit", oldest_book_wall <= args.stale_limit,
         f"largest book age {oldest_book_wall:.2f} s wall, {oldest_book:.2f} s venue "
         f"(limit {args.stale_limit} s wall)"),
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


def _served_at(sim: subprocess.Popen, log, timeout: float = 30) -> str:
    """The simulator's base URL, from the line it prints once it serves (with --port 0 only it
    knows the port), once it answers a ping."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and sim.poll() is None:
        log.seek(0)
        match = re.search(rb"REST (http://[\w.]+:\d+)", log.read())
        if match:
            base = match.group(1).decode()
            try:
                if httpx.get(f"{base}/fapi/v1/ping", timeout=1).status_code == 200:
                    return base
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    log.seek(0)
    raise SystemExit("acceptance: the simulator did not start: "
                     + log.read().decode(errors="replace").strip()[-500:])


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
