"""`mmkit run`'s engine room: the depth feed, trades, user stream, strategy, risk guards and
order manager of one symbol in one asyncio process, over the same core as the pipe.

The feed keeps only the latest book; a decision loop wakes on it, so a slow venue round trip
never makes the bot act on an old book. Fills, order updates and positions from the user
stream go to the order manager, the risk guards and the strategy. A countdownCancelAll
heartbeat is the dead-man's switch: if this process dies, the venue cancels our orders.

Lockstep (`run --lockstep`, against `mmkit exchange serve --step` only): the bot drives the
venue's clock. It asks the venue to apply one market event, waits until every message that
event caused has arrived and been handled (the venue counts what it delivered), decides,
waits for what its own orders caused, and only then asks for the next event. Nothing then
depends on wall time, so a run is repeatable and makes the fills the backtester makes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from mmkit.errors import ConfigError, MmkitError, NetworkError, VenueError
from mmkit.execution import seed_today
from mmkit.feeds import entry_ticks
from mmkit.tasks import cancel_and_wait

log = logging.getLogger("mmkit.run")

HEARTBEAT_S = 10.0
COUNTDOWN_MS = 30_000
KEEPALIVE_MS = 30 * 60 * 1000
LOCKSTEP_WAIT_S = 10.0  # longest wait for the messages of one step before giving up


class StepClock:
    """Venue time in lockstep: what the venue's last step said."""

    def __init__(self, ms: int = 0):
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@dataclass
class Status:
    """What the status line and the summary show; updated as the run goes."""

    symbol: str
    started_ms: int
    mid: str | None = None
    spread_ticks: int | None = None
    position: str = "0"
    realized: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    fills: int = 0
    maker_fills: int = 0
    volume: Decimal = Decimal(0)
    quotes: int = 0
    orders: int = 0
    risk_mode: str = "normal"
    paused: str | None = None
    books: int = 0
    resyncs: int = 0
    vol_ticks: float = 0.0
    last_book_ms: int = 0
    stale: bool = False
    last_fill: dict[str, Any] = field(default_factory=dict)
    fresh_book_ms: int = 0  # receive time of the latest book that was not stale
    max_book_age_ms: int = 0  # the longest wait between two fresh books so far


