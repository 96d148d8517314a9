"""`mmkit send`: keep the venue's resting orders equal to the latest `quote` line."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import threading
import time
from decimal import Decimal

import click

from mmkit.cli.common import load, quantity_option, rest_client, run
from mmkit.cli.settings import with_settings
from mmkit.errors import ConfigError, InputError
from mmkit.execution import wall_ms
from mmkit.stream import LineWriter, Sequence, describe, read_lines, skip_line
from mmkit.tasks import cancel_and_wait

log = logging.getLogger("mmkit.send")

# Binance's newClientOrderId: ^[\.A-Z\:/a-z0-9_-]{1,36}$
CLIENT_ORDER_ID = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}")


def _prefix_option(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A prefix that makes valid client order ids: Binance's characters, and short enough
    that prefix, run id and sequence fit in its 36 (`ClientIds` keeps room for the sequence)."""
    from mmkit.orders import ClientIds

    if not CLIENT_ORDER_ID.fullmatch(value) or "-" in value:
        raise click.BadParameter(f"{value!r}: a prefix holds only letters, digits and . : / _ "
                                 "(a '-' ends it in the client order id)")
    now = wall_ms()
    try:
        ClientIds.for_run(value, now)
    except ValueError:
        longest = max(n for n in range(1, 37) if _fits("x" * n, now))
        raise click.BadParameter(f"{value!r} is {len(value)} characters, at most {longest}: "
                                 "with the run id and the sequence a client order id must "
                                 "fit in 36") from None
    return value


def _fits(prefix: str, now: int) -> bool:
    from mmkit.orders import ClientIds

    try:
        ClientIds.for_run(prefix, now)
    except ValueError:
        return False
    return True


@click.command("send")
@click.option("--symbol", metavar="SYMBOL", help="The symbol to trade (default: the first "
              "configured symbol); lines of other symbols pass through.")
@click.option("--dry-run", is_flag=True, help="Send nothing: print the actions it would take.")
@click.option("--live", is_flag=True, help="Required to trade on the live venue.")
@click.option("--position", "expected_position", metavar="QTY", callback=quantity_option,
              help="Refuse to start unless the venue's position is this (within a step).")
@click.option("--prefix", default="mm", show_default=True, callback=_prefix_option,
              help="Client order id prefix (letters, digits and . : / _); orders with it "
                   "left by an earlier run are cancelled at start.")
@click.option("--price-tolerance", type=click.IntRange(0), default=0, show_default=True,
              help="Ticks a resting order may differ from the quote before it is replaced.")
@click.option("--size-tolerance", type=click.IntRange(0), default=0, show_default=True,
              help="Steps a resting order may differ from the quote before it is replaced.")
@click.option("--max-age", "max_age_s", type=float, default=60.0, show_default=True,
              help="Seconds after which a resting order is refreshed.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override a setting send reads, for this run: risk.*, inventory.* and "
                   "strategy.postOnly*, e.g. risk.maxPosition=0.02 (repeatable; keys as in "
                   "the config's symbols.<SYMBOL> section; other strategy keys are quote's).")
@click.option("--strict", is_flag=True, help="Stop (exit 2) at the first input line it "
              "cannot use: invalid JSON, a bad or missing field, out of order (default: "
              "report it with its line number and skip it).")
