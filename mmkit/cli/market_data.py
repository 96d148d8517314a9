"""`mmkit depth` and `mmkit trades`: the first stage of a pipeline, live or from a recording."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Iterator

import click

from mmkit.cli.common import load, rest_client, run
from mmkit.errors import ConfigError, InputError
from mmkit.recording import RawMessage, read_messages
from mmkit.stream import LineWriter

UPDATE_SPEEDS = {"0ms": "@depth@0ms", "100ms": "@depth@100ms", "250ms": "@depth",
                 "500ms": "@depth@500ms"}


def parse_interval_ms(text: str) -> int:
    """`100ms`, `1s`, `10m`, `2h`, `250` (ms) → ms."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text or "")
    if not match:
        raise click.BadParameter(f"expected a duration like 100ms, 1s or 10m, got {text!r}")
    value, unit = float(match.group(1)), match.group(2) or "ms"
    return int(value * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[unit])


def replay_options(func):
    func = click.option("--speed", type=float, default=0.0, show_default=True,
                        help="With --replay: 1 = recorded pace, 10 = ten times faster, "
                             "0 = as fast as possible.")(func)
    func = click.option("--replay", "replay", multiple=True, metavar="FILE",
                        type=click.Path(dir_okay=False),
                        help="Re-emit a recording (mmkit .jsonl[.gz] or hftbacktest .gz) "
                             "instead of connecting; repeat for continuation files.")(func)
    return func


