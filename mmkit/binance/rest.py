"""Signed REST client for Binance USDⓈ-M futures (async, httpx, one pooled keep-alive connection).

What it takes care of, so callers do not:
- signing (HMAC-SHA256 or Ed25519) over the query string, with timestamp and recvWindow from a
  clock offset measured against the venue (median of recent samples), re-measured and the
  request retried once when the venue answers -1021;
- request weight and order counts: fixed windows seeded from exchangeInfo's rateLimits,
  corrected by the venue's X-MBX-* headers, that make a request wait rather than cross the limit;
- 429 (wait Retry-After, else exponential backoff with jitter, then retry) and 418 (halt every
  request until the ban ends);
- retries of reads and cancels on network errors and 5xx; order placement is never retried
  blindly: when its outcome cannot be known, `OutcomeUnknown` carries the clientOrderId;
- typed errors with Binance's code and msg; secrets never in errors, logs or reprs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from mmkit.binance.limits import Limits
from mmkit.binance.signing import Credentials
from mmkit.errors import ConfigError, NetworkError, OutcomeUnknown, RateLimited, VenueError

log = logging.getLogger(__name__)

# After a 408 or a 5xx an order may or may not exist (Binance: "do NOT treat this as a failure;
# the execution status is UNKNOWN"), except the 503s that say it never reached the engine
# (reference §0, error codes). -1006/-1007 say unknown whatever the status.
UNKNOWN_OUTCOME_CODES = {-1006, -1007}
DEFINITE_FAILURE_503 = ("Service Unavailable", "Internal error; unable to process")
DEFINITE_FAILURE_CODES = {-1008}  # throttled by system protection: not executed
ORDER_PATHS = {"/fapi/v1/order", "/fapi/v1/batchOrders"}
CLIENT_ORDER_ID_PREFIX = "mm"
USER_TRADES_WINDOW_MS = 7 * 86_400_000  # userTrades' longest startTime..endTime span
USER_TRADES_SLACK_MS = 60_000  # past the venue's "now": a trade while we ask is not missed


def new_client_order_id(prefix: str = CLIENT_ORDER_ID_PREFIX) -> str:
    """A fresh id matching Binance's `^[.A-Z:/a-z0-9_-]{1,36}$`: prefix, ms time, randomness."""
    return f"{prefix}{int(time.time() * 1000):x}{secrets.token_hex(6)}"


def encode_params(params: dict[str, Any]) -> str:
    """Binance's wire form: booleans lower-case, Decimals plain, lists as compact JSON, None dropped."""
    pairs = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, Decimal):
            value = format(value, "f")
        elif isinstance(value, list | dict):
            value = orjson.dumps(value, default=str).decode()
        pairs.append((key, value))
    return urlencode(pairs)


class ClockOffset:
    """venue time − local time, as the median of the last few round-trip-corrected samples."""

    def __init__(self, samples: int = 5):
        self.samples: deque[float] = deque(maxlen=samples)

    def add(self, sent_ms: float, received_ms: float, server_ms: int) -> None:
        self.samples.append(server_ms - (sent_ms + received_ms) / 2)

    @property
    def known(self) -> bool:
        return bool(self.samples)

    @property
    def ms(self) -> int:
        return round(statistics.median(self.samples)) if self.samples else 0


