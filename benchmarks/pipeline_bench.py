"""The pipe `mmkit depth | mmkit quote | mmkit send --dry-run` on a real Binance USDⓈ-M
recording: lines/s through the three processes, each stage alone, and the in-process decision
time per book update.

    python benchmarks/pipeline_bench.py [--repeats N] [--quick] [--skip-pipeline]
                                        [--skip-decision]

Timings are the best of N runs (`--repeats`, default 5; `--quick`: 2). There is no peer: no
other tool runs this pipe (hummingbot's tick loop does book, strategy, risk and order diff in
one process on a clock, so its loop is not comparable to these stages, and it is not measured
here). The numbers are mmkit's own, for finding its bottleneck.

Data: ETHUSDT 2024-08-08 (`market/binance_usdm_hftbacktest/ethusdt_20240808.gz`, 345 s).

1. The pipe, in processes
-------------------------
Every command is `python -m mmkit ...` from this venv, run in a temporary directory (so no
configs/config.yaml is read) with no MMKIT_* variables but those set here. `send` needs a
venue for exchangeInfo, positions and open orders: the simulator runs in a subprocess
(`mmkit exchange serve --port 0 --symbols ETHUSDT --step`; step mode so its synthetic market
does not use CPU while the pipe runs) and `send` gets `--venue sim --base-url
http://127.0.0.1:PORT --ws-url ws://127.0.0.1:PORT send --dry-run --symbol ETHUSDT`.
Timed, wall clock from the first process start to the last exit:
- pipe: `depth --replay FILE --levels 5 | quote | send --dry-run ...`, send's stdout to a file;
- depth alone: `depth --replay FILE --levels 5 > books`;
- quote alone: `quote < books > quotes` (quote writes the book lines through, then its quotes);
- send alone: `send --dry-run ... < quotes > sent`;
- fixed costs: `mmkit --version` (interpreter and CLI start), `quote < /dev/null`, and
  `send --dry-run < /dev/null` (start, exchangeInfo + positions + open orders over loopback,
  cancel-all at the end). Every stage's time includes its start.
book lines/s = book lines written by depth / wall time, for every row (the rate at which the
recording's book updates get through that stage or the whole pipe).
Two risk settings. `send` recognises a replayed recording (its first book is far from the
wall clock) and keeps the recording's clock, so the guards judge the books by their own times:
- defaults: the strategy's and risk guards' defaults, as a user runs the pipe on a recording;
- guards lifted (env MMKIT_SYMBOLS_ETHUSDT_RISK_MAXBOOKAGEMS=10^15 and
  ..._RISK_MAXORDERSPERWINDOW=10^9, given to all three stages): no data-latency or order-rate
  guard can hold an order back, the most work send can be given.
In both, send places, modifies and cancels (dry run: every action is taken as accepted at
once), as it would live; on a recording it acts on every quote (no superseded-quote skipping).
With 2 CPUs or fewer the three stages compete for them; the CPU count is printed.

2. Decision time per book update, in process
--------------------------------------------
The book lines are `depth --replay FILE --levels 5`'s output (one run, kept in memory), each
converted before timing with `mmkit.feeds.book_top_from_line(spec, line)`, spec =
`default_specs(["ETHUSDT"])["ETHUSDT"]`. A run builds `make_strategy(spec, StrategyConfig())`,
`build_guards(spec, RiskConfig(), InventoryConfig())` and `OrderManager(spec,
ClientIds("mm", "bench"))`, then for every book, with now = the book's recvTs (the recording's
clock, so the default guards apply as they would live), times with `time.perf_counter_ns`:
`risk.on_book(book)` + `strategy.on_book(book)` and, when that returns a quote,
`risk.apply(quote, now)` + `manager.diff(quote.levels, now,
half_spread_ticks=quote.reasons.get("halfSpreadTicks"))`. Untimed, after each update: every
Place/Modify is acknowledged with `manager.on_ack(cid, {"orderId": n, "status": "NEW"}, now)`,
every Cancel with `on_cancel_ack(cid, {"status": "CANCELED"})`, and `risk.on_order_sent(now,
places + modifies)`, as `send` does, so the orders' state evolves as on a venue. The garbage
collector stays on. Reported from the run with the smallest total: p50, p99, max and mean µs
per update, over all updates and over those that produced a quote, and the actions made.

The data comes from ../shared/data (or $MMKIT_DATA); see its README.
"""

from __future__ import annotations

import argparse
import os
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

RECORDINGS = "market/binance_usdm_hftbacktest"
RECORDING = "ethusdt_20240808.gz"
SYMBOL = "ETHUSDT"
LEVELS = "5"
MMKIT = [sys.executable, "-m", "mmkit"]
LIFTED = {"MMKIT_SYMBOLS_ETHUSDT_RISK_MAXBOOKAGEMS": str(10**15),
          "MMKIT_SYMBOLS_ETHUSDT_RISK_MAXORDERSPERWINDOW": str(10**9)}


