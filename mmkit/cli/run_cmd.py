"""`mmkit run`: the whole bot in one process. With no keys and no venue it trades an embedded
simulator (paper trading); `--venue testnet` or `--venue live --live` point it at Binance."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import time
from decimal import Decimal, InvalidOperation

import click

from mmkit.cli.common import load, run
from mmkit.cli.market_data import parse_interval_ms
from mmkit.errors import ConfigError
from mmkit.stream import LineWriter
from mmkit.tasks import cancel_and_wait


def _speed_option(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number > 0, got {value}")
    return value


def _duration_option(ctx: click.Context, param: click.Parameter,
                     value: str | None) -> float | None:
    """DURATION in seconds; a duration must be > 0 (none at all: until stopped)."""
    if value is None:
        return None
    ms = parse_interval_ms(value)
    if ms <= 0:
        raise click.BadParameter(f"must be > 0, got {value!r} (leave it out to run until "
                                 "stopped)")
    return ms / 1000


def metrics_listen_option(ctx: click.Context, param: click.Parameter,
                          value: str | None) -> str | None:
    """`off`, or HOST:PORT with a port from 0 to 65535."""
    if value is None or value == "off":
        return value
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(f"expected HOST:PORT (a port from 0 to 65535) or off, "
                                 f"got {value!r}")
    return value


@click.command("run")
@click.option("--symbol", metavar="SYMBOL", help="Symbol to trade (default: the first "
              "configured symbol, ETHUSDC).")
@click.option("--duration", metavar="DURATION", callback=_duration_option,
              help="Stop after this much venue time, e.g. 90s, 10m; must be > 0 "
                   "(default: until Ctrl-C or SIGTERM).")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, callback=_speed_option,
              help="Embedded simulator only: venue time runs this many times faster (> 0).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Embedded simulator only: the synthetic market's seed.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override a setting of the traded symbol, e.g. strategy.spreadTicks=3 "
                   "(repeatable; keys as in the config's symbols.<SYMBOL> section).")
@click.option("--live", is_flag=True, help="Required to trade real money on the live venue.")
@click.option("--lockstep", is_flag=True,
              help="Simulator only: drive venue time one market event at a time, reacting to "
                   "each before the next: repeatable, as fast as the bot goes (the embedded "
                   "simulator, or `mmkit exchange serve --step`).")
@click.option("--position", "expected_position", metavar="QTY",
              help="Refuse to start unless the venue's position is this (within a step).")
@click.option("--metrics", "metrics_listen", metavar="HOST:PORT",
              callback=metrics_listen_option,
              help="Serve Prometheus /metrics here (default: the config's metrics.listen, "
                   "127.0.0.1:9100); `off` to serve none.")
@click.option("--lines/--status", "as_lines", default=None,
              help="JSON lines of fills, orders and risk events on stdout, or a live status "
                   "line (default: status on a terminal, lines otherwise).")
@click.pass_context
def run_cmd(ctx: click.Context, symbol: str | None, duration: float | None, speed: float,
            seed: int, settings: tuple[str, ...], live: bool, lockstep: bool,
            expected_position: str | None, metrics_listen: str | None,
            as_lines: bool | None) -> None:
    """Quote, trade and manage risk for one symbol until stopped; cancel everything and print
    a summary at the end. Parameters: docs/strategy.md and docs/risk.md.

    \b
    Examples:
      mmkit run                                   # paper trading on an embedded simulator
      mmkit run --duration 10m --speed 20         # a quick look: 10 minutes at 20x
      mmkit run --set strategy.spreadTicks=3      # another setting, this run only
      mmkit --venue testnet run --symbol ETHUSDC  # Binance's testnet (testnet keys)
      mmkit --venue live run --live               # real money
      mmkit run --lockstep --duration 1h          # an hour of venue time, repeatable
    """
    from mmkit.ops import logs

    config = load(ctx)
    symbol = (symbol or next(iter(sorted(config.symbols)), "ETHUSDC")).upper()
    if settings:
        from mmkit.cli.settings import with_settings

        config = with_settings(ctx, settings, [symbol], "run")
    if config.gateway.venue == "live" and not live:
        raise click.UsageError("refusing to trade real money on the live venue without --live")
    if lockstep and config.gateway.venue != "sim":
        raise click.UsageError("--lockstep drives a simulator's clock: use it with --venue sim")
    if _embedded(config):
        from mmkit.sim.instruments import SYMBOLS

        if symbol not in SYMBOLS:
            raise ConfigError(f"the embedded simulator lists {', '.join(SYMBOLS)}, "
                              f"not {symbol}", "--symbol")
    else:
        from mmkit.config import require_credentials

        require_credentials(config)  # before the journal, the summary or any request
    verbose = ctx.find_root().obj.verbose
    logs.setup(config.log.format, "DEBUG" if verbose > 1 else "INFO" if verbose
               else config.log.level)
    try:
        expected = Decimal(expected_position) if expected_position is not None else None
    except InvalidOperation:
        raise click.BadParameter(f"not a quantity: {expected_position!r}",
                                 param_hint="--position") from None
    if as_lines is None:
        as_lines = not sys.stdout.isatty()
    listen = metrics_listen or config.metrics.listen
    run(_run(config, symbol, duration, speed, seed, expected, as_lines,
             None if listen == "off" else listen, lockstep))


def _embedded(config) -> bool:
    """No venue chosen and no keys: paper trading on a simulator started in-process."""
    gateway = config.gateway
    return gateway.venue == "sim" and not gateway.base_url and config.credentials() is None


async def _run(config, symbol: str, seconds: float | None, speed: float, seed: int,
               expected: Decimal | None, as_lines: bool, listen: str | None,
               lockstep: bool) -> None:
    server = None
    if _embedded(config):
        server = _start_simulator(symbol, speed, seed, lockstep,
                                  _journal_end(config.journal.path, symbol))
        config = _pointed_at(config, server)
        pace = "lockstep" if lockstep else f"speed {speed:g}x"
        print(f"mmkit run: paper trading {symbol} on an embedded simulator at "
              f"{server.base_url} (synthetic market, seed {seed}, {pace})", file=sys.stderr)
    try:
        await _trade(config, symbol, seconds, expected, as_lines,
                     wall_scale=speed if server else 1.0, listen=listen, lockstep=lockstep)
    finally:
        if server is not None:
            server.stop()


def _journal_end(path: str, symbol: str) -> int | None:
    """The journal's newest row of `symbol`: a run starts its venue clock after it, so its
    rows never fall among an earlier run's (a sped-up run's clock went ahead of the wall; a
    lockstep run starts where the synthetic market does, every time)."""
    from mmkit.journal import newest_ts

    return newest_ts(path, symbol)


def _start_simulator(symbol: str, speed: float, seed: int, lockstep: bool = False,
                     not_before_ms: int | None = None):
    from mmkit.sim.engine import EngineConfig
    from mmkit.sim.instruments import default_specs
    from mmkit.sim.market import DEFAULT_START_MS, SyntheticMarket
    from mmkit.sim.server import ServerThread
    from mmkit.sim.venue import Venue, VenueClock

    specs = default_specs([symbol])
    clock = VenueClock(speed=speed, step_mode=lockstep)
    after = 0 if not_before_ms is None else not_before_ms + 1000
    if lockstep:
        # the venue takes the market's time: the backtester's synthetic market's, unless the
        # journal already has rows from then on
        start = {"start_ms": after} if after > DEFAULT_START_MS else {}
    else:
        clock.start_ms = max(clock.start_ms, after)
        start = {"start_ms": clock.now()}
    market = iter(SyntheticMarket(specs[symbol], seed=seed, **start))
    venue = Venue(specs, market, config=EngineConfig(seed=seed), clock=clock, seed=seed)
    return ServerThread(venue, "127.0.0.1", 0).start()


def _pointed_at(config, server):
    import dataclasses

    gateway = dataclasses.replace(config.gateway, base_url=server.base_url,
                                  ws_url=server.ws_url)
    return dataclasses.replace(config, gateway=gateway)


async def _trade(config, symbol: str, duration_s: float | None, expected: Decimal | None,
                 as_lines: bool, wall_scale: float, listen: str | None,
                 lockstep: bool = False) -> None:
    from mmkit.cli.common import rest_client
    from mmkit.cli.market_data import _routed, _venue_spec
    from mmkit.execution import Execution, wall_ms
    from mmkit.journal import Journal
    from mmkit.ops.metrics import RunCollector, RunMetrics
    from mmkit.orders import ClientIds, manager_for
    from mmkit.risk import build_guards
    from mmkit.runner import Runner, StepClock
    from mmkit.strategy import make_strategy

    out = LineWriter()
    metrics = RunMetrics(symbol)
    journal = Journal(config.journal.path, f"run-{wall_ms() // 1000}-{os.getpid()}")

    def emit(line: dict) -> None:
        metrics.on_line(line)
        journal.write(line)
        if as_lines and line["type"] != "mark":
            out.write(line)

    async with rest_client(config, observer=metrics.on_request) as client:
        await client.sync_time()
        spec = await _venue_spec(client, symbol)
        symbol_config = config.symbols.get(symbol)
        if symbol_config is None:
            from mmkit.config import SymbolConfig

            symbol_config = SymbolConfig()
        if config.gateway.venue == "sim" and wall_scale == 1 and not lockstep:
            wall_scale = await _served_speed(client)  # `exchange serve --speed N`
        # on a sped-up simulator venue time runs `wall_scale` times faster than ours
        start_wall = time.time()
        start_venue = client.venue_now_ms()

        def venue_ms() -> int:
            return start_venue + int((time.time() - start_wall) * 1000 * wall_scale)

        if wall_scale != 1:  # the venue counts its rate-limit windows in venue time
            client.venue_clock, client.venue_speed = venue_ms, wall_scale
        step_clock = None
        if lockstep:  # venue time is what the venue's last step said
            venue_ms = client.venue_clock = step_clock = StepClock(await _step_mode_time(client))

        manager = manager_for(spec, ClientIds.for_run("mm", wall_ms(), salt=os.getpid()),
                              symbol_config.strategy, max_age_ms=60_000)
        execution = Execution(client, manager, symbol, emit, now=venue_ms)
        runner = Runner(config=config, spec=spec, client=client, ws_url=config.ws_url,
                        routed=_routed(config), strategy=make_strategy(spec,
                                                                       symbol_config.strategy,
                                                                       symbol_config.inventory),
                        risk=build_guards(spec, symbol_config.risk, symbol_config.inventory),
                        manager=manager, execution=execution, emit=emit, wall_ms=venue_ms,
                        lockstep=step_clock, venue_speed=wall_scale)
        runner.on_tick_to_order = metrics.tick_to_order.observe
        runner.journal_path = config.journal.path
        metrics.registry.register(RunCollector(runner))
        http = _serve_metrics(metrics, listen)
        status_task = None if as_lines else asyncio.create_task(_show_status(runner))
        try:
            await runner.start(expected)
            await runner.run(duration_s / (1 if lockstep else wall_scale)
                             if duration_s else None)
        finally:
            # a second SIGTERM may cut the clean-up short; the summary and journal still close
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await runner.stop()
            if status_task is not None:
                await cancel_and_wait(status_task)
            if http is not None:
                http.shutdown()
            journal.write(_summary(runner, out, as_lines))
            journal.close()


async def _served_speed(client) -> float:
    """How fast a simulator's venue time runs (its /_sim/published); 1 when it does not say
    (another Binance-compatible venue)."""
    from mmkit.errors import MmkitError

    try:
        state = await client.request("GET", "/_sim/published")
    except MmkitError:
        return 1.0
    speed = state.get("speed") if isinstance(state, dict) else None
    return float(speed) if isinstance(speed, int | float) and speed > 0 else 1.0


async def _step_mode_time(client) -> int:
    """The venue's time, checking it is a simulator in step mode."""
    from mmkit.errors import VenueError

    try:
        state = await client.request("GET", "/_sim/published")
        await client.request("POST", "/_sim/step", {"events": 0})
    except VenueError as exc:
        raise click.UsageError(f"--lockstep needs `mmkit exchange serve --step` at "
                               f"{client.base_url}: {exc}") from None
    return int(state["time"])


