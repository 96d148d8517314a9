"""Tick-to-order latency against the simulator over loopback: book message received → order
request written, in `mmkit run` (one process, uvloop and asyncio) and through the pipe
`mmkit depth | mmkit quote | mmkit send` (three processes).

    python benchmarks/latency_bench.py [--quick] [--seconds N] [--skip-in-process]

Numbers are from one run of each configuration (`--seconds`, default 30; `--quick`: 10);
latency is not a best-of figure. No peer: the numbers are mmkit's own, to compare its two
event loops and its two architectures (one process vs. the pipe). With 2 CPUs or fewer the
processes compete for them; the CPU count is printed.

Setup common to every row
-------------------------
Every command is `python -m mmkit ...` from this venv, run in a temporary directory (so no
configs/config.yaml is read) with no MMKIT_* variables but those set here. Each row gets its
own simulator, `mmkit exchange serve --port 0 --seed 1 --symbols ETHUSDC` in a subprocess on
127.0.0.1 (real-time synthetic market, same seed every row; ETHUSDC only, so it spends no CPU
on symbols nobody trades), stopped with SIGTERM after the row. The strategy, for every row:
`model: fixed, spreadTicks: 2, staticFraction: 0, refreshInterval: 200` on ETHUSDC (a fixed
2-tick ladder that follows the touch, so it modifies or re-places orders often); risk and
inventory settings are the defaults. Every process is stopped with SIGTERM in a `finally`.

1. `mmkit run`, one process (ms, from its lines)
------------------------------------------------
`mmkit --config FILE --venue sim --base-url http://127.0.0.1:P --ws-url ws://127.0.0.1:P run
--symbol ETHUSDC --lines --metrics off`, SIGTERM after N s (process start included), twice:
with uvloop (the default when it is installed) and with env `MMKIT_LOOP=asyncio`. Its
`order_new` and `order_modify` lines carry `ts` (when the line was written, just before the
request goes out) and `bookRecvTs` (when the WebSocket message of the book the decision was
made on was taken off the stream's queue); latency = ts − bookRecvTs. Both are integer
milliseconds of the same clock (`mmkit run`'s venue clock: wall time plus the measured
offset, truncated to the ms), so each value is ±1 ms and a decision that takes 0.3 ms shows
as 0 or 1: at this resolution the two loops cannot be told apart (hence part 2). "all order
lines" includes lines written after an earlier REST round trip of the same decision
(Execution sends cancels, then modifies, then new orders, each batch awaited); "first of each
decision" takes only the first order line per bookRecvTs, the decision time proper. Means
are given because truncation errors average out over many lines, percentiles do not.

2. In process, µs (`Runner.on_tick_to_order`)
---------------------------------------------
The runner is built here as `mmkit/cli/run_cmd.py::_trade` builds it (same config file,
RestClient with the RunMetrics observer, `sync_time`, venue spec from exchangeInfo,
OrderManager, Execution on the venue clock, Runner, RunMetrics.on_line on every line, lines
written to /dev/null with the CLI's LineWriter), against a simulator subprocess, and run for
N s (default 20; `--quick`: 10) under `asyncio.run` and under `uvloop.run` in turn.
`Runner.on_tick_to_order` receives, for each decision that produced actions,
`time.perf_counter()` just before the order requests minus `perf_counter()` when the runner
stored the book (after the depth feed built the book line and it was converted to a
BookTop): so it covers the wake-up of the decide task, strategy, risk and order diff, but
not the WebSocket read, decode, book update and line building before it. The ms figure of
part 1 is also computed from this run's order lines, for comparison.

3. The pipe, three processes (ms, from send's lines)
----------------------------------------------------
`mmkit --venue sim ... depth ETHUSDC --levels 5 | mmkit quote --symbol ETHUSDC --set
strategy.model=fixed --set strategy.spreadTicks=2 --set strategy.staticFraction=0 --set
strategy.refreshInterval=200 | mmkit --venue sim ... send --symbol ETHUSDC`, default loop
(uvloop) in depth and send (quote is synchronous), for N s; then depth gets SIGTERM, quote
and send end on end of input (send cancels its orders), and whatever still runs gets
SIGTERM. Latency = ts − bookRecvTs of send's `order_new`/`order_modify` lines: bookRecvTs is
stamped by the depth process, ts by send (both the wall clock, `int(time.time() * 1000)`),
so it covers depth → pipe → quote → pipe → send. quote sees only book lines here (no trades,
fills or position, which `run` feeds its strategy), so the pipe makes fewer orders than `run`
in the same time. Same ms resolution as part 1. Ratios are
pipe / run (uvloop row of part 1), on means and on percentiles whose run value is not 0.

Every row leaves out the first decision (the order lines of the first bookRecvTs, the first
on_tick_to_order sample) and prints it apart: it pays for first-call work and, in the pipe,
for send still starting while depth already streams (tens of ms). Counts are small: the
fixed strategy changes its orders only when the touch moves, 1-3 decisions with orders per
second on this market, so p99 of under 100 values is the maximum and one run's tail is
noisy; the medians and means are the figures to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SYMBOL = "ETHUSDC"
MMKIT = [sys.executable, "-m", "mmkit"]
STRATEGY = {"model": "fixed", "spreadTicks": "2", "staticFraction": "0",
            "refreshInterval": "200"}
CONFIG_YAML = f"symbols:\n  {SYMBOL}:\n    strategy:\n" + "".join(
    f"      {key}: {value}\n" for key, value in STRATEGY.items())
ORDER_KINDS = (b'"type":"order_new"', b'"type":"order_modify"')


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMKIT_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Simulator:
    """`mmkit exchange serve --port 0 --seed 1` in a subprocess; yields host:port."""

    def __init__(self, cwd: str):
        self.cwd = cwd

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(
            MMKIT + ["exchange", "serve", "--port", "0", "--seed", "1", "--symbols", SYMBOL],
            cwd=self.cwd, env=base_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        try:
            line = self.proc.stderr.readline()
            if "REST http://" not in line:
                sys.exit(f"latency_bench: the simulator did not start ({line!r})")
        except BaseException:
            stop(self.proc)
            raise
        # keep reading its log so a full pipe never blocks it
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        return line.split("REST http://", 1)[1].split()[0]

    def __exit__(self, *exc) -> None:
        stop(self.proc)


def venue_flags(hostport: str) -> list[str]:
    return ["--venue", "sim", "--base-url", f"http://{hostport}", "--ws-url",
            f"ws://{hostport}"]


# -- latencies from order lines -------------------------------------------------------------------


class OrderLatencies:
    """ts − bookRecvTs (ms) of order_new/order_modify lines: all, and the first per decision.
    The lines of the first decision (the first bookRecvTs) are kept apart in `startup`."""

    def __init__(self) -> None:
        self.all: list[int] = []
        self.first: list[int] = []
        self.startup: list[int] = []
        self.without_book = 0
        self._first_book: int | None = None
        self._last_book: int | None = None

    def add(self, line: dict) -> None:
        if line.get("type") not in ("order_new", "order_modify"):
            return
        book = line.get("bookRecvTs")
        if book is None:
            self.without_book += 1
            return
        latency = line["ts"] - book
        if self._first_book is None:
            self._first_book = book
        if book == self._first_book:
            self.startup.append(latency)
            return
        self.all.append(latency)
        if book != self._last_book:
            self.first.append(latency)
            self._last_book = book

    @classmethod
    def from_file(cls, path: Path) -> tuple[OrderLatencies, dict[str, int], dict | None]:
        latencies, kinds, summary = cls(), {}, None
        with open(path, "rb") as lines:
            for raw in lines:
                if not raw.strip():
                    continue
                line = orjson.loads(raw)
                kind = line.get("type")
                kinds[kind] = kinds.get(kind, 0) + 1
                if kind == "summary":
                    summary = line
                latencies.add(line)
        return latencies, kinds, summary


def percentile(ordered: list, q: float):
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stats(values: list) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"n": len(ordered), "p50": percentile(ordered, 0.5), "p90": percentile(ordered, 0.9),
            "p99": percentile(ordered, 0.99), "max": ordered[-1],
            "mean": statistics.fmean(ordered)}


HEADER = f"  {'':<34}{'count':>7}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}{'mean':>8}"


def row(name: str, values: list, scale: float = 1.0, digits: int = 0) -> dict | None:
    s = stats(values)
    if s is None:
        print(f"  {name:<34}{0:>7}  (no order lines)")
        return None
    cells = "".join(f"{s[k] * scale:>8.{digits}f}" for k in ("p50", "p90", "p99", "max"))
    print(f"  {name:<34}{s['n']:>7,}{cells}{s['mean'] * scale:>8.{2 if not digits else digits}f}")
    return s


def ms_rows(label: str, latencies: OrderLatencies) -> dict | None:
    result = row(f"{label}: all order lines", latencies.all)
    row(f"{label}: first of each decision", latencies.first)
    return result


def failed(what: str, proc: subprocess.Popen, log: Path) -> None:
    text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    sys.exit(f"latency_bench: {what} exited {proc.returncode}:\n{text}")


# -- 1. mmkit run ---------------------------------------------------------------------------------


def run_cli(work: Path, seconds: float, loop: str) -> tuple[OrderLatencies, dict[str, int], dict]:
    out, err = work / f"run-{loop}.jsonl", work / f"run-{loop}.err"
    env = base_env({"MMKIT_LOOP": "asyncio"} if loop == "asyncio" else None)
    with Simulator(str(work)) as hostport:
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            proc = subprocess.Popen(
                MMKIT + ["--config", str(work / "config.yaml")] + venue_flags(hostport)
                + ["run", "--symbol", SYMBOL, "--lines", "--metrics", "off"],
                cwd=work, env=env, stdout=stdout, stderr=stderr)
            try:
                try:
                    proc.wait(timeout=seconds)
                except subprocess.TimeoutExpired:
                    pass
                else:
                    failed(f"mmkit run ({loop})", proc, err)
            finally:
                stop(proc)
        if proc.returncode != 0:
            failed(f"mmkit run ({loop})", proc, err)
    latencies, kinds, summary = OrderLatencies.from_file(out)
    return latencies, kinds, summary or {}


def describe(kinds: dict[str, int], summary: dict, latencies: OrderLatencies) -> str:
    parts = [f"{k} {v:,}" for k, v in sorted(kinds.items()) if k != "summary"]
    if summary:
        parts.append(f"quotes {summary.get('quotes')}, fills {summary.get('fills')}, "
                     f"book resyncs {summary.get('bookResyncs')}")
    if latencies.startup:
        parts.append(f"first decision, left out: {len(latencies.startup)} lines, "
                     f"max {max(latencies.startup)} ms")
    if latencies.without_book:
        parts.append(f"{latencies.without_book} order lines without bookRecvTs")
    return "; ".join(parts)


# -- 2. in process --------------------------------------------------------------------------------


async def trade_in_process(config_path: Path, hostport: str, seconds: float,
                           samples: list[float], latencies: OrderLatencies) -> None:
    """The runner as `mmkit/cli/run_cmd.py::_trade` builds it, run for `seconds`."""
    from mmkit.cli.common import rest_client
    from mmkit.cli.market_data import _routed, _venue_spec
    from mmkit.config import load_config
    from mmkit.execution import Execution, wall_ms
    from mmkit.ops.metrics import RunCollector, RunMetrics
    from mmkit.orders import ClientIds, OrderManager
    from mmkit.risk import build_guards
    from mmkit.runner import Runner
    from mmkit.strategy import make_strategy
    from mmkit.stream import LineWriter

    config = load_config(str(config_path), env={}, overrides={"gateway": {
        "venue": "sim", "baseUrl": f"http://{hostport}", "wsUrl": f"ws://{hostport}"}})
    metrics = RunMetrics(SYMBOL)
    with open(os.devnull, "wb") as devnull:
        out = LineWriter(devnull)

        def emit(line: dict) -> None:
            metrics.on_line(line)
            latencies.add(line)
            out.write(line)

        async with rest_client(config, observer=metrics.on_request) as client:
            await client.sync_time()
            spec = await _venue_spec(client, SYMBOL)
            symbol_config = config.symbols[SYMBOL]
            start_wall = time.time()
            start_venue = client.venue_now_ms()

            def venue_ms() -> int:
                return start_venue + int((time.time() - start_wall) * 1000)

            manager = OrderManager(spec, ClientIds.for_run("mm", wall_ms(), salt=os.getpid()),
                                   price_tolerance=0, max_age_ms=60_000)
            execution = Execution(client, manager, SYMBOL, emit, now=venue_ms)
            runner = Runner(config=config, spec=spec, client=client, ws_url=config.ws_url,
                            routed=_routed(config),
                            strategy=make_strategy(spec, symbol_config.strategy),
                            risk=build_guards(spec, symbol_config.risk,
                                              symbol_config.inventory),
                            manager=manager, execution=execution, emit=emit,
                            wall_ms=venue_ms)

            def observe(seconds_: float) -> None:
                metrics.tick_to_order.observe(seconds_)
                samples.append(seconds_)

            runner.on_tick_to_order = observe
            metrics.registry.register(RunCollector(runner))
            try:
                await runner.start(None)
                await runner.run(seconds)
            finally:
                await runner.stop()


def in_process(work: Path, seconds: float, loop: str) -> tuple[list[float], OrderLatencies]:
    import uvloop

    samples: list[float] = []
    latencies = OrderLatencies()
    with Simulator(str(work)) as hostport:
        main = trade_in_process(work / "config.yaml", hostport, seconds, samples, latencies)
        if loop == "uvloop":
            uvloop.run(main)
        else:
            asyncio.run(main)
    return samples, latencies


# -- 3. the pipe ----------------------------------------------------------------------------------


def pipe(work: Path, seconds: float) -> tuple[OrderLatencies, dict[str, int]]:
    out = work / "pipe.jsonl"
    logs = [work / f"pipe-{name}.err" for name in ("depth", "quote", "send")]
    env = base_env()
    quote_flags = [arg for key, value in STRATEGY.items()
                   for arg in ("--set", f"strategy.{key}={value}")]
    with Simulator(str(work)) as hostport:
        commands = [MMKIT + venue_flags(hostport) + ["depth", SYMBOL, "--levels", "5"],
                    MMKIT + ["quote", "--symbol", SYMBOL] + quote_flags,
                    MMKIT + venue_flags(hostport) + ["send", "--symbol", SYMBOL]]
        procs: list[subprocess.Popen] = []
        files = [open(log, "wb") for log in logs]
        dst = open(out, "wb")
        try:
            upstream = subprocess.DEVNULL
            for cmd, log in zip(commands, files, strict=True):
                last = cmd is commands[-1]
                proc = subprocess.Popen(cmd, cwd=work, env=env, stdin=upstream,
                                        stdout=dst if last else subprocess.PIPE, stderr=log)
                if procs:
                    procs[-1].stdout.close()  # only the next stage holds the pipe
                procs.append(proc)
                upstream = proc.stdout
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                for proc, cmd in zip(procs, ("depth", "quote", "send"), strict=False):
                    if proc.poll() is not None:
                        failed(f"the pipe's {cmd}", proc, logs[procs.index(proc)])
                time.sleep(0.2)
        finally:
            # depth first: quote and send then see the end of their input and finish
            # (send cancels its orders); anything still running after that gets SIGTERM too
            for proc in procs:
                stop(proc)
            dst.close()
            for file in files:
                file.close()
    latencies, kinds, _ = OrderLatencies.from_file(out)
    return latencies, kinds


def ratio(pipe_value: float, run_value: float) -> str:
    return f"{pipe_value / run_value:.1f}x" if run_value else "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s per row")
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds per process row (default 30; --quick 10)")
    parser.add_argument("--skip-in-process", action="store_true")
    args = parser.parse_args()
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    in_seconds = min(seconds, 10.0 if args.quick else 20.0)
    print(f"latency_bench: tick-to-order on the simulator over loopback, {SYMBOL}, "
          f"strategy {', '.join(f'{k} {v}' for k, v in STRATEGY.items())} "
          f"({sys.executable}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="latency_bench.") as tmp:
        work = Path(tmp)
        (work / "config.yaml").write_text(CONFIG_YAML)

        print(f"\n1. mmkit run, one process, {seconds:g} s each: ts − bookRecvTs of its "
              "order_new/order_modify lines, ms (integer ms: ±1)")
        print(HEADER)
        runs = {}
        for loop in ("uvloop", "asyncio"):
            latencies, kinds, summary = run_cli(work, seconds, loop)
            runs[loop] = ms_rows(f"run, {loop}", latencies)
            print(f"    ({describe(kinds, summary, latencies)})")

        if not args.skip_in_process:
            print(f"\n2. In process, {in_seconds:g} s each: Runner.on_tick_to_order "
                  "(perf_counter, book stored → just before the order requests), µs")
            print(HEADER)
            results = {}
            for loop in ("uvloop", "asyncio"):
                samples, latencies = in_process(work, in_seconds, loop)
                results[loop] = row(f"{loop}: on_tick_to_order µs", samples[1:], 1e6, 0)
                row(f"{loop}: ts − bookRecvTs ms", latencies.all)
                if samples:
                    print(f"    (first decision, left out: {samples[0] * 1e6:,.0f} µs, its "
                          f"{len(latencies.startup)} order lines max "
                          f"{max(latencies.startup, default=0)} ms)")
            if results["uvloop"] and results["asyncio"]:
                u, a = results["uvloop"], results["asyncio"]
                print("  asyncio / uvloop: " + ", ".join(
                    f"{k} {a[k] / u[k]:.2f}x" for k in ("p50", "p90", "p99", "mean")))

        print(f"\n3. Pipe depth | quote | send, three processes, {seconds:g} s: ts − "
              "bookRecvTs of send's order_new/order_modify lines, ms")
        print(HEADER)
        latencies, kinds = pipe(work, seconds)
        piped = ms_rows("pipe", latencies)
        print(f"    (send's lines: {describe(kinds, {}, latencies)})")
        base = runs.get("uvloop")
        if piped and base:
            print("  pipe / run (uvloop), all order lines: " + ", ".join(
                f"{k} {ratio(piped[k], base[k])}" for k in ("p50", "p90", "p99", "mean")))


if __name__ == "__main__":
    main()