def data_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    path = Path(os.environ.get("MMKIT_DATA", default))
    if not (path / RECORDINGS / RECORDING).is_file():
        sys.exit(f"pipeline_bench: recording not found: {path / RECORDINGS / RECORDING} "
                 "(set MMKIT_DATA)")
    return path


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMKIT_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def count_lines(path: Path, kind: bytes | None = None) -> int:
    with open(path, "rb") as lines:
        if kind is None:
            return sum(1 for _ in lines)
        tag = b'"type":"' + kind + b'"'
        return sum(1 for line in lines if tag in line[:40])


# -- 1. the pipe ----------------------------------------------------------------------------------


class Simulator:
    """`mmkit exchange serve` in a subprocess on a free port."""

    def __init__(self, cwd: str):
        self.cwd = cwd

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(
            MMKIT + ["exchange", "serve", "--port", "0", "--symbols", SYMBOL, "--step"],
            cwd=self.cwd, env=base_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        line = self.proc.stderr.readline()
        if "REST http://" not in line:
            self.proc.kill()
            sys.exit(f"pipeline_bench: the simulator did not start ({line!r})")
        # keep reading its log so a full pipe never blocks it
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        self.url = line.split("REST ", 1)[1].split()[0]
        return self.url.split("://", 1)[1]

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def timed(commands: list[list[str]], stdin: Path | None, stdout: Path, cwd: str,
          env: dict[str, str]) -> float:
    """Seconds from starting the first command to the exit of the last; stdin → cmd1 | cmd2 |
    ... → stdout. Fails the run if any command fails."""
    src = open(stdin, "rb") if stdin else subprocess.DEVNULL
    dst = open(stdout, "wb")
    logs = [tempfile.TemporaryFile() for _ in commands]  # stderr; a pipe could fill and block
    procs: list[subprocess.Popen] = []
    try:
        start = time.perf_counter()
        upstream = src
        for cmd, log in zip(commands, logs, strict=True):
            last = cmd is commands[-1]
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=upstream,
                                    stdout=dst if last else subprocess.PIPE, stderr=log)
            if procs:
                procs[-1].stdout.close()  # only the next stage holds the pipe
            procs.append(proc)
            upstream = proc.stdout
        for proc in procs:
            proc.wait()
        seconds = time.perf_counter() - start
        for proc, log in zip(procs, logs, strict=True):
            if proc.returncode != 0:
                log.seek(0)
                sys.exit(f"pipeline_bench: {' '.join(proc.args[3:])} exited "
                         f"{proc.returncode}:\n{log.read().decode(errors='replace')[-2000:]}")
    finally:
        if src is not subprocess.DEVNULL:
            src.close()
        dst.close()
        for log in logs:
            log.close()
    return seconds


def best(repeats: int, fn, *args) -> float:
    return min(fn(*args) for _ in range(repeats))


def pipeline_section(data: Path, repeats: int, work: str) -> None:
    recording = str(data / RECORDINGS / RECORDING)
    depth = MMKIT + ["depth", "--replay", recording, "--levels", LEVELS]
    quote = MMKIT + ["quote"]
    books, quotes, sent, piped, empty = (Path(work) / name for name in
                                         ("books.jsonl", "quotes.jsonl", "sent.jsonl",
                                          "piped.jsonl", "empty.jsonl"))
    print(f"1. Pipe: depth --replay {RECORDING} --levels {LEVELS} | quote | send --dry-run "
          f"(best of {repeats}; {os.cpu_count()} CPUs; wall time includes each process's "
          "start)")
    with Simulator(work) as hostport:
        send = MMKIT + ["--venue", "sim", "--base-url", f"http://{hostport}", "--ws-url",
                        f"ws://{hostport}", "send", "--dry-run", "--symbol", SYMBOL]
        for label, extra in (("risk defaults", {}), ("guards lifted", LIFTED)):
            env = base_env(extra)
            rows = [
                ("pipe depth|quote|send", best(repeats, timed, [depth, quote, send], None,
                                               piped, work, env), piped),
                ("depth alone", best(repeats, timed, [depth], None, books, work, env), books),
                ("quote alone", best(repeats, timed, [quote], books, quotes, work, env),
                 quotes),
                ("send alone", best(repeats, timed, [send], quotes, sent, work, env), sent),
            ]
            n_books = count_lines(books)
            n_quotes = count_lines(quotes, b"quote")
            print(f"\n  {label}: {n_books:,} book lines in, {n_quotes:,} quote lines "
                  f"({count_lines(quotes):,} lines out of quote), "
                  f"{count_lines(piped):,} lines out of send in the pipe")
            print(f"  {'run':<24}{'wall s':>9}{'lines in':>10}{'lines out':>11}"
                  f"{'book lines/s':>14}")
            inputs = {"pipe depth|quote|send": n_books, "depth alone": n_books,
                      "quote alone": count_lines(books), "send alone": count_lines(quotes)}
            for name, seconds, out in rows:
                print(f"  {name:<24}{seconds:>9.3f}{inputs[name]:>10,}{count_lines(out):>11,}"
                      f"{n_books / seconds:>14,.0f}")
            if label == "guards lifted":
                kinds: dict[str, int] = {}
                with open(piped, "rb") as lines:
                    for line in lines:
                        kind = orjson.loads(line)["type"]
                        kinds[kind] = kinds.get(kind, 0) + 1
                print("  send's lines in the pipe: " +
                      ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items())))
        empty.write_bytes(b"")
        env = base_env()
        print("\n  fixed costs (no input)")
        for name, cmds in (("mmkit --version", [MMKIT + ["--version"]]),
                           ("quote < /dev/null", [quote]),
                           ("send < /dev/null", [send])):
            print(f"  {name:<24}{best(repeats, timed, cmds, empty, sent, work, env):>9.3f}")


