"""The simulated venue's state around the engine: the venue clock, the market pump, faults,
rate limits, API keys, listen keys and the fan-out of engine events to stream subscribers.

No sockets here: `mmkit.sim.server` puts HTTP and WebSockets on top. Everything runs on one
asyncio loop, so there are no locks.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import random
import secrets
import string
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge

from mmkit.model import DepthDiff, DepthSnapshot, MarkPrice, Timed
from mmkit.sim import wire
from mmkit.sim.engine import (
    AccountChange,
    BookDelta,
    Engine,
    EngineConfig,
    EngineEvent,
    OrderUpdate,
    TradePrint,
)
from mmkit.symbols import SymbolSpec

log = logging.getLogger("mmkit.sim")

# Public, fixed credentials of the local simulator (never valid anywhere else).
LISTEN_KEY_ALPHABET = string.ascii_letters + string.digits
SIM_API_KEY = "mmkitSimulatorApiKey0000000000000000000000000000000000000000000000"[:64]
SIM_API_SECRET = "mmkitSimulatorSecret000000000000000000000000000000000000000000000"[:64]

LISTEN_KEY_TTL_MS = 60 * 60 * 1000
CONNECTION_TTL_MS = 24 * 3600 * 1000
DEPTH_INTERVALS = {"": 250, "@100ms": 100, "@250ms": 250, "@500ms": 500, "@0ms": 0}
PUBLIC_KINDS = ("depth", "bookTicker")
# Connections that may carry user data: /private, and the legacy unrouted /ws/<listenKey> and
# /stream (+ SUBSCRIBE of a key) that Binance's official SDK and its testnet still use.
USER_DATA_ROUTES = ("private", "")


class VenueClock:
    """Venue time in ms: wall time scaled by `speed` from the start, plus a skew fault; in step
    mode it moves only when told (`step`)."""

    def __init__(self, speed: float = 1.0, step_mode: bool = False,
                 wall: Callable[[], float] = time.time):
        self.speed = speed
        self.step_mode = step_mode
        self.wall = wall
        self.start_wall = wall()
        self.start_ms = int(self.start_wall * 1000)
        self.stepped = 0
        self.skew_ms = 0

    def now(self) -> int:
        if self.step_mode:
            return self.start_ms + self.stepped + self.skew_ms
        elapsed = (self.wall() - self.start_wall) * 1000 * self.speed
        return self.start_ms + int(elapsed) + self.skew_ms

    def step(self, ms: int) -> int:
        self.stepped += ms
        return self.now()


@dataclass
class Faults:
    """Injected faults; all off by default. Rates are probabilities per request/message."""

    drop_ws_every_s: float = 0.0  # close every market-data WebSocket every N s (wall time)
    depth_gap_rate: float = 0.0  # skip one depthUpdate (a sequence gap) with this probability
    delay_ms: int = 0  # delay every REST response
    error_rate: float = 0.0  # answer 503 "Service Unavailable." instead of serving
    rate_429: float = 0.0  # answer 429 -1003 regardless of weight
    lose_order_response_rate: float = 0.0  # accept an order, answer 503 "unknown" (-1007)
    listen_key_ttl_s: float = 0.0  # expire listen keys after N s of venue time (0 = 60 min)
    clock_skew_ms: int = 0  # the venue clock runs ahead (+) or behind (-) by this much

    @classmethod
    def from_mapping(cls, data: dict[str, Any], where: str = "faults") -> Faults:
        names = {f.name: f.type for f in dataclasses.fields(cls)}
        values = {}
        for key, value in (data or {}).items():
            name = key.replace("-", "_")
            if name not in names:
                raise ValueError(f"{where}: unknown fault {key!r}; known: {', '.join(names)}")
            try:
                values[name] = int(value) if names[name] in ("int", int) else float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{where}.{key}: must be a number, got {value!r}") from None
        return cls(**values)

    @classmethod
    def load(cls, path: str | None, flags: str | None) -> Faults:
        """From a YAML file (a mapping, optionally under `faults:`) then `k=v,k=v` flags."""
        data: dict[str, Any] = {}
        if path:
            with open(path) as fh:
                loaded = yaml.safe_load(fh) or {}
            data.update(loaded.get("faults", loaded) if isinstance(loaded, dict) else {})
        for item in filter(None, (flags or "").split(",")):
            key, _, value = item.partition("=")
            data[key.strip()] = value.strip()
        return cls.from_mapping(data, path or "--fault")


class Metrics:
    """The venue's own Prometheus metrics (served at /metrics)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("mmkit_sim_requests", "REST requests served",
                                ["path", "status"], registry=r)
        self.faults = Counter("mmkit_sim_faults", "Faults injected", ["fault"], registry=r)
        self.orders = Counter("mmkit_sim_orders", "Orders accepted", ["type"], registry=r)
        self.fills = Counter("mmkit_sim_fills", "Fills of our orders", ["liquidity"], registry=r)
        self.market_events = Counter("mmkit_sim_market_events", "Market events applied",
                                     registry=r)
        self.connections = Gauge("mmkit_sim_ws_connections", "Open WebSocket connections",
                                 registry=r)
        self.venue_time = Gauge("mmkit_sim_venue_time_ms", "Venue clock", registry=r)
        self.market_lag = Gauge("mmkit_sim_market_lag_ms", "How far (venue ms) the market "
                                "events applied are behind the venue clock", registry=r)