class RestClient:
    """`async with RestClient(url, credentials) as client: await client.account()`.

    `request` is the one door to the venue; the named methods wrap the endpoints mmkit uses,
    with their weights. Counters (`requests`, `retries`, `throttled_ms`) feed metrics.
    """

    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None = None,
        *,
        recv_window: int = 5000,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        max_retries: int = 3,
        backoff_s: float = 0.2,
        headroom: float = 0.9,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observer: Callable[[str, str, int, float], None] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.recv_window = recv_window
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.limits = Limits.defaults(headroom)
        self.clock = ClockOffset()
        # a simulator stepped by its client (`run --lockstep`) or sped up (`run --speed`):
        # venue time is what this says, for timestamps and the rate-limit windows alike, and
        # a throttle waiting for a window to roll sleeps `venue_speed` times less wall time
        self.venue_clock: Callable[[], int] | None = None
        self.venue_speed = 1.0
        self.banned_until = 0.0
        self.requests = 0
        self.retries = 0
        self.throttled_ms = 0
        self._headroom = headroom
        self._sleep = sleep
        self.observer = observer  # (method, path, HTTP status or 0, seconds) per request
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
            headers={"User-Agent": "mmkit", "Accept": "application/json"},
            transport=transport,
        )

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"RestClient({self.base_url!r}, {self.credentials!r})"

    # -- time ---------------------------------------------------------------------------------

    def venue_now_ms(self) -> int:
        if self.venue_clock is not None:
            return self.venue_clock()
        return int(time.time() * 1000) + self.clock.ms

    async def sync_time(self, samples: int = 3) -> int:
        """Measure the clock offset against GET /fapi/v1/time; returns the offset in ms."""
        for _ in range(samples):
            sent = time.time() * 1000
            body = await self.request("GET", "/fapi/v1/time")
            self.clock.add(sent, time.time() * 1000, int(body["serverTime"]))
        return self.clock.ms

    # -- the one door -------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        signed: bool = False,
        api_key: bool = False,
        weight: int = 1,
        orders: int = 0,
        idempotent: bool | None = None,
    ) -> Any:
        """Send one request and return its decoded JSON body.

        `idempotent` (default: GET and DELETE) decides whether network errors and 5xx are
        retried. A non-idempotent request whose outcome is unknown raises `OutcomeUnknown`.
        """
        params = dict(params or {})
        if idempotent is None:
            idempotent = method in ("GET", "DELETE")
        if signed and not self.clock.known and path != "/fapi/v1/time":
            await self.sync_time(samples=1)
        resynced = False
        attempt = 0
        while True:
            await self._respect_limits(weight, orders)
            try:
                return await self._send(method, path, params, signed or api_key, signed,
                                        weight, orders)
            except VenueError as exc:
                if exc.code == -1021 and signed and not resynced:
                    resynced = True
                    await self.sync_time()
                    continue
                if isinstance(exc, RateLimited) and exc.status == 429 and attempt < self.max_retries:
                    attempt += 1
                    await self._backoff(attempt, exc.retry_after)
                    continue
                if exc.status >= 500 and idempotent and attempt < self.max_retries:
                    attempt += 1
                    await self._backoff(attempt, None)
                    continue
                raise
            except _NotSent as exc:
                # The request never left (no connection): safe to retry whatever it is.
                if attempt < self.max_retries:
                    attempt += 1
                    await self._backoff(attempt, None)
                    continue
                raise NetworkError(f"{method} {path}: {exc}") from None
            except _MaybeSent as exc:
                if idempotent and attempt < self.max_retries:
                    attempt += 1
                    await self._backoff(attempt, None)
                    continue
                if not idempotent:
                    raise OutcomeUnknown(f"{method} {path}: {exc}",
                                         _client_order_id(params)) from None
                raise NetworkError(f"{method} {path}: {exc}") from None

    async def _send(self, method: str, path: str, params: dict[str, Any], with_key: bool,
                    signed: bool, weight: int, orders: int) -> Any:
        if self.banned_until > time.monotonic():
            left = self.banned_until - time.monotonic()
            raise RateLimited(-1003, f"IP banned by the venue for another {left:.0f} s", 418,
                              left, path)
        headers = {}
        if with_key:
            if self.credentials is None:
                raise ConfigError("an API key is needed for this request", "gateway.apiKey")
            headers["X-MBX-APIKEY"] = self.credentials.api_key
        query = encode_params(params)
        if signed:
            stamp = f"recvWindow={self.recv_window}&timestamp={self.venue_now_ms()}"
            query = f"{query}&{stamp}" if query else stamp
            query += "&" + urlencode({"signature": self.credentials.sign(query)})
        url = f"{path}?{query}" if query else path
        self.limits.take(weight, orders, self.venue_now_ms())
        self.requests += 1
        started = time.perf_counter()
        try:
            response = await self._http.request(method, url, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            self._observe(method, path, 0, started)
            raise _NotSent(f"cannot connect to {self.base_url} ({_reason(exc)})") from None
        except httpx.TransportError as exc:
            self._observe(method, path, 0, started)
            raise _MaybeSent(f"{type(exc).__name__} from {self.base_url} ({_reason(exc)})") \
                from None
        self._observe(method, path, response.status_code, started)
        self.limits.observe_headers(response.headers, self.venue_now_ms())
        log.debug("%s %s → %s (weight %s)", method, path, response.status_code,
                  response.headers.get("x-mbx-used-weight-1m"))
        return self._decode(method, path, params, response)

    def _observe(self, method: str, path: str, status: int, started: float) -> None:
        if self.observer is not None:
            self.observer(method, path, status, time.perf_counter() - started)

    def _decode(self, method: str, path: str, params: dict[str, Any],
                response: httpx.Response) -> Any:
        status = response.status_code
        try:
            body = orjson.loads(response.content) if response.content else {}
        except orjson.JSONDecodeError:
            body = None
        if status < 400 and body is not None:
            return body
        code, msg = _error_of(body, status, response.text)
        if status in (418, 429):
            retry_after = _retry_after(response.headers.get("retry-after"))
            if status == 418:
                self.banned_until = time.monotonic() + (retry_after or 120.0)
            raise RateLimited(code, msg, status, retry_after, path)
        if self.credentials is not None:
            msg = self.credentials.redact(msg)
        if method in ("POST", "PUT") and path in ORDER_PATHS and \
                _outcome_unknown(status, code, msg):
            raise OutcomeUnknown(f"{method} {path}: venue said {code} {msg}",
                                 _client_order_id(params))
        raise VenueError(code, msg, status, path)

    async def _respect_limits(self, weight: int, orders: int) -> None:
        wait = self.limits.wait_ms(weight, orders, self.venue_now_ms())
        if wait > 0:
            log.info("throttling %d ms to stay under the venue's limits", wait)
            self.throttled_ms += wait
            await self._sleep(wait / 1000 / self.venue_speed)

    async def _backoff(self, attempt: int, retry_after: float | None) -> None:
        self.retries += 1
        delay = retry_after if retry_after is not None else \
            self.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random())
        await self._sleep(delay)

    # -- market data --------------------------------------------------------------------------

    async def server_time(self) -> int:
        return int((await self.request("GET", "/fapi/v1/time"))["serverTime"])

    async def exchange_info(self) -> dict[str, Any]:
        """exchangeInfo; also reseeds the client's limits from its rateLimits."""
        info = await self.request("GET", "/fapi/v1/exchangeInfo")
        if info.get("rateLimits"):
            seeded = Limits.from_rate_limits(info["rateLimits"], self._headroom)
            seeded.weight.used = self.limits.weight.used
            seeded.weight.window_start = self.limits.weight.window_start
            self.limits = seeded
        return info

    async def depth(self, symbol: str, limit: int = 1000) -> dict[str, Any]:
        weight = {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10}.get(limit, 20)
        return await self.request("GET", "/fapi/v1/depth", {"symbol": symbol, "limit": limit},
                                  weight=weight)

    async def book_ticker(self, symbol: str) -> dict[str, Any]:
        return await self.request("GET", "/fapi/v1/ticker/bookTicker", {"symbol": symbol},
                                  weight=2)

    async def premium_index(self, symbol: str) -> dict[str, Any]:
        return await self.request("GET", "/fapi/v1/premiumIndex", {"symbol": symbol})

    # -- account ------------------------------------------------------------------------------

    async def account(self) -> dict[str, Any]:
        return await self.request("GET", "/fapi/v3/account", signed=True, weight=5)

    async def balances(self) -> list[dict[str, Any]]:
        return await self.request("GET", "/fapi/v3/balance", signed=True, weight=5)

    async def positions(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """positionRisk v2: every symbol's row, including flat ones and their leverage."""
        return await self.request("GET", "/fapi/v2/positionRisk", {"symbol": symbol},
                                  signed=True, weight=5)

    async def leverage_bracket(self, symbol: str | None = None) -> list[dict[str, Any]]:
        body = await self.request("GET", "/fapi/v1/leverageBracket", {"symbol": symbol},
                                  signed=True)
        return body if isinstance(body, list) else [body]

    async def commission_rate(self, symbol: str) -> dict[str, Any]:
        return await self.request("GET", "/fapi/v1/commissionRate", {"symbol": symbol},
                                  signed=True, weight=20)

    async def set_leverage(self, symbol: str, leverage: int) -> dict[str, Any]:
        return await self.request("POST", "/fapi/v1/leverage",
                                  {"symbol": symbol, "leverage": leverage}, signed=True,
                                  idempotent=True)

    async def user_trades(self, symbol: str, start_time: int | None = None,
                          limit: int = 1000, end_time: int | None = None) -> list[dict[str, Any]]:
        return await self.request("GET", "/fapi/v1/userTrades",
                                  {"symbol": symbol, "startTime": start_time,
                                   "endTime": end_time, "limit": limit},
                                  signed=True, weight=5)

    async def user_trades_since(self, symbol: str, start_time: int) -> list[dict[str, Any]]:
        """Every trade of ours from `start_time` until now, however many, oldest first.

        The venue answers at most 1000 trades and 7 days a call, and does not say which
        end of a fuller window it returns; so the span is cut into 7-day windows, and a
        window that fills a page is halved until none does. "Now" is the venue's own clock."""
        end = await self.server_time() + USER_TRADES_SLACK_MS
        trades: dict[int, dict[str, Any]] = {}
        while start_time <= end:
            window_end = min(start_time + USER_TRADES_WINDOW_MS - 1, end)
            for trade in await self._user_trades_within(symbol, start_time, window_end):
                trades[int(trade["id"])] = trade
            start_time = window_end + 1
        return sorted(trades.values(), key=lambda t: (int(t["time"]), int(t["id"])))

    async def _user_trades_within(self, symbol: str, start: int,
                                  end: int) -> list[dict[str, Any]]:
        page = await self.user_trades(symbol, start, 1000, end_time=end)
        if len(page) < 1000 or start >= end:
            return page
        middle = (start + end) // 2
        return [*await self._user_trades_within(symbol, start, middle),
                *await self._user_trades_within(symbol, middle + 1, end)]

    async def income(self, **params: Any) -> list[dict[str, Any]]:
        return await self.request("GET", "/fapi/v1/income", params, signed=True, weight=30)

    # -- orders -------------------------------------------------------------------------------

    async def place_order(self, **params: Any) -> dict[str, Any]:
        """POST /fapi/v1/order. A newClientOrderId is added when missing, so an unknown
        outcome can always be settled by querying it."""
        params.setdefault("newClientOrderId", new_client_order_id())
        return await self.request("POST", "/fapi/v1/order", params, signed=True, weight=0,
                                  orders=1)

    async def modify_order(self, **params: Any) -> dict[str, Any]:
        return await self.request("PUT", "/fapi/v1/order", params, signed=True, weight=0,
                                  orders=1)

    async def cancel_order(self, symbol: str, *, order_id: int | None = None,
                           client_order_id: str | None = None) -> dict[str, Any]:
        return await self.request("DELETE", "/fapi/v1/order",
                                  {"symbol": symbol, "orderId": order_id,
                                   "origClientOrderId": client_order_id}, signed=True)

    async def query_order(self, symbol: str, *, order_id: int | None = None,
                          client_order_id: str | None = None) -> dict[str, Any]:
        return await self.request("GET", "/fapi/v1/order",
                                  {"symbol": symbol, "orderId": order_id,
                                   "origClientOrderId": client_order_id}, signed=True)

    async def place_batch(self, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """POST /fapi/v1/batchOrders (at most 5). Each entry is an order or a {code,msg}."""
        for order in orders:
            order.setdefault("newClientOrderId", new_client_order_id())
        return await self.request("POST", "/fapi/v1/batchOrders",
                                  {"batchOrders": _stringify(orders)}, signed=True, weight=5,
                                  orders=5)

    async def modify_batch(self, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """PUT /fapi/v1/batchOrders (at most 5 modifications)."""
        return await self.request("PUT", "/fapi/v1/batchOrders",
                                  {"batchOrders": _stringify(orders)}, signed=True, weight=5,
                                  orders=5)

    async def cancel_batch(self, symbol: str, client_order_ids: list[str]) -> list[dict[str, Any]]:
        """DELETE /fapi/v1/batchOrders by client order id (at most 10)."""
        return await self.request("DELETE", "/fapi/v1/batchOrders",
                                  {"symbol": symbol, "origClientOrderIdList": client_order_ids},
                                  signed=True)

    async def cancel_all(self, symbol: str) -> dict[str, Any]:
        return await self.request("DELETE", "/fapi/v1/allOpenOrders", {"symbol": symbol},
                                  signed=True)

    async def open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return await self.request("GET", "/fapi/v1/openOrders", {"symbol": symbol},
                                  signed=True, weight=1 if symbol else 40)

    async def countdown_cancel_all(self, symbol: str, countdown_ms: int) -> dict[str, Any]:
        """The venue's dead-man's switch: cancel all of `symbol`'s orders unless renewed."""
        return await self.request("POST", "/fapi/v1/countdownCancelAll",
                                  {"symbol": symbol, "countdownTime": countdown_ms},
                                  signed=True, weight=10, idempotent=True)

    # -- user data stream ---------------------------------------------------------------------

    async def create_listen_key(self) -> str:
        body = await self.request("POST", "/fapi/v1/listenKey", api_key=True, idempotent=True)
        return body["listenKey"]

    async def keepalive_listen_key(self, listen_key: str | None = None) -> None:
        await self.request("PUT", "/fapi/v1/listenKey", api_key=True, idempotent=True)

    async def close_listen_key(self) -> None:
        await self.request("DELETE", "/fapi/v1/listenKey", api_key=True)


class _NotSent(Exception):
    """The request did not reach the venue (connection refused, connect timeout, pool full)."""


class _MaybeSent(Exception):
    """The connection failed after the request may have been sent (read timeout, reset)."""


def _reason(exc: Exception) -> str:
    """httpx's own words, without any URL (a query could carry a signature) and never for a
    request it could not write (its words quote the header: the API key)."""
    if isinstance(exc, httpx.LocalProtocolError):
        return "the request could not be written (an illegal header value)"
    text = str(exc).split(" for url ")[0].strip()
    return text or type(exc).__name__


def _outcome_unknown(status: int, code: int, msg: str) -> bool:
    if code in UNKNOWN_OUTCOME_CODES:
        return True
    if code in DEFINITE_FAILURE_CODES or (status == 503 and any(
            text in msg for text in DEFINITE_FAILURE_503)):
        return False
    return status == 408 or status >= 500


def _client_order_id(params: dict[str, Any]) -> str | None:
    if "newClientOrderId" in params:
        return params["newClientOrderId"]
    batch = params.get("batchOrders")
    if isinstance(batch, list):
        ids = [str(o.get("newClientOrderId") or o.get("origClientOrderId") or "")
               for o in batch]
        return ",".join(ids) if any(ids) else None
    return params.get("origClientOrderId")


def _error_of(body: Any, status: int, text: str) -> tuple[int, str]:
    """Binance's {code, msg}; a body without one (a proxy's 502 page) becomes -1000 UNKNOWN
    with the status and the start of the text, on one line."""
    if isinstance(body, dict) and "code" in body:
        return int(body["code"]), str(body.get("msg", ""))
    snippet = " ".join(text.split())[:120]
    return -1000, f"HTTP {status}" + (f": {snippet}" if snippet else "")


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _stringify(orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """batchOrders entries carry every value as a string, as Binance's docs show."""
    out = []
    for order in orders:
        entry = {}
        for key, value in order.items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            entry[key] = format(value, "f") if isinstance(value, Decimal) else str(value)
        out.append(entry)
    return out