# -- 2. decision time in process ------------------------------------------------------------------


def load_books(data: Path, work: str) -> tuple:
    from mmkit.feeds import book_top_from_line
    from mmkit.sim.instruments import default_specs

    spec = default_specs([SYMBOL])[SYMBOL]
    out = subprocess.run(MMKIT + ["depth", "--replay", str(data / RECORDINGS / RECORDING),
                                  "--levels", LEVELS],
                         cwd=work, env=base_env(), capture_output=True, check=True).stdout
    lines = [orjson.loads(line) for line in out.splitlines() if line]
    return spec, [book_top_from_line(spec, line) for line in lines if line["type"] == "book"]


def decision_run(spec, books: list) -> tuple[list[int], list[bool], dict[str, int]]:
    from mmkit.config import InventoryConfig, RiskConfig, StrategyConfig
    from mmkit.orders import Cancel, ClientIds, Modify, OrderManager, Place
    from mmkit.risk import build_guards
    from mmkit.strategy import make_strategy

    strategy = make_strategy(spec, StrategyConfig())
    risk = build_guards(spec, RiskConfig(), InventoryConfig())
    manager = OrderManager(spec, ClientIds("mm", "bench"))
    clock = time.perf_counter_ns
    times: list[int] = []
    quoted: list[bool] = []
    counts = {"place": 0, "modify": 0, "cancel": 0, "other": 0, "risk events": 0}
    next_id = 0
    for book in books:
        now = book.recv_ts
        start = clock()
        events = risk.on_book(book)
        quote = strategy.on_book(book)
        actions = ()
        if quote is not None:
            allowed, more = risk.apply(quote, now)
            actions = manager.diff(allowed.levels, now,
                                   half_spread_ticks=allowed.reasons.get("halfSpreadTicks"))
        times.append(clock() - start)
        quoted.append(quote is not None)
        if quote is not None:
            events = events + more
        counts["risk events"] += len(events)
        sent = 0
        for action in actions:
            if isinstance(action, Place):
                next_id += 1
                manager.on_ack(action.order.client_order_id,
                               {"orderId": next_id, "status": "NEW"}, now)
                counts["place"] += 1
                sent += 1
            elif isinstance(action, Modify):
                manager.on_ack(action.order.client_order_id,
                               {"orderId": action.order.order_id, "status": "NEW"}, now)
                counts["modify"] += 1
                sent += 1
            elif isinstance(action, Cancel):
                manager.on_cancel_ack(action.order.client_order_id, {"status": "CANCELED"})
                counts["cancel"] += 1
            else:
                counts["other"] += 1
        if sent:
            risk.on_order_sent(now, sent)
    return times, quoted, counts


def percentile(sorted_values: list[int], q: float) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def decision_section(data: Path, repeats: int, work: str) -> None:
    spec, books = load_books(data, work)
    runs = [decision_run(spec, books) for _ in range(repeats)]
    times, quoted, counts = min(runs, key=lambda run: sum(run[0]))
    print(f"\n2. Decision per book update in process: risk.on_book + strategy.on_book "
          f"[+ risk.apply + manager.diff] (best of {repeats} by total)")
    print(f"  {len(books):,} book updates, {sum(quoted):,} quotes; actions: " +
          ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print(f"  {'updates':<22}{'count':>8}{'p50 µs':>9}{'p99 µs':>9}{'max µs':>9}"
          f"{'mean µs':>9}{'total ms':>10}")
    for name, values in (("all", times),
                         ("with a quote", [t for t, q in zip(times, quoted, strict=True) if q]),
                         ("without a quote",
                          [t for t, q in zip(times, quoted, strict=True) if not q])):
        ordered = sorted(values)
        if not ordered:
            continue
        print(f"  {name:<22}{len(ordered):>8,}{percentile(ordered, 0.5) / 1e3:>9.1f}"
              f"{percentile(ordered, 0.99) / 1e3:>9.1f}{ordered[-1] / 1e3:>9.1f}"
              f"{statistics.fmean(ordered) / 1e3:>9.1f}{sum(ordered) / 1e6:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="2 repeats")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--skip-decision", action="store_true")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 5)
    data = data_dir()
    print(f"pipeline_bench: mmkit on {RECORDING} ({sys.executable}, Python "
          f"{sys.version.split()[0]})\n")
    with tempfile.TemporaryDirectory(prefix="pipeline_bench.") as work:
        if not args.skip_pipeline:
            pipeline_section(data, repeats, work)
        if not args.skip_decision:
            decision_section(data, repeats, work)


if __name__ == "__main__":
    main()