@dataclass
class ListenKey:
    key: str
    expires: int
    alive: bool = True


@dataclass
class Subscriber:
    """One WebSocket connection: what it listens to and where its messages go."""

    send: Callable[[bytes], None]  # non-blocking enqueue
    route: str  # "public", "market", "private" or "" (unrouted)
    combined: bool
    streams: set[str] = field(default_factory=set)
    listen_keys: set[str] = field(default_factory=set)
    opened: int = 0
    close: Callable[[int, str], None] | None = None
    # per listen key, the user-data event types asked for (`events=` of the /private route);
    # a key not in here gets every event
    events: dict[str, frozenset[str]] = field(default_factory=dict)


class _DepthThrottle:
    """Merges a symbol's deltas over an interval into one depthUpdate, as Binance's
    @depth@100ms/250ms/500ms streams do: U of the first, u and levels of the last."""

    def __init__(self, interval: int):
        self.interval = interval
        self.first: BookDelta | None = None
        self.last: BookDelta | None = None
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.due = 0

    def add(self, delta: BookDelta) -> None:
        if self.first is None:
            self.first = delta
        self.last = delta
        self.bids.update(delta.bids)
        self.asks.update(delta.asks)

    def flush(self, now: int) -> BookDelta | None:
        if now < self.due or self.first is None:
            return None
        self.due = now - now % self.interval + self.interval
        first, last = self.first, self.last
        merged = BookDelta(first.symbol, now, first.first_id, last.last_id, first.prev_id,
                           sorted(self.bids.items(), reverse=True), sorted(self.asks.items()),
                           last.tx_ts or last.ts)
        self.first = self.last = None
        self.bids, self.asks = {}, {}
        return merged