@click.pass_context
def send(ctx: click.Context, symbol: str | None, dry_run: bool, live: bool,
         expected_position: Decimal | None, prefix: str, price_tolerance: int,
         size_tolerance: int, max_age_s: float, settings: tuple[str, ...],
         strict: bool) -> None:
    """Read `quote` lines (and `book` lines, for the risk guards) on stdin; place, modify and
    cancel orders so what rests equals the latest quote; write order_new, order_modify,
    order_ack, order_cancel, order_reject, fill and risk lines. Other lines pass through,
    except upstream `fill` lines of the symbol traded (from `depth --user`): send writes
    its own, from its own user stream (a dry run, which has none, passes them on).

    At start, orders with our prefix from an earlier run are cancelled; at the end of input
    or on SIGTERM, ours are cancelled. An order whose outcome is unknown is queried by its
    client order id, never resent. Only the newest quote is acted on: one with a newer quote
    already queued behind it is skipped (counted on the exit line), while every book,
    position and fill line is applied in order. On a live feed decisions run on the wall
    clock, so a book read late is as old as it is for the risk guards; when books stop
    coming (none for risk.maxBookAgeMs by the wall clock), everything is cancelled and
    nothing is placed until a fresh one arrives. A dry run over a recording keeps the
    recording's clock and acts on every quote.

    \b
    Examples:
      mmkit --venue sim depth ETHUSDC | mmkit quote | mmkit --venue sim send --dry-run
      mmkit --venue sim depth ETHUSDC | mmkit quote | mmkit --venue sim send
      ... | mmkit --venue sim send --set risk.maxPosition=0.02 --set risk.maxBookAgeMs=1000
    """
    config = load(ctx)
    if config.gateway.venue == "live" and not live and not dry_run:
        raise click.UsageError("refusing to trade real money on the live venue without --live")
    symbol = (symbol or next(iter(sorted(config.symbols)), "ETHUSDC")).upper()
    if symbol not in config.symbols:
        print(f"mmkit send: {symbol} has no settings in the config (configured: "
              f"{', '.join(sorted(config.symbols)) or 'none'}): using the defaults "
              "(docs/risk.md, docs/strategy.md)", file=sys.stderr, flush=True)
    if settings:
        config = with_settings(ctx, settings, [symbol], "send")
    from mmkit.config import require_credentials

    require_credentials(config)  # a dry run reads the account too: signed requests
    run(_send(config, symbol, dry_run, expected_position, prefix, price_tolerance,
              size_tolerance, int(max_age_s * 1000), strict))


async def _send(config, symbol: str, dry_run: bool, expected_position: Decimal | None,
                prefix: str, price_tolerance: int, size_tolerance: int, max_age_ms: int,
                strict: bool) -> None:
    from mmkit.cli.market_data import _venue_spec
    from mmkit.config import SymbolConfig
    from mmkit.execution import Execution
    from mmkit.orders import ClientIds, manager_for

    out = LineWriter() if dry_run else JournaledWriter(
        LineWriter(), config.journal.path, f"send-{wall_ms() // 1000}-{os.getpid()}")
    async with rest_client(config) as client:
        spec = await _venue_spec(client, symbol)
        ids = ClientIds.for_run(prefix, wall_ms(), salt=os.getpid())
        strategy = config.symbols.get(symbol, SymbolConfig()).strategy
        manager = manager_for(spec, ids, strategy, price_tolerance=price_tolerance,
                              size_tolerance=size_tolerance, max_age_ms=max_age_ms)
        execution = Execution(client, manager, symbol, out.write, dry_run=dry_run)
        session = SendSession(config, spec, manager, execution, out, dry_run, strict)
        await session.start(expected_position)
        try:
            tick_s = max(0.005, min(0.1, session.max_book_age_ms / 4000))
            await session.loop(StdinReader(strict, symbol, tick_s))
        finally:
            await session.stop()
            if isinstance(out, JournaledWriter):
                out.close()


class JournaledWriter:
    """stdout lines, each of our own also appended to the journal (docs/analysis.md)."""

    def __init__(self, out: LineWriter, root: str, run_id: str):
        from mmkit.journal import Journal

        self.out = out
        self.journal = Journal(root, run_id)

    def write(self, line: dict) -> None:
        self.journal.write(line)
        self.out.write(line)

    def write_raw(self, raw: bytes) -> None:
        self.out.write_raw(raw)

    def close(self) -> None:
        self.journal.close()