def _serve_metrics(metrics, listen: str | None):
    """Start /metrics; a port in use is a usage error naming the address."""
    if listen is None:
        return None
    try:
        server, _ = metrics.serve(listen)
    except OSError as exc:
        raise click.UsageError(f"cannot serve metrics on {listen}: {exc.strerror or exc} "
                               "(--metrics HOST:PORT, or --metrics off)") from None
    print(f"mmkit run: metrics on http://{listen}/metrics", file=sys.stderr)
    return server


async def _show_status(runner) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=True)
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while True:
            live.update(_status_text(runner))
            await asyncio.sleep(0.25)


def _status_text(runner):
    """One line that fits 80 columns: mid, spread, position, fills (maker), net PnL after
    fees, orders sent, risk mode."""
    from rich.text import Text

    s = runner.status
    net = s.realized - s.fees
    text = (f"{s.symbol} {s.mid or '-'} ({s.spread_ticks or '-'}t) pos {s.position} "
            f"fills {s.fills}/{s.maker_fills}m net {net:+.4f} ord {s.orders} {s.risk_mode}")
    return Text(text + (f" paused:{s.paused}" if s.paused else ""))


def _summary(runner, out: LineWriter, as_lines: bool) -> dict:
    s = runner.status
    elapsed_s = (runner.wall_ms() - s.started_ms) / 1000
    line = {"type": "summary", "symbol": s.symbol, "ts": runner.wall_ms(),
            "venueSeconds": round(elapsed_s, 1), "fills": s.fills, "makerFills": s.maker_fills,
            "volume": str(s.volume.quantize(Decimal("0.01"))),
            "realizedPnl": format(s.realized, "f"), "fees": format(s.fees, "f"),
            "netPnl": format(s.realized - s.fees, "f"), "position": s.position,
            "orders": s.orders, "quotes": s.quotes, "bookResyncs": s.resyncs,
            "riskMode": s.risk_mode}
    if as_lines:
        out.write(line)
    print("mmkit run: " + ", ".join(f"{k} {v}" for k, v in line.items()
                                    if k not in ("type", "ts")), file=sys.stderr)
    print(f"mmkit run: journal in {runner.journal_path}; `mmkit pnl-report` tells whether it "
          "made money after fees", file=sys.stderr)
    return line