class Venue:
    """The simulated exchange: an engine, a market feed pumped in venue time, and subscribers."""

    def __init__(self, specs: dict[str, SymbolSpec], market: Iterator[Timed] | None, *,
                 config: EngineConfig | None = None, clock: VenueClock | None = None,
                 faults: Faults | None = None, api_keys: dict[str, str] | None = None,
                 ed25519_keys: dict[str, Any] | None = None, seed: int = 0,
                 recv_window_cap: int = 60000):
        self.specs = specs
        self.engine_config = config or EngineConfig(seed=seed)
        self.engine = Engine(specs, self.engine_config)
        self.clock = clock or VenueClock()
        self.faults = faults or Faults()
        self.clock.skew_ms = self.faults.clock_skew_ms
        self.api_keys = api_keys if api_keys is not None else {SIM_API_KEY: SIM_API_SECRET}
        self.ed25519_keys = ed25519_keys or {}
        self.recv_window_cap = recv_window_cap
        self.rng = random.Random(seed)
        self.metrics = Metrics()
        self.subscribers: list[Subscriber] = []
        self.listen_keys: dict[str, ListenKey] = {}
        self._market = market
        self._pending: Timed | None = None
        self._time_shift: int | None = None
        self._throttles: dict[tuple[str, int], _DepthThrottle] = {}
        self._last_ticker: dict[str, tuple] = {}
        self._next_mark = 0
        self._last_drop = time.monotonic()
        self._lag_warned: float | None = None  # when the last "market is behind" was logged
        self.market_done = market is None
        self.dual_side = False
        self.recent_trades: dict[str, deque[TradePrint]] = {s: deque(maxlen=1000) for s in specs}
        self._last_trade_id: dict[str, int] = {}
        # messages delivered per stream name and per listen key: a lockstep client waits
        # until it has read as many (GET /_sim/published)
        self.published: collections.Counter[str] = collections.Counter()
        self.published_user: collections.Counter[str] = collections.Counter()

    # -- time and market -----------------------------------------------------------------

    def now(self) -> int:
        return self.clock.now()

    def tick(self, max_events: int | None = None, budget_s: float | None = None) -> bool:
        """Bring the venue up to the clock: market events due, engine timers, throttled
        streams, mark prices, listen-key expiry, connection lifetimes, WS drop faults.

        At most `max_events` market events, or as many as fit in `budget_s` of wall time, are
        applied (None: all that are due); the rest wait for the next tick, so the server's
        loop keeps serving in between. Returns True while due events are left: the market
        is behind the clock (`mmkit_sim_market_lag_ms`; a warning when it is more than a
        second of wall time behind)."""
        now = self.now()
        self.metrics.venue_time.set(now)
        deadline = time.perf_counter() + budget_s if budget_s is not None else None
        applied = 0
        while self._next_event() is not None and self._pending.at + self._time_shift <= now:
            if max_events is not None and applied >= max_events:
                break
            if deadline is not None and applied % 16 == 0 and applied and (
                    time.perf_counter() >= deadline):
                break
            self._apply_next()
            applied += 1
        self.dispatch(self.engine.advance(now))
        self._housekeeping(now)
        return self._report_lag(now)

    def _report_lag(self, now: int) -> bool:
        pending = self._pending
        lag = now - (pending.at + self._time_shift) if pending is not None else 0
        lag = max(lag, 0)
        self.metrics.market_lag.set(lag)
        behind_s = lag / 1000 / self.clock.speed  # in wall time
        wall = time.monotonic()
        if behind_s > 1 and (self._lag_warned is None or wall - self._lag_warned >= 10):
            log.warning("the market is %.1f s of venue time (%.1f s of wall time) behind the "
                        "clock: --speed %g is more than this machine can replay; the venue "
                        "keeps answering and applies market events late", lag / 1000,
                        behind_s, self.clock.speed)
            self._lag_warned = wall
        elif not lag and self._lag_warned is not None:
            log.info("the market has caught up with the clock")
            self._lag_warned = None
        return lag > 0

    @property
    def market_over(self) -> bool:
        """No market event is left (reads one ahead)."""
        return self._next_event() is None

    def step_events(self, count: int = 1) -> int:
        """Step mode, lockstep: move the clock to each of the next `count` market events and
        apply it alone (engine timers first, as the backtester does), so a client can react
        to every event before the next one. Returns how many were applied (0: market over)."""
        applied = 0
        while applied < count and self._next_event() is not None:
            due = self._pending.at + self._time_shift
            if due > self.now():
                self.clock.step(due - self.now())
            now = self.now()
            self.metrics.venue_time.set(now)
            self.dispatch(self.engine.advance(now))
            self._apply_next()
            self._housekeeping(now)
            applied += 1
        return applied

    def settle(self) -> None:
        """Engine timers and streams at the current time, without market events."""
        now = self.now()
        self.dispatch(self.engine.advance(now))
        self._housekeeping(now)

    def _housekeeping(self, now: int) -> None:
        self._flush_depth(now)
        self._publish_marks(now)
        self._expire_listen_keys(now)
        self._close_old_connections(now)
        self._drop_connections_fault()

    def _next_event(self) -> Timed | None:
        """The next market event, read ahead; None when the feed is over. In step mode the
        venue clock starts at the recording's first timestamp (fills carry its times)."""
        if self._pending is None and not self.market_done:
            try:
                timed = next(self._market)
            except StopIteration:
                self.market_done = True
                log.info("market feed finished; the book stays as it is")
                return None
            if self._time_shift is None:
                if self.clock.step_mode:
                    self.clock.start_ms += timed.at - self.now()
                self._time_shift = self.now() - timed.at
            self._pending = timed
        return self._pending

    def _apply_next(self) -> None:
        event = _shift(self._pending.event, self._time_shift,
                       self.engine_config.funding_interval_ms)
        self._pending = None
        self.metrics.market_events.inc()
        self.dispatch(self.engine.apply(event))

    def dispatch(self, events: list[EngineEvent]) -> None:
        """Fan engine events out to the streams that carry them."""
        for event in events:
            if isinstance(event, BookDelta):
                self._on_delta(event)
            elif isinstance(event, TradePrint):
                self._on_trade(event)
            elif isinstance(event, OrderUpdate):
                self._on_order_update(event)
            elif isinstance(event, AccountChange):
                self._user_event(wire.account_update(event, self.engine))

    # -- market streams --------------------------------------------------------------------

    def _on_delta(self, delta: BookDelta) -> None:
        symbol = delta.symbol.lower()
        spec = self.specs[delta.symbol]
        name = f"{symbol}@depth@0ms"
        if self.subscribers and self._receives(name):
            if not self._depth_gap():
                self._publish(name, wire.depth_update(delta, spec))
        for interval in (100, 250, 500):
            key = (delta.symbol, interval)
            throttle = self._throttles.get(key)
            if throttle is None:
                throttle = self._throttles[key] = _DepthThrottle(interval)
            throttle.add(delta)
        self._publish_book_ticker(delta.symbol, delta.ts)

    def _flush_depth(self, now: int) -> None:
        for (symbol, interval), throttle in self._throttles.items():
            merged = throttle.flush(now)
            if merged is None:
                continue
            if not self._wanted(symbol.lower(), "depth"):
                continue
            name = f"{symbol.lower()}@depth"
            names = (name, f"{name}@250ms") if interval == 250 else (f"{name}@{interval}ms",)
            if any(self._receives(n) for n in names) and not self._depth_gap():
                payload = wire.depth_update(merged, self.specs[symbol])
                for n in names:
                    self._publish(n, payload)
            self._publish_partial(merged, interval, now)

    def _depth_gap(self) -> bool:
        """The depth_gap fault: skip this diff update (a subscriber gets it, so the gap is
        real and counted)."""
        if self.faults.depth_gap_rate and self.rng.random() < self.faults.depth_gap_rate:
            self.metrics.faults.labels("depth_gap").inc()
            return True
        return False

    def _publish_partial(self, merged: BookDelta, interval: int, now: int) -> None:
        """The top N levels, with the update ids of the diff stream of the same interval
        (U/u of the merged updates, pu = u of that stream's previous message)."""
        symbol = merged.symbol
        suffix = "" if interval == 250 else f"@{interval}ms"
        lower = symbol.lower()
        for n in (5, 10, 20):
            name = f"{lower}@depth{n}{suffix}"
            if not self._has(name):
                continue
            snap = self.engine.depth(symbol, n)
            spec = self.specs[symbol]
            self._publish(name, {
                "e": "depthUpdate", "E": now, "T": now, "s": symbol,
                "U": merged.first_id, "u": merged.last_id, "pu": merged.prev_id,
                "b": wire.levels(spec, snap.bids), "a": wire.levels(spec, snap.asks),
            })

    def _publish_book_ticker(self, symbol: str, ts: int) -> None:
        name = f"{symbol.lower()}@bookTicker"
        if not self._has(name):
            return
        snap = self.engine.depth(symbol, 1)
        top = (snap.bids[:1], snap.asks[:1])
        if self._last_ticker.get(symbol) == top:
            return
        self._last_ticker[symbol] = top
        self._publish(name, wire.book_ticker(
            self.specs[symbol], snap.last_update_id, ts,
            snap.bids[0] if snap.bids else None, snap.asks[0] if snap.asks else None))

    def _on_trade(self, trade: TradePrint) -> None:
        # public trade ids only grow, as Binance's do: a replay's ids and our own fills' (which
        # the engine numbers apart) are merged into one rising sequence per symbol
        public_id = max(self._last_trade_id.get(trade.symbol, 0) + 1, trade.trade_id)
        self._last_trade_id[trade.symbol] = public_id
        if public_id != trade.trade_id:
            trade = dataclasses.replace(trade, trade_id=public_id)
        self.recent_trades[trade.symbol].append(trade)
        lower = trade.symbol.lower()
        spec = self.specs[trade.symbol]
        if self._has(f"{lower}@aggTrade"):
            self._publish(f"{lower}@aggTrade", wire.agg_trade(trade, spec))
        if self._has(f"{lower}@trade"):
            self._publish(f"{lower}@trade", wire.trade_event(trade, spec))

    def _publish_marks(self, now: int) -> None:
        if now < self._next_mark:
            return
        self._next_mark = now - now % 1000 + 1000
        for symbol in self.specs:
            lower = symbol.lower()
            names = [n for n in (f"{lower}@markPrice@1s", f"{lower}@markPrice")
                     if self._has(n) and (n.endswith("1s") or now % 3000 < 1000)]
            if not names:
                continue
            payload = self.mark_payload(symbol, now)
            for name in names:
                self._publish(name, payload)

    def mark_payload(self, symbol: str, now: int) -> dict:
        return wire.mark_payload(self.engine, self.specs[symbol], now)

    def next_funding_time(self, symbol: str, now: int) -> int:
        return wire.next_funding_time(self.engine, symbol, now)

    def _has(self, name: str) -> bool:
        return any(name in s.streams for s in self.subscribers)

    def _receives(self, name: str) -> bool:
        """Some connection would be sent stream `name` (the route rules of `_publish`)."""
        kind = "public" if name.split("@")[1].startswith(PUBLIC_KINDS) else "market"
        return any(name in s.streams and (s.route == kind or (s.route == "" and kind == "public"))
                   for s in self.subscribers)

    def _wanted(self, lower_symbol: str, kind: str) -> bool:
        prefix = f"{lower_symbol}@{kind}"
        return any(n.startswith(prefix) for s in self.subscribers for n in s.streams)

    def _publish(self, name: str, payload: dict) -> None:
        raw = combined = None
        kind = "public" if name.split("@")[1].startswith(PUBLIC_KINDS) else "market"
        for sub in self.subscribers:
            if name not in sub.streams or sub.route not in (kind, "") or (
                    sub.route == "" and kind != "public"):
                continue
            self.published[name] += 1
            if sub.combined:
                if combined is None:
                    combined = orjson.dumps({"stream": name, "data": payload})
                sub.send(combined)
            else:
                if raw is None:
                    raw = orjson.dumps(payload)
                sub.send(raw)

    # -- user streams ----------------------------------------------------------------------

    def _on_order_update(self, update: OrderUpdate) -> None:
        order = update.order
        if update.fill is not None:
            self.metrics.fills.labels("maker" if update.fill.maker else "taker").inc()
            self._user_event(wire.trade_lite(update, self.specs[order.symbol]))
        self._user_event(wire.order_trade_update(update, self.specs[order.symbol],
                                                 self.open_notional(order.symbol)))

    def open_notional(self, symbol: str) -> tuple[str, str]:
        """Bid and ask notional of our open orders in `symbol` (`b`/`a` of the stream)."""
        spec = self.specs[symbol]
        totals = {"BUY": Decimal(0), "SELL": Decimal(0)}
        for order in self.engine.open_orders(symbol):
            leaves = order.orig_qty - order.executed_qty
            totals[order.side] += spec.notional(order.price, leaves)
        return wire.money(totals["BUY"]), wire.money(totals["SELL"])

    def _user_event(self, payload: dict) -> None:
        live = {k for k, v in self.listen_keys.items() if v.alive}
        if not live:
            return
        data = orjson.dumps(payload)
        kind = payload.get("e")
        for sub in self.subscribers:
            keys = sub.listen_keys & live
            if sub.events:
                keys = {k for k in keys if k not in sub.events or kind in sub.events[k]}
            if not keys:
                continue
            for key in keys:
                self.published_user[key] += 1
            if sub.combined:
                sub.send(orjson.dumps({"stream": next(iter(keys)), "data": payload}))
            else:
                sub.send(data)

    def create_listen_key(self) -> str:
        """POST /fapi/v1/listenKey: the active key again (extended), or a new one."""
        now = self.now()
        for lk in self.listen_keys.values():
            if lk.alive:
                lk.expires = now + self._listen_key_ttl()
                return lk.key
        key = "".join(secrets.choice(LISTEN_KEY_ALPHABET) for _ in range(64))  # Binance's form
        self.listen_keys[key] = ListenKey(key, now + self._listen_key_ttl())
        return key

    def keepalive_listen_key(self, key: str | None) -> bool:
        lk = self.listen_keys.get(key or "") if key else next(
            (v for v in self.listen_keys.values() if v.alive), None)
        if lk is None or not lk.alive:
            return False
        lk.expires = self.now() + self._listen_key_ttl()
        return True

    def close_listen_key(self, key: str | None) -> None:
        """DELETE /fapi/v1/listenKey: the key dies and its stream closes. A socket left with
        nothing to carry (no other key, no market stream) is closed; Binance sends no event
        first (none is documented)."""
        closed = {lk.key for lk in self.listen_keys.values() if key in (None, lk.key)}
        for name in closed:
            self.listen_keys[name].alive = False
        for sub in list(self.subscribers):
            if sub.listen_keys & closed:
                sub.listen_keys -= closed
                if not sub.listen_keys and not sub.streams and sub.close:
                    sub.close(1000, "listenKey closed")

    def _listen_key_ttl(self) -> int:
        if self.faults.listen_key_ttl_s:
            return int(self.faults.listen_key_ttl_s * 1000)
        return LISTEN_KEY_TTL_MS

    def _expire_listen_keys(self, now: int) -> None:
        for lk in self.listen_keys.values():
            if lk.alive and now >= lk.expires:
                lk.alive = False
                if self.faults.listen_key_ttl_s:
                    self.metrics.faults.labels("listen_key_expired").inc()
                payload = {"e": "listenKeyExpired", "E": now, "listenKey": lk.key}
                raw = orjson.dumps(payload)
                combined = orjson.dumps({"stream": lk.key, "data": payload})
                for sub in self.subscribers:
                    if lk.key in sub.listen_keys:
                        self.published_user[lk.key] += 1
                        sub.send(combined if sub.combined else raw)

    # -- connections -----------------------------------------------------------------------

    def _close_old_connections(self, now: int) -> None:
        for sub in list(self.subscribers):
            if sub.close and now - sub.opened >= CONNECTION_TTL_MS:
                sub.close(1000, "24h connection limit")

    def _drop_connections_fault(self) -> None:
        every = self.faults.drop_ws_every_s
        if not every or time.monotonic() - self._last_drop < every:
            return
        self._last_drop = time.monotonic()
        for sub in list(self.subscribers):
            if sub.close and sub.route != "private" and not sub.listen_keys:
                self.metrics.faults.labels("ws_drop").inc()
                sub.close(1001, "fault injection: connection dropped")

    def reset(self) -> None:
        """/_sim/reset: a fresh account; the market keeps going."""
        books, fundings = self.engine.books, self.engine.fundings
        self.engine = Engine(self.specs, self.engine_config)
        self.engine.fundings = fundings
        for symbol, book in books.items():
            fresh = self.engine.books[symbol]
            fresh.market, fresh.last_id = book.market, book.last_id
            fresh.mark, fresh.index = book.mark, book.index
            fresh.funding_rate, fresh.next_funding_time = book.funding_rate, book.next_funding_time
            fresh.last_trade_id = book.last_trade_id


def _shift(event, shift: int, funding_interval: int):
    """A replayed event moved to venue time (the recording's times + a constant). Funding
    stays on Binance's funding hours (00/08/16 UTC): the next one after the moved time."""
    if not shift:
        return event
    if isinstance(event, DepthDiff):
        return dataclasses.replace(event, ts=event.ts + shift, tx_ts=event.tx_ts + shift)
    if isinstance(event, MarkPrice):
        ts = event.ts + shift
        funding = ts - ts % funding_interval + funding_interval if event.next_funding_time else 0
        return dataclasses.replace(event, ts=ts, next_funding_time=funding)
    if isinstance(event, DepthSnapshot):
        return dataclasses.replace(event, ts=event.ts + shift)
    return dataclasses.replace(event, ts=event.ts + shift)