@click.command("depth")
@click.argument("symbol", required=False)
@click.option("--levels", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Levels per side in each book line.")
@click.option("--every", "every", metavar="DURATION",
              help="At most one book line per interval (e.g. 100ms, 1s).")
@click.option("--on-change", is_flag=True, help="A book line after every update (default).")
@click.option("--stale", "stale", metavar="DURATION", default="5s", show_default=True,
              help="No update for this long: a book line with stale=true.")
@click.option("--update-speed", type=click.Choice(list(UPDATE_SPEEDS)), default="100ms",
              show_default=True, help="The diff stream's update speed.")
@click.option("--record", metavar="FILE", type=click.Path(dir_okay=False, writable=True),
              help="Also write the snapshot, raw diffs and trades with receive times "
                   "(gzip when FILE ends in .gz), for --replay and the simulator.")
@click.option("--user", is_flag=True,
              help="Also the account's position and fill lines for SYMBOL, from the user "
                   "data stream (starting with the position now), so `quote` knows the "
                   "inventory: mmkit depth ETHUSDC --user | mmkit quote | mmkit send.")
@replay_options
@click.pass_context
def depth(ctx: click.Context, symbol: str | None, levels: int, every: str | None,
          on_change: bool, stale: str, update_speed: str, record: str | None, user: bool,
          replay: tuple[str, ...], speed: float) -> None:
    """The local order book as `book` lines (docs/streams.md), kept by Binance's
    snapshot + diff procedure; a break is logged as book_resync and the book re-synced.

    With --user, the account's `position` and `fill` lines for the symbol come in the same
    stream: the position now (REST) first, then the user data stream's, as `mmkit
    userstream` gets them (listen key kept alive and renewed; after a reconnect, missed
    fills recovered and the position reconciled). `quote` reads them for its inventory
    skew, take-profit and maxInventory; `send`, which has its own user stream, passes the
    position lines on and writes each fill once (its own).

    \b
    Examples:
      mmkit --venue sim depth ETHUSDC --user | mmkit quote | mmkit --venue sim send
      mmkit --venue sim depth ETHUSDC --levels 5 --every 100ms
      mmkit --venue sim depth ETHUSDC --record eth.jsonl.gz
      mmkit depth --replay eth.jsonl.gz --speed 10
      mmkit depth --replay ../shared/data/market/binance_usdm_hftbacktest/ethusdt_20240808.gz
    """
    if every and on_change:
        raise click.UsageError("--every and --on-change do not go together: one book line "
                               "per interval, or one after every update")
    _speed_needs_replay(ctx, replay)
    every_ms = 0 if on_change or not every else parse_interval_ms(every)
    stale_ms = parse_interval_ms(stale)
    if replay:
        if record:
            raise click.UsageError("--record and --replay do not go together")
        if user:
            raise click.UsageError("--user reads the account's live stream; a --replay has "
                                   "none (give `quote --position` instead)")
        _replay_depth(list(replay), symbol, levels, every_ms, stale_ms, speed)
        return
    if not symbol:
        raise click.UsageError("give a SYMBOL (or --replay FILE)")
    if record:
        from mmkit.recording import check_writable

        check_writable(record)
    run(_live_depth(load(ctx), symbol.upper(), levels, every_ms, stale_ms,
                    UPDATE_SPEEDS[update_speed], record, user))


@click.command("trades")
@click.argument("symbol", required=False)
@click.option("--mark", is_flag=True, help="Also `markPrice` lines (mark, index, funding "
              "rate) every second, for the strategy's funding signal.")
@replay_options
@click.pass_context
def trades(ctx: click.Context, symbol: str | None, mark: bool, replay: tuple[str, ...],
           speed: float) -> None:
    """Public trades (aggTrade) as `trade` lines; `side` is the aggressor's.

    \b
    Examples:
      mmkit --venue sim trades ETHUSDC
      mmkit --venue sim trades ETHUSDC --mark
      mmkit trades --replay ../shared/data/market/binance_usdm_hftbacktest/ethusdt_20240808.gz
    """
    _speed_needs_replay(ctx, replay)
    if replay:
        _replay_trades(list(replay), symbol, speed)
        return
    if not symbol:
        raise click.UsageError("give a SYMBOL (or --replay FILE)")
    run(_live_trades(load(ctx), symbol.upper(), mark))


def _speed_needs_replay(ctx: click.Context, replay: tuple[str, ...]) -> None:
    from click.core import ParameterSource

    if not replay and ctx.get_parameter_source("speed") not in (ParameterSource.DEFAULT, None):
        raise click.UsageError("--speed paces a --replay; a live stream comes at the venue's pace")


# -- live ---------------------------------------------------------------------------------------


async def _venue_spec(client, symbol: str):
    from mmkit.symbols import SymbolSpec

    info = await client.exchange_info()
    for entry in info["symbols"]:
        if entry["symbol"] == symbol:
            return SymbolSpec.from_exchange_info(entry)
    raise ConfigError(f"no such symbol on this venue: {symbol}", "SYMBOL")


def _routed(config) -> bool:
    """Binance's 2026 routed stream paths; its testnet is documented with the plain ones."""
    return config.gateway.venue != "testnet" or bool(config.gateway.ws_url)


async def _live_depth(config, symbol: str, levels: int, every_ms: int, stale_ms: int,
                      suffix: str, record: str | None, user: bool = False) -> None:
    from mmkit.binance.ws import StreamClient, route_for, stream_url
    from mmkit.feeds import DepthFeed
    from mmkit.recording import Recorder

    out = LineWriter()
    depth_stream = symbol.lower() + suffix
    trade_stream = symbol.lower() + "@aggTrade"

    def url(stream: str) -> str:
        return stream_url(config.ws_url, [stream], route_for(stream) if _routed(config) else None)

    async with rest_client(config) as client:
        spec = await _venue_spec(client, symbol)
        recorder = Recorder(record, note=f"symbol={symbol} venue={config.gateway.venue}") \
            if record else None
        on_raw = None
        if recorder is not None:
            def on_raw(kind, data, recv_ms):
                if kind == "snapshot":
                    recorder.snapshot(recv_ms, data)
                else:
                    recorder.message(recv_ms, depth_stream, data)
        feed = DepthFeed(spec, StreamClient(url(depth_stream)), client.depth, levels=levels,
                         every_ms=every_ms, stale_ms=stale_ms, on_raw=on_raw)
        recording_trades = asyncio.create_task(
            _record_trades(StreamClient(url(trade_stream)), trade_stream, recorder)) \
            if recorder is not None else None
        try:
            if user:
                await _with_account(client, config, symbol, out, feed.lines_out())
            else:
                async for line in feed.lines_out():
                    out.write(line)
        finally:
            if recording_trades is not None:
                recording_trades.cancel()
            if recorder is not None:
                recorder.close()


async def _with_account(client, config, symbol: str, out: LineWriter, book_lines) -> None:
    """`depth --user`: the book lines merged with the account's `position` and `fill` lines
    for `symbol`. First the position now (REST, `reason` SNAPSHOT, the net of the symbol's
    rows; a flat account gets qty 0 too, so a stage's `--position` guess is replaced), then
    the user data stream's lines (`mmkit.userstream`: listen key kept alive and renewed,
    reconciled over REST after a reconnect, fills deduplicated). Either ending ends both;
    an error of either (a key the venue refuses) ends the command."""
    from decimal import Decimal

    from mmkit.execution import wall_ms
    from mmkit.tasks import cancel_and_wait
    from mmkit.userstream import UserStream, position_line_from_rest

    rows = [row for row in await client.positions(symbol) if row.get("symbol") == symbol]
    if len(rows) != 1:  # none, or a hedge-mode account's LONG and SHORT: their net
        net = sum((Decimal(row.get("positionAmt") or "0") for row in rows), Decimal(0))
        rows = [{"symbol": symbol, "positionAmt": str(net)}]
    out.write({**position_line_from_rest(rows[0], wall_ms()), "reason": "SNAPSHOT"})
    stream = UserStream(client, config.ws_url, [symbol], routed=_routed(config),
                        since_ms=client.venue_now_ms())

    async def account() -> None:
        async for line in stream.lines():
            if line.get("type") in ("position", "fill"):
                out.write(line)

    async def books() -> None:
        async for line in book_lines:
            out.write(line)

    tasks = [asyncio.create_task(books()), asyncio.create_task(account())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        await cancel_and_wait(*tasks)


async def _record_trades(stream, name: str, recorder) -> None:
    from mmkit.binance.ws import StreamMessage

    async for item in stream.messages():
        if isinstance(item, StreamMessage):
            recorder.message(item.recv_ms, name, item.data)


async def _live_trades(config, symbol: str, mark: bool = False) -> None:
    from mmkit.binance.ws import StreamClient, StreamMessage, route_for, stream_url
    from mmkit.feeds import mark_line, trade_line

    out = LineWriter()
    names = [symbol.lower() + "@aggTrade"] + ([symbol.lower() + "@markPrice@1s"] if mark else [])
    url = stream_url(config.ws_url, names, route_for(names[0]) if _routed(config) else None)
    async with rest_client(config) as client:
        spec = await _venue_spec(client, symbol)
    async for item in StreamClient(url).messages():
        if not isinstance(item, StreamMessage):
            continue
        kind = item.data.get("e")
        if kind in ("aggTrade", "trade"):
            out.write(trade_line(spec, item.data))
        elif kind == "markPriceUpdate":
            out.write(mark_line(item.data))


# -- replay -------------------------------------------------------------------------------------


def _replay_depth(paths: list[str], symbol: str | None, levels: int, every_ms: int,
                  stale_ms: int, speed: float) -> None:
    from mmkit.feeds import RecordedDepth

    messages, spec = _open_replay(paths, symbol)
    source = RecordedDepth(spec, levels=levels, every_ms=every_ms, stale_ms=stale_ms)
    _emit_paced(source.lines(messages), speed)


def _replay_trades(paths: list[str], symbol: str | None, speed: float) -> None:
    from mmkit.feeds import RecordedDepth

    messages, spec = _open_replay(paths, symbol)
    source = RecordedDepth(spec, trades=True)
    _emit_paced(((recv, line) for recv, line in source.lines(messages)
                 if line["type"] == "trade"), speed)


def _open_replay(paths: list[str], symbol: str | None):
    """The recording's messages and the spec of its symbol (the argument, else the first
    symbol in the file), from the simulator's instrument list: replay needs no venue."""
    from mmkit.sim.instruments import default_specs

    messages: Iterator[RawMessage] = read_messages(paths)
    if symbol is None:
        head: list[RawMessage] = []
        for item in messages:
            head.append(item)
            data = item[1].get("data") if isinstance(item[1], dict) else None
            if isinstance(data, dict) and data.get("s"):
                symbol = data["s"]
                break
        messages = itertools.chain(head, messages)
        if symbol is None:
            raise InputError("no symbol found in the recording; give SYMBOL", paths[0])
    specs = default_specs()
    spec = specs.get(symbol.upper())
    if spec is None:
        raise ConfigError(f"unknown symbol {symbol!r}; known: {', '.join(specs)}", "SYMBOL")
    return messages, spec


def _emit_paced(lines, speed: float) -> None:
    """Write lines; with speed > 0, at the recorded pace divided by `speed`."""
    out = LineWriter()
    start_wall = start_recv = None
    for recv, line in lines:
        if speed > 0:
            if start_recv is None:
                start_wall, start_recv = time.monotonic(), recv
            delay = start_wall + (recv - start_recv) / 1000 / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        out.write(line)
