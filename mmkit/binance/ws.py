"""Binance WebSocket streams with reconnects: routed/combined URLs, backoff with jitter, and a
proactive rotation before the venue's 24-hour cut that leaves no gap.

`StreamClient.messages()` yields `StreamMessage`s and `Connection` markers. A marker tells the
consumer that messages may have been missed (`gap=True`: resync the book, reconcile orders);
a planned rotation overlaps the old and the new connection, and duplicates from the overlap
are dropped here, so it yields no gap marker.

Pings are answered by the `websockets` library (it replies to every ping with a pong echoing
the payload), which is what Binance requires; a connection that delivers nothing for
`silence_timeout` seconds is treated as dead and replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import orjson
import websockets

from mmkit.errors import NetworkError

log = logging.getLogger("mmkit.ws")

PUBLIC_SUFFIXES = ("@depth", "@bookticker", "!bookticker")
MAX_STREAMS_PER_CONNECTION = 1024
DAY_S = 24 * 3600


def route_for(stream: str) -> str:
    """The 2026 routed path a market stream lives on: /public (book) or /market (the rest)."""
    name = stream.lower()
    if any(token in name for token in PUBLIC_SUFFIXES):
        return "public"
    return "market"


def stream_url(ws_base: str, streams: list[str], route: str | None) -> str:
    """Combined-stream URL: `<base>/<route>/stream?streams=a/b` (route None: unrouted)."""
    if not streams:
        raise ValueError("at least one stream is needed")
    if len(streams) > MAX_STREAMS_PER_CONNECTION:
        raise ValueError(f"at most {MAX_STREAMS_PER_CONNECTION} streams per connection")
    prefix = f"{ws_base.rstrip('/')}/{route}" if route else ws_base.rstrip("/")
    return f"{prefix}/stream?streams={'/'.join(quote(s, safe='@!_') for s in streams)}"


def user_stream_url(ws_base: str, listen_key: str, routed: bool = True) -> str:
    prefix = f"{ws_base.rstrip('/')}/private" if routed else ws_base.rstrip("/")
    return f"{prefix}/ws/{listen_key}"


@dataclass(slots=True)
class StreamMessage:
    stream: str
    data: dict
    recv_ms: int


@dataclass(slots=True)
class Connection:
    """A connection was (re)established. `gap` is True when messages may have been lost."""

    url: str
    attempt: int
    gap: bool
    reason: str = ""


@dataclass(slots=True)
class _Ended:
    """Queued by a reader when its connection ends."""

    reason: str


@dataclass
class Backoff:
    """Exponential backoff with full jitter: the n-th wait is uniform in [0, min(cap, base·2ⁿ)]."""

    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        delay = self.rng.uniform(0, min(self.cap, self.base * 2**self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


def sequence_key(data: dict) -> tuple[str, int] | None:
    """What orders messages of one stream, to drop overlap duplicates during a rotation."""
    if "u" in data and data.get("e") in ("depthUpdate", "bookTicker", None):
        return ("u", int(data["u"]))
    if data.get("e") == "aggTrade":
        return ("a", int(data["a"]))
    if data.get("e") == "trade":
        return ("t", int(data["t"]))
    return None


class StreamClient:
    """One logical subscription that survives disconnects and rotates before the 24-hour cut.

    `url` is a full combined-stream or raw URL (see `stream_url`); raw (non-combined) messages
    are yielded with `stream=""`. Each connection has a reader task feeding one queue, so a
    rotation can overlap two connections and hand over without a gap.
    """

    def __init__(
        self,
        url: str,
        *,
        max_age: float = DAY_S - 30 * 60,
        silence_timeout: float | None = 60.0,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        speed: float = 1.0,
    ):
        self.url = url
        self.name = _log_name(url)
        self.max_age = max_age / speed  # a sped-up simulator's 24-hour cut comes sooner
        self.silence_timeout = silence_timeout
        self.backoff = backoff or Backoff()
        self.max_attempts = max_attempts
        self.reconnects = 0
        self.rotations = 0
        self._clock = clock
        self._wall_ms = wall_ms
        self._queue: asyncio.Queue = asyncio.Queue()
        self._readers: dict[int, asyncio.Task] = {}
        self._next_id = 0
        self._last_keys: dict[str, tuple[str, int]] = {}

    async def messages(self) -> AsyncIterator[StreamMessage | Connection]:
        current = await self._open()
        born = self._clock()
        yield Connection(self.url, 0, gap=False, reason="start")
        pending: int | None = None  # the connection a rotation is handing over to
        try:
            while True:
                age = self._clock() - born
                if pending is None and age >= self.max_age:
                    pending = await self._open()
                try:
                    conn_id, raw, recv_ms = await self._get(self._wait(age, pending is None))
                except TimeoutError:
                    if pending is None and self._clock() - born >= self.max_age:
                        continue  # time to rotate, not silence
                    conn_id, raw, recv_ms = (current, _Ended(f"no message for "
                                                             f"{self.silence_timeout:.0f}s"), 0)
                    self._close(current)
                if isinstance(raw, _Ended):
                    if conn_id != current:
                        continue
                    if pending is not None:  # the rotation target takes over at once
                        current, pending, born = pending, None, self._clock()
                        continue
                    log.warning("ws_disconnect stream=%s reason=%s", self.name, raw.reason)
                    self.reconnects += 1
                    current, born = await self._open(), self._clock()
                    self._last_keys.clear()
                    log.info("ws_reconnect stream=%s attempt=%d", self.name, self.reconnects)
                    yield Connection(self.url, self.reconnects, gap=True, reason=raw.reason)
                    continue
                if conn_id == pending:
                    self._close(current)
                    current, pending, born = pending, None, self._clock()
                    self.rotations += 1
                elif conn_id != current:
                    continue
                message = self._decode(raw, recv_ms)
                if message is not None:
                    yield message
        finally:
            for conn_id in list(self._readers):
                self._close(conn_id)

    async def _get(self, timeout: float | None) -> tuple[int, Any, int]:
        """The next queued item within `timeout` seconds. `asyncio.timeout`, not `wait_for`:
        3.11's wait_for can swallow a cancellation racing a message (gh-86296), and a stream
        cancelled that way would wait forever for messages that no longer come."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    def _wait(self, age: float, rotation_due_next: bool) -> float | None:
        """How long to wait for the next message: until silence, or until the rotation is due."""
        until_rotation = self.max_age - age if rotation_due_next else None
        waits = [w for w in (self.silence_timeout, until_rotation) if w is not None]
        return max(0.0, min(waits)) if waits else None

    def _decode(self, raw: bytes | str, recv_ms: int) -> StreamMessage | None:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("ws: dropped a message that is not JSON")
            return None
        if not isinstance(obj, dict):
            return None
        if "stream" in obj and "data" in obj:
            stream, data = obj["stream"], obj["data"]
        elif "result" in obj and "id" in obj:
            return None  # a control reply
        else:
            stream, data = "", obj
        key = sequence_key(data) if isinstance(data, dict) else None
        if key is not None:
            if (last := self._last_keys.get(stream)) is not None and key[1] <= last[1]:
                return None  # overlap duplicate from a rotation
            self._last_keys[stream] = key
        return StreamMessage(stream, data, recv_ms)

    async def _open(self) -> int:
        attempt = 0
        while True:
            try:
                # no permessage-deflate: inflating every depth update costs more latency
                # than its bytes are worth on a bot's link
                ws = await websockets.connect(self.url, max_size=2**24, open_timeout=10,
                                              ping_interval=None, close_timeout=2,
                                              compression=None)
                break
            except (TimeoutError, OSError, websockets.WebSocketException) as exc:
                attempt += 1
                if self.max_attempts is not None and attempt >= self.max_attempts:
                    raise NetworkError(f"cannot connect to the stream: {exc}") from None
                delay = self.backoff.next_delay()
                log.warning("ws connect failed (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
        self.backoff.reset()
        conn_id, self._next_id = self._next_id, self._next_id + 1
        self._readers[conn_id] = asyncio.create_task(self._read(conn_id, ws))
        return conn_id

    async def _read(self, conn_id: int, ws) -> None:
        reason = "closed by the venue"
        try:
            async for raw in ws:
                # stamped as it comes off the socket, before the queue hop
                self._queue.put_nowait((conn_id, raw, self._wall_ms()))
        except websockets.ConnectionClosed as exc:
            reason = f"connection closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
        except OSError as exc:
            reason = f"connection lost ({exc})"
        finally:
            with contextlib.suppress(Exception):
                await ws.close()
            self._queue.put_nowait((conn_id, _Ended(reason), self._wall_ms()))

    def _close(self, conn_id: int) -> None:
        task = self._readers.pop(conn_id, None)
        if task is not None:
            task.cancel()


def _log_name(url: str) -> str:
    """What a log line may say of a stream: its market stream names, else `user` (a user
    data stream's URL holds the listen key, which never reaches a log)."""
    parts = urlsplit(url)
    streams = parse_qs(parts.query).get("streams")
    if streams:
        return streams[0]
    last = parts.path.rsplit("/", 1)[-1]
    return last if "@" in last else "user"