class SendSession:
    """One `send` run: start-up checks, the read–decide–write loop, and a clean stop."""

    def __init__(self, config, spec, manager, execution, out, dry_run: bool,
                 strict: bool = False):
        from mmkit.config import SymbolConfig
        from mmkit.risk import build_guards

        self.config = config
        self.spec = spec
        self.symbol = spec.symbol
        self.manager = manager
        self.execution = execution
        self.out = out
        self.dry_run = dry_run
        self.strict = strict
        symbol_config = config.symbols.get(self.symbol) or SymbolConfig()
        self.risk = build_guards(spec, symbol_config.risk, symbol_config.inventory)
        self.book = None
        self.user_task: asyncio.Task | None = None
        self.max_book_age_ms = symbol_config.risk.max_book_age_ms
        self.feed_live: bool | None = None  # decided on the first book
        self.fresh_recv_ts: int | None = None  # the last fresh (not stale) book's
        # when the watchdog fired: the read time (monotonic) of the last fresh book then
        self.starved_after: float | None = None
        self.skipped_lines = 0  # input lines reported and skipped (bad, out of order)
        self.skipped_quotes = 0  # quotes not acted on: a newer one was already queued

    async def start(self, expected_position: Decimal | None) -> None:
        from mmkit.execution import seed_today

        client = self.execution.client
        positions = await client.positions(self.symbol)
        qty = sum(self.spec.to_steps(p["positionAmt"]) for p in positions
                  if p["symbol"] == self.symbol)
        if expected_position is not None:
            expected = self.spec.round_qty(expected_position.copy_abs())
            expected = -expected if expected_position < 0 else expected
            if abs(qty - expected) > 1:
                raise ConfigError(f"the venue's position is {self.spec.qty_str(qty)}, not "
                                  f"{expected_position}: refusing to start", "--position")
        self.risk.on_position(qty, self.execution.now())
        self.started_ms = client.venue_now_ms()  # the user stream reconciles from here
        self._risk_lines(await seed_today(client, self.spec, self.risk,
                                          self.execution.now()))
        ours, others = self.manager.foreign_or_stale(await client.open_orders(self.symbol))
        if others:
            log.warning("%d open %s orders are not ours; leaving them alone", len(others),
                        self.symbol)
        for order in ours:
            self.out.write({"type": "order_cancel", "symbol": self.symbol,
                            "ts": self.execution.now(), "tag": None,
                            "clientOrderId": order["clientOrderId"],
                            "orderId": order["orderId"], "side": order["side"],
                            "price": order["price"], "qty": order["origQty"],
                            "timeInForce": order["timeInForce"],
                            "reduceOnly": order.get("reduceOnly", False),
                            "reason": "left by an earlier run", "dryRun": self.dry_run})
            if not self.dry_run:
                await client.cancel_order(self.symbol, order_id=order["orderId"])
        if not self.dry_run:
            self.user_task = asyncio.create_task(self._user_stream())

    async def loop(self, reader: StdinReader) -> None:
        from mmkit.feeds import book_top_from_line, quote_from_line

        sequence = Sequence(("book", "quote"))
        async for item in reader.items():
            await self._watch(reader)
            if item is TICK:
                continue
            number, raw, line, read_at, quote_no = item
            kind, symbol = line.get("type"), line.get("symbol")
            if symbol != self.symbol or kind not in ("book", "quote"):
                if symbol != self.symbol or kind not in ("fill", "position") or \
                        self._upstream_account(kind, number, line):
                    self.out.write_raw(raw)
                continue
            late = sequence.out_of_order(line)
            if late:
                self._skip(number, late)
                continue
            try:
                if kind == "book":
                    self.book = book_top_from_line(self.spec, line)
                    self._on_book(self.book, read_at)
                    self._risk_lines(self.risk.on_book(self.book))
                    continue
                quote = quote_from_line(self.spec, line)
            except (KeyError, TypeError, ValueError, ArithmeticError, InputError) as exc:
                self._skip(number, describe(exc))
                continue
            if reader.quotes_read > quote_no and not self.replay:
                self.skipped_quotes += 1  # a newer quote is queued: act on that one only
                continue
            if self.starved_after is not None:
                continue  # no fresh book since the watchdog fired: nothing new is placed
            now = self.now()
            quote, events = self.risk.apply(quote, now)
            self._risk_lines(events)
            if self.risk.mode == "halted" and self.book is not None:
                await self.execution.cancel_all("risk halt")
                await self._emergency(now)
                continue
            actions = self.manager.diff(quote.levels, now,
                                        half_spread_ticks=quote.reasons.get("halfSpreadTicks"))
            self.execution.book_ts = self.book.ts if self.book else None
            self.execution.book_recv_ts = self.book.recv_ts if self.book else None
            retried = await self.execution.execute(actions)  # post-only slots sent again
            sent = sum(1 for a in [*actions, *retried]
                       if type(a).__name__ in ("Place", "Modify"))
            if sent:
                self.risk.on_order_sent(now, sent)
            await self.execution.settle_unknown()

    # -- the clock -----------------------------------------------------------------------------

    def now(self) -> int:
        """The time a decision is made at. On a live feed, the wall clock (the one the books'
        receive times are stamped on, and the order manager's): a book read late, behind a
        slow venue call, is as old as it is, so the data-latency guard sees it, and the
        order-rate guard stamps the orders sent with the time they were decided. On a recording (its first book
        received long ago) the data's clock: the last book's receive time, so a replay's age
        checks mean what they say; a stopped replay is then caught by `_watch`."""
        if self.feed_live or self.book is None:
            return self.execution.now()
        return self.book.recv_ts

    @property
    def replay(self) -> bool:
        """A dry run over a recording: no order can rest, and the recording's clock rules.
        It acts on every quote (its output does not depend on how fast it runs) and has no
        watchdog. Otherwise (on a venue, or a dry run on a live feed) a quote with a newer one
        already queued behind it is skipped: only the newest is acted on."""
        return self.dry_run and not self.feed_live

    def _upstream_account(self, kind: str, number: int, line: dict) -> bool:
        """A fill or position line of our symbol from upstream (`depth --user`, for
        `quote`); whether to pass it on. With a user stream of our own (not a dry run) our
        own fill lines are written, so an upstream copy is dropped (a fill once in our
        output), and the venue's position comes from our stream; position
        lines pass on (we write none). A dry run has no stream: the position feeds the risk
        guards, and both pass on."""
        if kind == "fill":
            return self.dry_run
        if self.dry_run:
            try:
                self.risk.on_position(self.spec.to_steps(line["qty"]), int(line["ts"]))
            except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
                self._skip(number, describe(exc))
        return True

    def _skip(self, number: int, reason: str) -> None:
        self.skipped_lines += 1
        skip_line("send", number, reason, strict=self.strict)

    # -- the watchdog: a feed that stops ------------------------------------------------------

    def _on_book(self, book, read_at: float) -> None:
        """A book of our symbol: whether the feed is live (decided on the first book: its
        receive time is the wall clock's, within LIVE_FEED_MS), and the end of a
        watchdog's cancel once a fresh book read after it comes."""
        if self.feed_live is None:
            self.feed_live = abs(wall_ms() - book.recv_ts) <= LIVE_FEED_MS
        if book.stale:
            return
        self.fresh_recv_ts = book.recv_ts
        if self.starved_after is not None and read_at > self.starved_after:
            self.starved_after = None
            log.warning("data_latency: books again; quoting resumes")

    async def _watch(self, reader: StdinReader) -> None:
        """Decisions run on the data's clock, which stops when the data stops: so, while
        orders can rest (on a venue; or a dry run on a live feed, to show what it would do),
        a wall-clock watchdog. When no fresh book has come in for the risk's maxBookAgeMs,
        the data-latency guard is asked at the data clock moved on by that silence (its
        risk line says how old the book is), everything is cancelled, and nothing is placed
        until a fresh book arrives; while starved, a late acknowledgement is cancelled too."""
        if reader.last_book is None or self.fresh_recv_ts is None:
            return
        if self.replay:
            return  # its own clock says how old a book is
        last_book = reader.last_book
        silent_ms = int((time.monotonic() - last_book) * 1000)
        if self.starved_after is None:
            if silent_ms <= self.max_book_age_ms:
                return
            from mmkit.model import Quote

            self.starved_after = last_book
            # live: the wall clock; a recording on a venue: its clock moved on by the silence
            now = self.now() if self.feed_live else self.fresh_recv_ts + silent_ms
            _, events = self.risk.apply(Quote(self.symbol, now, [], {}, None), now)
            self._risk_lines(events)
        await self.execution.cancel_all("data latency")

    async def _emergency(self, now: int) -> None:
        await self.execution.emergency(self.risk.emergency_orders(self.book, now))

    def _risk_lines(self, events) -> None:
        for event in events:
            self.out.write({"type": "risk", "symbol": self.symbol, "ts": event.ts,
                            "guard": event.guard, "action": event.action,
                            "detail": event.detail, "mode": self.risk.mode})

    async def _user_stream(self) -> None:
        from mmkit.cli.market_data import _routed
        from mmkit.feeds import own_fill_from_line
        from mmkit.userstream import UserStream

        stream = UserStream(self.execution.client, self.config.ws_url, [self.symbol],
                            routed=_routed(self.config), since_ms=self.started_ms)
        async for line in stream.lines():
            kind = line.get("type")
            if kind == "order":
                self.manager.on_update(line, self.execution.now())
            elif kind == "fill":
                fill = own_fill_from_line(self.spec, line)
                self.manager.on_fill(fill)
                self._risk_lines(self.risk.on_fill(fill))
                self.out.write(line)
            elif kind == "position":
                self.risk.on_position(self.spec.to_steps(line["qty"]), line["ts"])

    async def stop(self) -> None:
        try:
            await self.execution.cancel_all("shutdown")
            await self.execution.sweep()
        finally:
            if self.user_task is not None:
                await asyncio.sleep(0.2)  # the last fills of the cancels' race
                await cancel_and_wait(self.user_task)
            c = self.manager.counters
            print(f"mmkit send: {c.placed} placed, {c.modified} modified, {c.rejected} rejected "
                  f"({c.post_only_rejects} post-only), {c.local_rejects} refused locally, "
                  f"{c.unknown} unknown, {c.fills} fills; {self.skipped_lines} lines skipped, "
                  f"{self.skipped_quotes} superseded quotes skipped (skippedQuotes)",
                  file=sys.stderr)