class Runner:
    def __init__(self, *, config, spec, client, ws_url: str, routed: bool, strategy, risk,
                 manager, execution, emit: Callable[[dict[str, Any]], None],
                 levels: int = 5, wall_ms: Callable[[], int] | None = None,
                 lockstep: StepClock | None = None, venue_speed: float = 1.0):
        self.config = config
        self.spec = spec
        self.symbol = spec.symbol
        self.client = client
        self.ws_url = ws_url
        self.routed = routed
        self.strategy = strategy
        self.risk = risk
        self.manager = manager
        self.execution = execution
        self.emit = emit
        self.levels = levels
        self.wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self.status = Status(self.symbol, self.wall_ms())
        self._book = None
        self._book_perf = 0.0  # perf_counter when the latest book line was made
        self._book_ready = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._streams: list = []
        self.feed = None
        self.on_tick_to_order: Callable[[float], None] | None = None
        self.journal_path: str | None = None
        self.lockstep = lockstep
        # venue time per wall second (a sped-up simulator): the heartbeat, marks, listen-key
        # keepalive and connection rotation keep their venue-time periods
        self.venue_speed = venue_speed
        if lockstep is not None:
            self.wall_ms = lockstep
        self._handled: dict[str, int] = {}  # lockstep: messages handled per stream name
        self._user_stream = None
        self._started_ms: int | None = None

    # -- start and stop ---------------------------------------------------------------------

    async def start(self, expected_position: Decimal | None = None) -> None:
        """Reconcile with the venue before quoting: the position (refuse on a mismatch with
        `expected_position`), and our orders from an earlier run (cancelled)."""
        positions = await self.client.positions(self.symbol)
        qty = sum(self.spec.to_steps(p["positionAmt"]) for p in positions
                  if p["symbol"] == self.symbol)
        if expected_position is not None:
            expected = self.spec.round_qty(expected_position.copy_abs())
            expected = -expected if expected_position < 0 else expected
            if abs(qty - expected) > 1:
                raise ConfigError(f"the venue's {self.symbol} position is "
                                  f"{self.spec.qty_str(qty)}, expected {expected_position}: "
                                  "refusing to start", "--position")
        entry = next((p.get("entryPrice") for p in positions if p["symbol"] == self.symbol),
                     None)  # one-way mode: one row ("0" when flat)
        self.strategy.on_position(qty, self.wall_ms(), entry_ticks(self.spec, entry))
        self.risk.on_position(qty, self.wall_ms())
        self._risk_lines(await seed_today(self.client, self.spec, self.risk, self.wall_ms()))
        self.status.position = self.spec.qty_str(qty) if qty >= 0 else \
            "-" + self.spec.qty_str(-qty)
        ours, others = self.manager.foreign_or_stale(await self.client.open_orders(self.symbol))
        for order in ours:
            log.info("old_order_cancel client_order_id=%s: left by an earlier run",
                     order["clientOrderId"])
            with contextlib.suppress(VenueError):
                await self.client.cancel_order(self.symbol, order_id=order["orderId"])
        if others:
            log.warning("foreign_orders symbol=%s count=%d: not ours, left alone", self.symbol,
                        len(others))
        await self._recover_fills()
        # fills from here on come from the user stream; in lockstep nothing trades before
        # it is connected, elsewhere its first connection reconciles from this moment
        self._started_ms = None if self.lockstep is not None else self.wall_ms()
        log.info("run_start symbol=%s position=%s cancelled_old_orders=%d", self.symbol,
                 self.status.position, len(ours), extra={"symbol": self.symbol})

    async def _recover_fills(self) -> None:
        """Fills the venue made while we were down (after the newest journaled one): emitted
        as `fill` lines with source `reconcile`; the journal counts a repeat once."""
        from mmkit.binance.userdata import fill_from_user_trade
        from mmkit.journal import recovery_start_ms
        from mmkit.userstream import with_client_ids

        if self.journal_path is None:
            return
        since = recovery_start_ms(self.journal_path, self.symbol)
        if since is None:
            return
        trades = await self.client.user_trades_since(self.symbol, since)
        for fill in await with_client_ids(self.client, [fill_from_user_trade(t) for t in trades]):
            self.emit(fill)

    async def run(self, duration_s: float | None = None) -> None:
        """Until `duration_s` (venue seconds in lockstep, else wall), a failed task, or in
        lockstep the end of the venue's market."""
        self._tasks = [asyncio.create_task(self._depth(), name="depth"),
                       asyncio.create_task(self._trades(), name="trades"),
                       asyncio.create_task(self._user(), name="user")]
        if self.lockstep is None:
            self._tasks += [asyncio.create_task(self._heartbeat(), name="heartbeat"),
                            asyncio.create_task(self._marks(), name="marks")]
            decide = asyncio.create_task(self._decide(), name="decide")
        else:
            decide = asyncio.create_task(self._step(duration_s), name="lockstep")
            duration_s = None
        try:
            waiters = [decide, *self._tasks]
            # lockstep ends when the stepping does; otherwise only a failure ends it early
            done, _ = await asyncio.wait(waiters, timeout=duration_s, return_when=(
                asyncio.FIRST_COMPLETED if self.lockstep else asyncio.FIRST_EXCEPTION))
            for task in done:
                if task.exception() is not None:
                    raise task.exception()
        finally:
            await cancel_and_wait(decide)

    async def stop(self) -> None:
        """Cancel everything we have resting, switch the dead-man's switch off, stop tasks."""
        try:
            await self.execution.cancel_all("shutdown")
            await asyncio.sleep(0.2)  # fills racing the cancels arrive on the user stream
            if await self.execution.sweep():
                log.warning("shutdown_sweep symbol=%s: cancelled orders left in flight",
                            self.symbol)
            with contextlib.suppress(VenueError, NetworkError):
                await self.client.countdown_cancel_all(self.symbol, 0)
        finally:
            await cancel_and_wait(*self._tasks)
            log.info("run_stop symbol=%s fills=%d position=%s", self.symbol, self.status.fills,
                     self.status.position, extra={"symbol": self.symbol})

    # -- tasks --------------------------------------------------------------------------------

    async def _depth(self) -> None:
        from mmkit.binance.ws import StreamClient, route_for, stream_url
        from mmkit.feeds import DepthFeed, book_top_from_line

        # lockstep: every book change as it happens (the simulator's @0ms), none merged
        name = self.symbol.lower() + ("@depth@0ms" if self.lockstep else "@depth@100ms")
        self._depth_name = name
        url = stream_url(self.ws_url, [name], route_for(name) if self.routed else None)
        # one clock for receive times and decisions (venue time on a sped-up simulator)
        stream = StreamClient(url, wall_ms=self.wall_ms, speed=self.venue_speed)
        self._streams.append(stream)
        self.feed = DepthFeed(self.spec, stream, self.client.depth, levels=self.levels,
                              wall_ms=self.wall_ms, wall_stale=self.lockstep is None)
        async for line in self.feed.lines_out():
            self._book = book_top_from_line(self.spec, line)
            self._book_perf = time.perf_counter()
            self.status.books += 1
            self.status.resyncs = self.feed.resyncs
            self.status.mid = line.get("mid")
            self.status.spread_ticks = line.get("spreadTicks")
            self.status.last_book_ms = self._book.recv_ts
            self.status.stale = self._book.stale
            if not self._book.stale:  # the book's age peaks just before a fresh one arrives
                if self.status.fresh_book_ms:
                    self.status.max_book_age_ms = max(
                        self.status.max_book_age_ms, self._book.recv_ts - self.status.fresh_book_ms)
                self.status.fresh_book_ms = self._book.recv_ts
            self._book_ready.set()

    async def _trades(self) -> None:
        from mmkit.binance.ws import StreamClient, StreamMessage, route_for, stream_url
        from mmkit.feeds import mark_from_line, mark_line
        from mmkit.model import MarketTrade

        names = [self.symbol.lower() + "@aggTrade", self.symbol.lower() + "@markPrice@1s"]
        url = stream_url(self.ws_url, names, route_for(names[0]) if self.routed else None)
        spec = self.spec
        stream = StreamClient(url, wall_ms=self.wall_ms, speed=self.venue_speed)
        self._streams.append(stream)
        async for item in stream.messages():
            if not isinstance(item, StreamMessage):
                continue
            data = item.data
            if data.get("e") == "aggTrade":
                self.strategy.on_trade(MarketTrade(self.symbol, int(data["T"]), int(data["a"]),
                                                   spec.to_ticks(data["p"]),
                                                   spec.to_steps(data["q"]), bool(data["m"])))
            elif data.get("e") == "markPriceUpdate":  # mark and funding rate
                self.strategy.on_mark(mark_from_line(mark_line(data)))
            self._handled[item.stream] = self._handled.get(item.stream, 0) + 1

    async def _user(self) -> None:
        from mmkit.feeds import own_fill_from_line
        from mmkit.userstream import UserStream

        stream = self._user_stream = UserStream(self.client, self.ws_url, [self.symbol],
                                                routed=self.routed, wall_ms=self.wall_ms,
                                                speed=self.venue_speed,
                                                since_ms=self._started_ms)
        self._streams.append(stream)
        async for line in stream.lines():
            kind = line.get("type")
            now = self.wall_ms()
            if kind == "order":
                self.manager.on_update(line, now)
            elif kind == "fill":
                fill = own_fill_from_line(self.spec, line)
                self.manager.on_fill(fill)
                self.strategy.on_fill(fill)
                self._risk_lines(self.risk.on_fill(fill))
                self._count_fill(line)
                self.emit(line)
            elif kind == "balance" and line.get("reason") == "FUNDING_FEE":
                self.emit({"type": "funding", "symbol": self.symbol, "ts": line["ts"],
                           "amount": line["balanceChange"], "asset": line["asset"]})
            elif kind == "position":
                qty = line["qty"]
                steps = self.spec.to_steps(qty)
                self.strategy.on_position(steps, line["ts"],
                                          entry_ticks(self.spec, line.get("entryPrice")))
                self.risk.on_position(steps, line["ts"])
                self.status.position = qty

    async def _heartbeat(self) -> None:
        """The dead-man's switch: the venue cancels our orders if we stop renewing it."""
        while True:
            try:
                await self.client.countdown_cancel_all(self.symbol, COUNTDOWN_MS)
            except (VenueError, NetworkError) as exc:
                log.warning("heartbeat_failed countdownCancelAll: %s", exc)
            await asyncio.sleep(HEARTBEAT_S / self.venue_speed)

    async def _marks(self, every_s: float = 1.0) -> None:
        """Mid, position and net PnL every second of venue time: the journal's `marks`
        (markouts, inventory over time, drawdown)."""
        while True:
            await asyncio.sleep(every_s / self.venue_speed)
            self._mark()

    def _mark(self) -> None:
        if self.status.mid is None:
            return
        net = self.risk.realized_pnl - self.risk.fees + (self.risk.unrealized_pnl or 0)
        self.emit({"type": "mark", "symbol": self.symbol, "ts": self.wall_ms(),
                   "mid": self.status.mid, "position": self.status.position,
                   "netPnl": format(Decimal(net).quantize(Decimal("0.00000001")), "f")})

    # -- lockstep -----------------------------------------------------------------------------

    async def _step(self, duration_s: float | None) -> None:
        """Drive the venue one market event at a time (see the module's docstring); the
        heartbeat, listen-key keepalive and marks follow venue time."""
        published = await self._lockstep_ready()
        start = self.lockstep.ms
        until = start + int(duration_s * 1000) if duration_s else None
        beat = keepalive = mark = start
        await self.client.countdown_cancel_all(self.symbol, COUNTDOWN_MS)
        while until is None or self.lockstep.ms < until:
            await self._settle(published)
            now = self.lockstep.ms
            if now - beat >= HEARTBEAT_S * 1000:
                beat = now
                await self.client.countdown_cancel_all(self.symbol, COUNTDOWN_MS)
            if now - keepalive >= KEEPALIVE_MS:
                keepalive = now
                await self.client.keepalive_listen_key(self._user_stream.listen_key)
            if now - mark >= 1000:
                mark = now - now % 1000
                self._mark()
            published = await self._sim("POST", "step", events=1)
            if not published["applied"]:
                log.info("lockstep: the venue's market is over at %d", published["time"])
                return

    async def _lockstep_ready(self) -> dict:
        """Wait until the venue delivers our three streams and the book has its snapshot."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCKSTEP_WAIT_S
        while True:
            published = await self._sim("GET", "published")
            user = self._user_stream
            key = user.listen_key if user is not None else None
            if (self.feed is not None and self.feed.sync.has_snapshot and key is not None
                    and key in published["listening"]
                    and set(self._lockstep_names()) <= set(published["subscribed"])):
                return published
            if loop.time() > deadline:
                raise NetworkError("lockstep: the venue did not deliver our streams within "
                                   f"{LOCKSTEP_WAIT_S:g} s (is it `exchange serve --step`?)")
            await asyncio.sleep(0.01)

    def _lockstep_names(self) -> list[str]:
        lower = self.symbol.lower()
        return [self._depth_name, lower + "@aggTrade", lower + "@markPrice@1s"]

    async def _settle(self, published: dict) -> None:
        """Handle everything the venue delivered; decide while the book changed; repeat for
        what our own orders caused."""
        while True:
            await self._caught_up(published)
            if not self._book_ready.is_set():
                return
            self._book_ready.clear()
            sent = self.client.requests
            if self._book is not None:
                await self.decide(self._book)
            if self.client.requests == sent:
                return  # nothing went to the venue: nothing new can come back
            published = await self._sim("GET", "published")

    async def _caught_up(self, published: dict) -> None:
        self.lockstep.ms = published["time"]
        wanted = [(name, published["streams"].get(name, 0)) for name in self._lockstep_names()]
        key = self._user_stream.listen_key
        wanted.append((key, published["users"].get(key, 0)))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCKSTEP_WAIT_S
        while True:
            behind = [(name, count, self._handled_count(name)) for name, count in wanted
                      if self._handled_count(name) < count]
            if not behind:
                return
            if loop.time() > deadline:
                name, count, have = behind[0]
                raise NetworkError(f"lockstep: the venue delivered {count} messages on "
                                   f"{name[:24]}, {have} arrived within {LOCKSTEP_WAIT_S:g} s")
            await asyncio.sleep(0)

    def _handled_count(self, name: str) -> int:
        if name == self._depth_name:
            return self.feed.messages
        if self._user_stream is not None and name == self._user_stream.listen_key:
            return self._user_stream.events
        return self._handled.get(name, 0)

    async def _sim(self, method: str, action: str, **params) -> dict:
        return await self.client.request(method, f"/_sim/{action}", params or None, weight=0)

    async def _decide(self) -> None:
        while True:
            await self._book_ready.wait()
            self._book_ready.clear()
            book = self._book
            if book is None:
                continue
            try:
                await self.decide(book)
            except MmkitError as exc:  # the venue or the network failed this decision only
                log.error("quote_error symbol=%s: %s", self.symbol, exc,
                          extra={"symbol": self.symbol})

    async def decide(self, book) -> None:
        """One decision on the latest book: strategy → risk → order diff → venue."""
        now = self.wall_ms()
        # order lines say which book they were decided on, the emergency ones included
        self.execution.book_ts, self.execution.book_recv_ts = book.ts, book.recv_ts
        self._risk_lines(self.risk.on_book(book))
        quote = self.strategy.on_book(book)  # the strategy sees every book, halted or not
        if await self._halted(book, now) or quote is None:
            return
        self.status.quotes += 1
        self.status.paused = quote.paused
        self.status.vol_ticks = float(quote.reasons.get("volTicks") or 0)
        quote, events = self.risk.apply(quote, now)
        self._risk_lines(events)
        if await self._halted(book, now):
            return
        actions = self.manager.diff(quote.levels, now,
                                    half_spread_ticks=quote.reasons.get("halfSpreadTicks"))
        if actions and self.on_tick_to_order is not None:
            self.on_tick_to_order(time.perf_counter() - self._book_perf)
        retried = await self.execution.execute(actions)  # post-only slots sent again
        sent = sum(1 for a in [*actions, *retried] if type(a).__name__ in ("Place", "Modify"))
        if sent:
            self.status.orders += sent
            self.risk.on_order_sent(now, sent)
        await self.execution.settle_unknown()

    async def _halted(self, book, now: int) -> bool:
        """Halted by a guard: nothing rests, and the emergency orders flatten the position
        within the slippage bound (the engine paces their retries)."""
        self.status.risk_mode = self.risk.mode
        if self.risk.mode != "halted":
            return False
        await self.execution.cancel_all("risk halt")
        await self.execution.emergency(self.risk.emergency_orders(book, now))
        return True

    def ws_reconnects(self) -> int:
        return sum(getattr(stream, "reconnects", 0) for stream in self._streams)

    def ws_disconnects(self) -> dict[str, int]:
        """Connections lost so far by stream: depth, trades (aggTrade and markPrice) and user
        (each stream client counts a loss as it starts replacing the connection)."""
        counts = {"depth": 0, "trades": 0, "user": 0}
        for stream in self._streams:
            name = ("user" if stream is self._user_stream else
                    "depth" if self.feed is not None and stream is self.feed.stream else "trades")
            counts[name] += getattr(stream, "reconnects", 0)
        return counts

    # -- bookkeeping --------------------------------------------------------------------------

    def _risk_lines(self, events) -> None:
        for event in events:
            self.emit({"type": "risk", "symbol": self.symbol, "ts": event.ts,
                       "guard": event.guard, "action": event.action, "detail": event.detail,
                       "mode": self.risk.mode})

    def _count_fill(self, line: dict[str, Any]) -> None:
        status = self.status
        status.fills += 1
        status.maker_fills += bool(line.get("maker"))
        status.realized += Decimal(line.get("realizedPnl") or "0")
        status.fees += Decimal(line.get("commission") or "0")
        status.volume += Decimal(line["price"]) * Decimal(line["qty"])
        status.last_fill = line