LIVE_FEED_MS = 600_000  # a first book received within this of the wall clock: a live feed
# (a start-up backlog is seconds old, a recording hours or years)

TICK = object()  # what `StdinReader.items` yields when nothing came for a tick


class StdinReader:
    """stdin's lines without blocking the loop: a reader thread hands them over in batches
    (works for pipes, files and terminals alike; one loop wake-up per batch, not per line),
    each as (number, raw, line, monotonic time read, `quotes_read` then). With `tick_s`, `TICK`
    comes after that long without a line. `last_book` is when the thread last read a fresh
    (not stale) book of `symbol`: the feed measured at the door, so lines queued behind a slow
    decision are not taken for silence. `quotes_read` counts the quote lines of `symbol` read so
    far: a quote whose count is below it has a newer one queued behind it."""

    def __init__(self, strict: bool, symbol: str, tick_s: float | None = None):
        self.strict = strict
        self.symbol = symbol
        self.tick_s = tick_s
        self.last_book: float | None = None
        self.quotes_read = 0  # quote lines of `symbol` the thread has read (queued or taken)

    async def items(self):
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        room = threading.Semaphore(64)  # batches in flight: back-pressure on a fast producer

        def hand_over(batch: list) -> None:
            room.acquire()
            loop.call_soon_threadsafe(queue.put_nowait, batch)

        def reader() -> None:
            batch: list = []
            try:
                for number, raw, line in read_lines(sys.stdin.buffer, strict=self.strict):
                    read_at = time.monotonic()
                    if line.get("symbol") == self.symbol:
                        if line.get("type") == "book" and not line.get("stale"):
                            self.last_book = read_at
                        elif line.get("type") == "quote":
                            self.quotes_read += 1
                    batch.append((number, raw, line, read_at, self.quotes_read))
                    if len(batch) >= 256 or not _more_waiting():
                        hand_over(batch)
                        batch = []
            except InputError as exc:
                batch.append(exc)
            batch.append(None)
            hand_over(batch)

        threading.Thread(target=reader, name="mmkit-stdin", daemon=True).start()
        while True:
            try:
                async with asyncio.timeout(self.tick_s):
                    batch = await queue.get()
            except TimeoutError:
                yield TICK
                continue
            room.release()
            for item in batch:
                if item is None:
                    return
                if isinstance(item, InputError):
                    raise item
                yield item


def _more_waiting() -> bool:
    """Whether stdin has more bytes ready now (so a batch can grow without waiting)."""
    import select

    try:
        return bool(select.select([sys.stdin], [], [], 0)[0])
    except (OSError, ValueError):
        return False
