"""Binance USDⓈ-M REST and WebSocket on top of the simulated venue (starlette on uvicorn).

Every request goes through one pipeline, in Binance's order: faults, IP ban, request weight,
API key, signature, timestamp, then the endpoint, which raises `ApiError` / `Reject` with
Binance's code and message. `/_sim/*` is ground truth for tests and is not Binance's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote

import orjson
import uvicorn
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from mmkit.binance.signing import verify_ed25519, verify_hmac
from mmkit.sim import wire
from mmkit.sim.engine import Order, OrderRequest, Reject
from mmkit.sim.instruments import ASSETS, RATE_LIMITS, exchange_info_symbols, leverage_brackets
from mmkit.sim.venue import USER_DATA_ROUTES, Faults, Subscriber, Venue

log = logging.getLogger("mmkit.sim.server")

TICK_S = 0.01
# A tick applies at most this many market events, or this much wall time of them, and then
# lets the loop serve requests: a market the machine cannot replay at --speed falls behind
# (and says so) instead of starving REST and WebSocket.
TICK_MAX_EVENTS = 5000
TICK_BUDGET_S = 0.02
WEIGHT_LIMIT = 2400
ORDERS_10S, ORDERS_1M = 300, 1200
SPAN_7D_MS = 7 * 86_400_000  # userTrades, allOrders: startTime..endTime at most 7 days
BAN_S = 120
CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
DEPTH_WEIGHTS = {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}
MAX_STREAMS = 1024
DECIMAL_RANGE = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"  # Binance's DECIMAL parameters
DECIMAL = re.compile(DECIMAL_RANGE)
DECIMAL_PARAMS = ("quantity", "price", "stopPrice", "activationPrice", "callbackRate")


class ApiError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400,
                 headers: dict[str, str] | None = None):
        super().__init__(msg)
        self.code, self.msg, self.status, self.headers = code, msg, status, headers or {}


def _missing(name: str) -> ApiError:
    return ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or "
                           "malformed.")


@dataclass
class Endpoint:
    handler: Callable[[Call], Awaitable[Any] | Any]
    weight: int | Callable[[dict], int] = 1
    security: str = "NONE"  # NONE | USER_STREAM | SIGNED
    orders: int = 0  # ORDERS counted per call (10s window); 1m window counts 1 per call


class Window(NamedTuple):
    """A request's startTime..endTime (either may be missing), inclusive."""

    start: int | None
    end: int | None

    def __contains__(self, ts: object) -> bool:
        return (self.start is None or ts >= self.start) and (self.end is None or ts <= self.end)


class Call:
    """One request's parsed parameters, with helpers that raise Binance's errors."""

    def __init__(self, venue: Venue, params: dict[str, str], api_key: str | None):
        self.venue, self.params, self.api_key = venue, params, api_key

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self.params.get(name)
        return default if value in (None, "") else value

    def need(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise _missing(name)
        return value

    def symbol(self, required: bool = True) -> str | None:
        value = self.need("symbol") if required else self.get("symbol")
        if value is None:
            return None
        if value.upper() not in self.venue.specs:
            raise ApiError(-1121, "Invalid symbol.")
        return value.upper()

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.get(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal "
                                  "range is '^[0-9]{1,20}$'.") from None

    def window(self, max_span_ms: int | None = None) -> Window:
        """startTime/endTime; with `max_span_ms`, a longer span is -1127, as Binance says."""
        window = Window(self.integer("startTime"), self.integer("endTime"))
        start, end = window
        if max_span_ms is not None and start is not None and end is not None \
                and end - start > max_span_ms:
            raise ApiError(-1127, f"More than {max_span_ms // 3_600_000} hours between "
                                  "startTime and endTime.")
        return window

    def check_decimals(self) -> None:
        """Binance refuses a decimal it would have to interpret: a sign, an exponent, a bare
        dot (`+2000`, `1e-2`, `.01`)."""
        for name in DECIMAL_PARAMS:
            value = self.get(name)
            if value is not None and not DECIMAL.fullmatch(value):
                raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal "
                                      f"range is '{DECIMAL_RANGE}'.")

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if value.lower() not in ("true", "false"):
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.")
        return value.lower() == "true"


# -- the application -------------------------------------------------------------------------


class SimServer:
    """Builds the starlette app for a venue and keeps the per-IP and per-account counters."""

    def __init__(self, venue: Venue):
        self.venue = venue
        self.endpoints = self._endpoints()
        self.weights: dict[str, tuple[int, int]] = {}  # ip → (minute, used)
        self.violations: dict[str, int] = {}
        self.banned_until: dict[str, float] = {}
        # recent order requests: (venue ms, ORDERS 10s cost); each counts 1 on ORDERS 1m
        self.order_counts: collections.deque[tuple[int, int]] = collections.deque()
        self._ticker: asyncio.Task | None = None
        self.app = Starlette(
            routes=[
                Route("/metrics", self.metrics),
                Route("/_sim/{action}", self.sim_control, methods=["GET", "POST"]),
                WebSocketRoute("/{path:path}", self.websocket),
                Route("/{path:path}", self.rest, methods=["GET", "POST", "PUT", "DELETE"]),
            ],
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        if self.venue.clock.step_mode:
            self.venue.step_events(1)  # the first event (a replay's snapshot) sets the clock
        else:
            self._ticker = asyncio.create_task(self._tick_forever())
            self.venue.tick(TICK_MAX_EVENTS, TICK_BUDGET_S)
        yield
        if self._ticker:
            self._ticker.cancel()

    async def _tick_forever(self) -> None:
        while True:
            behind = False
            try:
                behind = self.venue.tick(TICK_MAX_EVENTS, TICK_BUDGET_S)
            except Exception:  # a bug must not silently stop the market
                log.exception("venue tick failed")
            # behind: catch up, but only after the loop has served what is waiting
            await asyncio.sleep(0 if behind else TICK_S)

    # -- REST pipeline -----------------------------------------------------------------------

    async def rest(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        ip = request.client.host if request.client else "?"
        endpoint = self.endpoints.get((request.method, path))
        faults = self.venue.faults
        if faults.clock_skew_ms:  # this request is served on the skewed clock
            self.venue.metrics.faults.labels("clock_skew").inc()
        if faults.delay_ms:
            self.venue.metrics.faults.labels("delay").inc()
            await asyncio.sleep(faults.delay_ms / 1000)
        try:
            body = (await request.body()).decode("utf-8", "replace")
        except ClientDisconnect:  # the client gave up before sending it all: nothing to do
            return Response(status_code=499)
        headers: dict[str, str] = {}
        try:
            if endpoint is None:
                raise ApiError(-1000 if path.startswith("/fapi") else -1,
                               f"Path {path}, Method {request.method} is invalid", 404)
            self._check_ban(ip)
            if faults.error_rate and self.venue.rng.random() < faults.error_rate:
                self.venue.metrics.faults.labels("error_5xx").inc()
                raise ApiError(-1001, "Service Unavailable.", 503)
            params = _params(request.url.query, body)
            weight = endpoint.weight(params) if callable(endpoint.weight) else endpoint.weight
            headers.update(self._charge(ip, weight))
            if faults.rate_429 and self.venue.rng.random() < faults.rate_429:
                self.venue.metrics.faults.labels("rate_429").inc()
                raise ApiError(-1003, "Too many requests; current limit is 2400 requests per "
                                      "minute. Please use the websocket for live updates to "
                                      "avoid polling the API.", 429, {"Retry-After": "1"})
            api_key = self._authenticate(endpoint, request, params, body)
            if endpoint.orders:
                headers.update(self._count_orders(endpoint.orders))
            call = Call(self.venue, params, api_key)
            result = endpoint.handler(call)
            if asyncio.iscoroutine(result):
                result = await result
            self._tick_step_mode()
            if endpoint.orders and faults.lose_order_response_rate and (
                    self.venue.rng.random() < faults.lose_order_response_rate):
                self.venue.metrics.faults.labels("lost_order_response").inc()
                raise ApiError(-1007, "Timeout waiting for response from backend server. Send "
                                      "status unknown; execution status unknown.", 503)
            return self._respond(path, 200, result, headers)
        except Reject as exc:
            return self._respond(path, 400, {"code": exc.code, "msg": exc.msg}, headers)
        except ApiError as exc:
            headers.update(exc.headers)
            return self._respond(path, exc.status, {"code": exc.code, "msg": exc.msg}, headers)

    def _respond(self, path: str, status: int, body: Any, headers: dict[str, str]) -> Response:
        self.venue.metrics.requests.labels(path if status != 404 else "unknown",
                                           str(status)).inc()
        return Response(orjson.dumps(body), status, headers, media_type="application/json")

    def _tick_step_mode(self) -> None:
        """Step mode has no ticker: a request's effects (throttled depth, timers) go out now.
        Market events wait for the next step, so a lockstep client sees them one at a time."""
        if self.venue.clock.step_mode:
            self.venue.settle()

    def _check_ban(self, ip: str) -> None:
        until = self.banned_until.get(ip, 0)
        if until > time.time():
            stamp = int(until * 1000)
            raise ApiError(-1003, f"Way too many requests; IP({ip}) banned until {stamp}. "
                                  "Please use the websocket for live updates to avoid bans.",
                           418, {"Retry-After": str(int(until - time.time()) + 1)})

    def _charge(self, ip: str, weight: int) -> dict[str, str]:
        """Fixed one-minute weight windows per IP. Over the limit: 429; a client that keeps
        going while refused is banned (418) for BAN_S seconds."""
        minute = self.venue.now() // 60000
        window, used = self.weights.get(ip, (minute, 0))
        if window != minute:
            used = 0
            self.violations[ip] = 0
        used += weight
        self.weights[ip] = (minute, used)
        headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
        if used > WEIGHT_LIMIT:
            self.violations[ip] = self.violations.get(ip, 0) + 1
            if self.violations[ip] > 10:
                self.banned_until[ip] = time.time() + BAN_S
                self._check_ban(ip)
            retry = 60 - (self.venue.now() // 1000) % 60
            raise ApiError(-1003, "Too many requests; current limit is 2400 requests per "
                                  "minute. Please use the websocket for live updates to avoid "
                                  "polling the API.", 429,
                           {**headers, "Retry-After": str(retry)})
        return headers

    def _count_orders(self, cost: int) -> dict[str, str]:
        """The account's ORDERS windows: a request costs `cost` on the 10-second window and
        1 on the minute (batchOrders: 5 and 1, as Binance documents)."""
        now = self.venue.now()
        counts = self.order_counts
        while counts and now - counts[0][0] >= 60000:
            counts.popleft()
        in_10s = sum(c for t, c in counts if now - t < 10000)
        if in_10s + cost > ORDERS_10S:
            raise ApiError(-1015, f"Too many new orders; current limit is {ORDERS_10S} orders "
                                  "per TEN_SECONDS.", 429)
        if len(counts) + 1 > ORDERS_1M:
            raise ApiError(-1015, f"Too many new orders; current limit is {ORDERS_1M} orders "
                                  "per MINUTE.", 429)
        counts.append((now, cost))
        return {"X-MBX-ORDER-COUNT-10S": str(in_10s + cost),
                "X-MBX-ORDER-COUNT-1M": str(len(counts))}

    def _authenticate(self, endpoint: Endpoint, request: Request, params: dict[str, str],
                      body: str) -> str | None:
        if endpoint.security == "NONE":
            return None
        api_key = request.headers.get("X-MBX-APIKEY")
        if not api_key:
            raise ApiError(-2014, "API-key format invalid.", 401)
        venue = self.venue
        if api_key not in venue.api_keys and api_key not in venue.ed25519_keys:
            raise ApiError(-2015, "Invalid API-key, IP, or permissions for action, request ip: "
                                  f"{request.client.host if request.client else '?'}", 401)
        if endpoint.security == "SIGNED":
            self._verify(api_key, request.url.query, body, params)
        return api_key

    def _verify(self, api_key: str, query: str, body: str, params: dict[str, str]) -> None:
        signature = params.get("signature")
        if not signature:
            raise _missing("signature")
        payload = _strip_signature(query) + _strip_signature(body)
        venue = self.venue
        if api_key in venue.ed25519_keys:
            valid = verify_ed25519(venue.ed25519_keys[api_key], payload, unquote(signature))
        else:
            valid = verify_hmac(venue.api_keys[api_key], payload, signature)
        if not valid:
            raise ApiError(-1022, "Signature for this request is not valid.")
        timestamp = params.get("timestamp")
        if not timestamp or not timestamp.isdigit():
            raise _missing("timestamp")
        window = params.get("recvWindow", "5000")
        if not window.isdigit() or int(window) > venue.recv_window_cap:
            raise ApiError(-1131, f"recvWindow must be less than {venue.recv_window_cap}.")
        if venue.clock.step_mode or venue.clock.speed != 1:
            return  # venue time is not wall time: no client clock can match it
        now, ts = venue.now(), int(timestamp)
        if ts >= now + 1000:
            raise ApiError(-1021, "Timestamp for this request was 1000ms ahead of the server's "
                                  "time.")
        if now - ts > int(window):
            raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")

    # -- endpoints ---------------------------------------------------------------------------

    def _endpoints(self) -> dict[tuple[str, str], Endpoint]:
        E = Endpoint
        s = "SIGNED"
        table = {
            ("GET", "/fapi/v1/ping"): E(lambda c: {}),
            ("GET", "/fapi/v1/time"): E(lambda c: {"serverTime": c.venue.now()}),
            ("GET", "/fapi/v1/exchangeInfo"): E(self.exchange_info),
            ("GET", "/fapi/v1/depth"): E(self.depth, _depth_weight),
            ("GET", "/fapi/v1/ticker/bookTicker"): E(self.book_ticker,
                                                      lambda p: 2 if p.get("symbol") else 5),
            ("GET", "/fapi/v1/ticker/price"): E(self.ticker_price,
                                                 lambda p: 1 if p.get("symbol") else 2),
            ("GET", "/fapi/v1/premiumIndex"): E(self.premium_index,
                                                 lambda p: 1 if p.get("symbol") else 10),
            ("GET", "/fapi/v1/ticker/24hr"): E(self.ticker_24hr,
                                                lambda p: 1 if p.get("symbol") else 40),
            ("GET", "/fapi/v1/fundingRate"): E(self.funding_rate),
            ("GET", "/fapi/v1/aggTrades"): E(self.agg_trades, 20),
            ("GET", "/fapi/v1/trades"): E(self.trades, 5),
            ("GET", "/fapi/v2/account"): E(lambda c: self.account(c, 2), 5, s),
            ("GET", "/fapi/v3/account"): E(lambda c: self.account(c, 3), 5, s),
            ("GET", "/fapi/v2/balance"): E(self.balance, 5, s),
            ("GET", "/fapi/v3/balance"): E(self.balance, 5, s),
            ("GET", "/fapi/v2/positionRisk"): E(lambda c: self.position_risk(c, 2), 5, s),
            ("GET", "/fapi/v3/positionRisk"): E(lambda c: self.position_risk(c, 3), 5, s),
            ("GET", "/fapi/v1/leverageBracket"): E(self.leverage_bracket, 1, s),
            ("GET", "/fapi/v1/commissionRate"): E(self.commission_rate, 20, s),
            ("POST", "/fapi/v1/leverage"): E(self.leverage, 1, s),
            ("GET", "/fapi/v1/positionSide/dual"): E(
                lambda c: {"dualSidePosition": self.venue.dual_side}, 30, s),
            ("POST", "/fapi/v1/positionSide/dual"): E(self.set_dual, 1, s),
            ("GET", "/fapi/v1/accountConfig"): E(self.account_config, 5, s),
            ("GET", "/fapi/v1/symbolConfig"): E(self.symbol_config, 5, s),
            ("POST", "/fapi/v1/marginType"): E(self.margin_type, 1, s),
            ("GET", "/fapi/v1/multiAssetsMargin"): E(
                lambda c: {"multiAssetsMargin": False}, 30, s),
            ("POST", "/fapi/v1/multiAssetsMargin"): E(self.set_multi_assets, 1, s),
            ("GET", "/fapi/v1/rateLimit/order"): E(
                lambda c: [r for r in RATE_LIMITS if r["rateLimitType"] == "ORDERS"], 1, s),
            ("POST", "/fapi/v1/order"): E(self.new_order, 0, s, orders=1),
            ("POST", "/fapi/v1/order/test"): E(self.test_order, 0, s),
            ("GET", "/fapi/v1/order"): E(self.query_order, 1, s),
            ("GET", "/fapi/v1/openOrder"): E(self.query_open_order, 1, s),
            ("DELETE", "/fapi/v1/order"): E(self.cancel_order, 1, s),
            ("PUT", "/fapi/v1/order"): E(self.modify_order, 0, s, orders=1),
            ("POST", "/fapi/v1/batchOrders"): E(self.batch_new, 5, s, orders=5),
            ("PUT", "/fapi/v1/batchOrders"): E(self.batch_modify, 5, s, orders=5),
            ("DELETE", "/fapi/v1/batchOrders"): E(self.batch_cancel, 1, s),
            ("DELETE", "/fapi/v1/allOpenOrders"): E(self.cancel_all, 1, s),
            ("GET", "/fapi/v1/openOrders"): E(self.open_orders,
                                               lambda p: 1 if p.get("symbol") else 40, s),
            ("GET", "/fapi/v1/allOrders"): E(self.all_orders, 5, s),
            ("POST", "/fapi/v1/countdownCancelAll"): E(self.countdown, 10, s),
            ("GET", "/fapi/v1/userTrades"): E(self.user_trades, 5, s),
            ("GET", "/fapi/v1/income"): E(self.income, 30, s),
            ("POST", "/fapi/v1/listenKey"): E(self.listen_key_new, 1, "USER_STREAM"),
            ("PUT", "/fapi/v1/listenKey"): E(self.listen_key_keepalive, 1, "USER_STREAM"),
            ("DELETE", "/fapi/v1/listenKey"): E(self.listen_key_close, 1, "USER_STREAM"),
        }
        return table

    # market data

    def exchange_info(self, call: Call) -> dict:
        return {
            "timezone": "UTC", "serverTime": self.venue.now(), "futuresType": "U_MARGINED",
            "rateLimits": RATE_LIMITS, "exchangeFilters": [], "assets": ASSETS,
            "symbols": exchange_info_symbols(list(self.venue.specs)),
        }

    def depth(self, call: Call) -> dict:
        symbol = call.symbol()
        limit = call.integer("limit", 500)
        if limit not in DEPTH_WEIGHTS:
            raise ApiError(-4021, "Invalid depth limit.")
        snap = self.venue.engine.depth(symbol, limit)
        spec = self.venue.specs[symbol]
        now = self.venue.now()
        return {"lastUpdateId": snap.last_update_id, "E": now, "T": now,
                "bids": wire.levels(spec, snap.bids), "asks": wire.levels(spec, snap.asks)}

    def _for_symbols(self, call: Call, one: Callable[[str], dict]) -> dict | list:
        symbol = call.symbol(required=False)
        if symbol:
            return one(symbol)
        return [one(s) for s in self.venue.specs]

    def book_ticker(self, call: Call) -> dict | list:
        def one(symbol: str) -> dict:
            snap = self.venue.engine.depth(symbol, 1)
            spec = self.venue.specs[symbol]
            bid = snap.bids[0] if snap.bids else (0, 0)
            ask = snap.asks[0] if snap.asks else (0, 0)
            return {"symbol": symbol, "bidPrice": spec.price_str(bid[0]),
                    "bidQty": spec.qty_str(bid[1]), "askPrice": spec.price_str(ask[0]),
                    "askQty": spec.qty_str(ask[1]), "time": self.venue.now(),
                    "lastUpdateId": snap.last_update_id}
        return self._for_symbols(call, one)

    def ticker_price(self, call: Call) -> dict | list:
        def one(symbol: str) -> dict:
            spec = self.venue.specs[symbol]
            trades = self.venue.recent_trades[symbol]
            price = (spec.price_str(trades[-1].price) if trades
                     else wire.price_of(spec, self.venue.engine.mark_price(symbol)))
            return {"symbol": symbol, "price": price, "time": self.venue.now()}
        return self._for_symbols(call, one)

    def premium_index(self, call: Call) -> dict | list:
        def one(symbol: str) -> dict:
            payload = self.venue.mark_payload(symbol, self.venue.now())
            return {"symbol": symbol, "markPrice": payload["p"], "indexPrice": payload["i"],
                    "estimatedSettlePrice": payload["P"], "lastFundingRate": payload["r"],
                    "interestRate": "0.00010000", "nextFundingTime": payload["T"],
                    "time": payload["E"]}
        return self._for_symbols(call, one)

    def ticker_24hr(self, call: Call) -> dict | list:
        """From the trades the venue keeps (the last 1000 per symbol) of the last 24 hours."""
        now = self.venue.now()

        def one(symbol: str) -> dict:
            spec = self.venue.specs[symbol]
            day = [t for t in self.venue.recent_trades[symbol] if t.ts > now - 86_400_000]
            last = day[-1].price if day else 0
            first = day[0].price if day else 0
            volume = sum(t.qty for t in day)
            quote = sum((spec.notional(t.price, t.qty) for t in day), Decimal(0))
            change = (last - first) * spec.tick_size
            return {
                "symbol": symbol, "priceChange": spec.price_str(last - first),
                "priceChangePercent": f"{change * 100 / (first * spec.tick_size):.3f}"
                if first else "0.000",
                "weightedAvgPrice": wire.price_of(spec, quote / (volume * spec.step_size))
                if volume else "0",
                "lastPrice": spec.price_str(last),
                "lastQty": spec.qty_str(day[-1].qty if day else 0),
                "openPrice": spec.price_str(first),
                "highPrice": spec.price_str(max((t.price for t in day), default=0)),
                "lowPrice": spec.price_str(min((t.price for t in day), default=0)),
                "volume": spec.qty_str(volume), "quoteVolume": wire.money(quote),
                "openTime": day[0].ts if day else now - 86_400_000, "closeTime": now,
                "firstId": day[0].trade_id if day else 0,
                "lastId": day[-1].trade_id if day else 0, "count": len(day),
            }
        return self._for_symbols(call, one)

    def funding_rate(self, call: Call) -> list:
        """From startTime on (ascending), else the newest `limit`."""
        symbol = call.symbol(required=False)
        window = call.window()
        limit = min(call.integer("limit", 100), 1000)
        rows = [f for f in self.venue.engine.fundings
                if (symbol is None or f.symbol == symbol) and f.ts in window]
        rows = rows[:limit] if window.start is not None else rows[-limit:]
        return [{"symbol": f.symbol, "fundingRate": f"{f.rate:.8f}", "fundingTime": f.ts,
                 "markPrice": wire.price_of(self.venue.specs[f.symbol], f.mark)}
                for f in rows]

    def _recent(self, call: Call) -> list:
        symbol = call.symbol()
        limit = min(call.integer("limit", 500), 1000)
        return list(self.venue.recent_trades[symbol])[-limit:], self.venue.specs[symbol]

    def trades(self, call: Call) -> list:
        trades, spec = self._recent(call)
        return [{"id": t.trade_id, "price": spec.price_str(t.price),
                 "qty": spec.qty_str(t.qty),
                 "quoteQty": wire.money(spec.notional(t.price, t.qty)), "time": t.ts,
                 "isBuyerMaker": t.buyer_is_maker, "isRPITrade": False} for t in trades]

    def agg_trades(self, call: Call) -> list:
        trades, spec = self._recent(call)
        from_id = call.integer("fromId")
        window = call.window()
        selected = [t for t in trades
                    if (from_id is None or t.trade_id >= from_id) and t.ts in window]
        out = []
        for t in selected:
            data = wire.agg_trade(t, spec)
            out.append({k: data[k] for k in ("a", "p", "q", "f", "l", "T", "m")})
        return out

    # account

    def _asset_rows(self) -> list[dict]:
        engine = self.venue.engine
        rows = []
        for asset, balance in sorted(engine.balances.items()):
            symbols = [s for s, sp in self.venue.specs.items() if sp.margin_asset == asset]
            upnl = sum((engine.unrealized_pnl(s) for s in symbols), Decimal(0))
            pos_im = sum((engine.position_margin(s) for s in symbols), Decimal(0))
            ord_im = sum((engine.order_margin(s) for s in symbols), Decimal(0))
            available = engine.available(asset)
            rows.append({
                "asset": asset, "walletBalance": wire.money(balance.wallet),
                "unrealizedProfit": wire.money(upnl),
                "marginBalance": wire.money(balance.wallet + upnl),
                "maintMargin": wire.money(pos_im / 4),  # simplified: a quarter of the IM
                "initialMargin": wire.money(pos_im + ord_im),
                "positionInitialMargin": wire.money(pos_im),
                "openOrderInitialMargin": wire.money(ord_im),
                "crossWalletBalance": wire.money(balance.wallet),
                "crossUnPnl": wire.money(upnl), "availableBalance": wire.money(available),
                "maxWithdrawAmount": wire.money(max(available, Decimal(0))),
                "marginAvailable": True, "updateTime": balance.update_time,
            })
        return rows

    def account(self, call: Call, version: int) -> dict:
        assets = self._asset_rows()
        usdt = next((a for a in assets if a["asset"] == "USDT"), None)

        def total(field: str) -> str:
            return usdt[field] if usdt else "0.00000000"

        result: dict[str, Any] = {
            "totalInitialMargin": total("initialMargin"),
            "totalMaintMargin": total("maintMargin"),
            "totalWalletBalance": total("walletBalance"),
            "totalUnrealizedProfit": total("unrealizedProfit"),
            "totalMarginBalance": total("marginBalance"),
            "totalPositionInitialMargin": total("positionInitialMargin"),
            "totalOpenOrderInitialMargin": total("openOrderInitialMargin"),
            "totalCrossWalletBalance": total("crossWalletBalance"),
            "totalCrossUnPnl": total("crossUnPnl"),
            "availableBalance": total("availableBalance"),
            "maxWithdrawAmount": total("maxWithdrawAmount"),
            "assets": assets,
            "positions": [self._account_position(s, version)
                          for s in self._position_symbols(version == 2)],
        }
        if version == 2:
            result = {"feeTier": 0, "feeBurn": False, "canTrade": True, "canDeposit": True,
                      "canWithdraw": True, "updateTime": 0, "multiAssetsMargin": False,
                      "tradeGroupId": -1, **result}
        return result

    def _position_symbols(self, all_symbols: bool) -> list[str]:
        engine = self.venue.engine
        return [s for s in self.venue.specs
                if all_symbols or engine.positions[s].amount or engine.open_orders(s)]

    def _account_position(self, symbol: str, version: int) -> dict:
        engine = self.venue.engine
        spec = self.venue.specs[symbol]
        position = engine.positions[symbol]
        notional = position.amount * spec.step_size * engine.mark_price(symbol)
        pos_im = engine.position_margin(symbol)
        row = {
            "symbol": symbol, "positionSide": "BOTH",
            "positionAmt": wire.signed_qty(spec, position.amount),
            "unrealizedProfit": wire.money(engine.unrealized_pnl(symbol)),
            "isolatedMargin": "0", "notional": wire.money(notional), "isolatedWallet": "0",
            "initialMargin": wire.money(pos_im + engine.order_margin(symbol)),
            "maintMargin": wire.money(pos_im / 4), "updateTime": position.update_time,
        }
        if version == 2:
            bid, ask = self.venue.open_notional(symbol)
            row.update({"positionInitialMargin": wire.money(pos_im),
                        "openOrderInitialMargin": wire.money(engine.order_margin(symbol)),
                        "leverage": str(position.leverage), "isolated": False,
                        "entryPrice": wire.price_of(spec, position.entry_price),
                        "breakEvenPrice": wire.price_of(spec, position.break_even_price),
                        "maxNotional": _max_notional(symbol, position.leverage),
                        "bidNotional": bid, "askNotional": ask})
        return row

    def balance(self, call: Call) -> list:
        return [{"accountAlias": "SgsR", "asset": a["asset"], "balance": a["walletBalance"],
                 "crossWalletBalance": a["crossWalletBalance"], "crossUnPnl": a["crossUnPnl"],
                 "availableBalance": a["availableBalance"],
                 "maxWithdrawAmount": a["maxWithdrawAmount"], "marginAvailable": True,
                 "updateTime": a["updateTime"]} for a in self._asset_rows()]

    def position_risk(self, call: Call, version: int) -> list:
        symbol = call.symbol(required=False)
        engine = self.venue.engine
        symbols = [symbol] if symbol else self._position_symbols(version == 2)
        rows = []
        for name in symbols:
            if version == 3 and not (engine.positions[name].amount or engine.open_orders(name)):
                continue
            rows.append(self._position_row(name, version))
        return rows

    def _position_row(self, symbol: str, version: int) -> dict:
        engine = self.venue.engine
        spec = self.venue.specs[symbol]
        position = engine.positions[symbol]
        mark = engine.mark_price(symbol)
        notional = position.amount * spec.step_size * mark
        bid, ask = self.venue.open_notional(symbol)
        row = {
            "symbol": symbol, "positionSide": "BOTH",
            "positionAmt": wire.signed_qty(spec, position.amount),
            "entryPrice": wire.price_of(spec, position.entry_price),
            "breakEvenPrice": wire.price_of(spec, position.break_even_price),
            "markPrice": wire.price_of(spec, mark),
            "unRealizedProfit": wire.money(engine.unrealized_pnl(symbol)),
            "liquidationPrice": self._liquidation_price(symbol),
            "isolatedMargin": "0", "notional": wire.money(notional), "isolatedWallet": "0",
            "updateTime": position.update_time,
        }
        if version == 2:
            row.update({"leverage": str(position.leverage),
                        "maxNotionalValue": _max_notional(symbol, position.leverage),
                        "marginType": "cross", "isAutoAddMargin": "false"})
        else:
            pos_im = engine.position_margin(symbol)
            row.update({"marginAsset": spec.margin_asset,
                        "initialMargin": wire.money(pos_im + engine.order_margin(symbol)),
                        "maintMargin": wire.money(pos_im / 4),
                        "positionInitialMargin": wire.money(pos_im),
                        "openOrderInitialMargin": wire.money(engine.order_margin(symbol)),
                        "adl": 0, "bidNotional": bid, "askNotional": ask})
        return row

    def _liquidation_price(self, symbol: str) -> str:
        """Where the margin balance would fall to the maintenance margin (simplified: one
        position per margin asset, maintenance = a quarter of the initial margin)."""
        engine = self.venue.engine
        position = engine.positions[symbol]
        if not position.amount:
            return "0"
        spec = self.venue.specs[symbol]
        qty = position.amount * spec.step_size
        wallet = engine.balances[spec.margin_asset].wallet
        mmr = Decimal(1) / position.leverage / 4
        denominator = qty - abs(qty) * mmr
        if not denominator:
            return "0"
        price = (qty * position.entry_price - wallet) / denominator
        return wire.price_of(spec, max(price, Decimal(0)))

    def leverage_bracket(self, call: Call) -> list | dict:
        """With `symbol`, Binance answers the one object, not a one-element array."""
        return self._for_symbols(call, lambda s: {"symbol": s, "notionalCoef": 1.0,
                                                  "brackets": leverage_brackets(s)})

    def commission_rate(self, call: Call) -> dict:
        symbol = call.symbol()
        config = self.venue.engine_config
        return {"symbol": symbol, "makerCommissionRate": _plain(config.maker_fee),
                "takerCommissionRate": _plain(config.taker_fee), "rpiCommissionRate": "0"}

    def leverage(self, call: Call) -> dict:
        symbol = call.symbol()
        value = call.integer("leverage")
        if value is None:
            raise _missing("leverage")
        leverage = self.venue.engine.set_leverage(self.venue.now(), symbol, value)
        return {"leverage": leverage, "maxNotionalValue": _max_notional(symbol, leverage),
                "symbol": symbol}

    def set_dual(self, call: Call) -> dict:
        """One-way mode only: asking for hedge mode is refused (documented)."""
        if call.boolean("dualSidePosition"):
            raise ApiError(-4059, "Hedge mode is not supported by the simulator.")
        raise ApiError(-4059, "No need to change position side.")

    def account_config(self, call: Call) -> dict:
        return {"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True,
                "dualSidePosition": self.venue.dual_side, "updateTime": 0,
                "multiAssetsMargin": False, "tradeGroupId": -1}

    def symbol_config(self, call: Call) -> list:
        symbol = call.symbol(required=False)
        positions = self.venue.engine.positions
        return [{"symbol": s, "marginType": "CROSSED", "isAutoAddMargin": False,
                 "leverage": positions[s].leverage,
                 "maxNotionalValue": _max_notional(s, positions[s].leverage)}
                for s in ([symbol] if symbol else self.venue.specs)]

    def margin_type(self, call: Call) -> dict:
        """Cross margin only: CROSSED is no change (Binance's -4046); ISOLATED is refused."""
        call.symbol()
        kind = call.need("marginType")
        if kind == "CROSSED":
            raise ApiError(-4046, "No need to change margin type.")
        if kind == "ISOLATED":
            raise ApiError(-4046, "Isolated margin is not supported by the simulator.")
        raise ApiError(-1130, "Data sent for parameter 'marginType' is not valid.")

    def set_multi_assets(self, call: Call) -> dict:
        """Single-asset mode only: asking for Multi-Assets mode is refused (documented)."""
        call.need("multiAssetsMargin")
        if call.boolean("multiAssetsMargin"):
            raise ApiError(-4171, "Multi-Assets mode is not supported by the simulator.")
        raise ApiError(-4171, "No need to change multi-assets mode.")

    # orders

    def _request(self, call: Call, params: dict[str, str] | None = None) -> OrderRequest:
        p = params if params is not None else call.params
        sub = Call(self.venue, p, call.api_key)
        sub.check_decimals()
        symbol = sub.symbol()
        spec = self.venue.specs[symbol]
        side = sub.need("side")
        if side not in ("BUY", "SELL"):
            raise ApiError(-1117, "Invalid side.")
        order_type = sub.need("type")
        if order_type in ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                          "TRAILING_STOP_MARKET"):
            raise ApiError(-4120, "Order type not supported for this endpoint. Please use the "
                                  "Algo Order API endpoints instead.")
        if order_type not in ("LIMIT", "MARKET"):
            raise ApiError(-1116, "Invalid orderType.")
        tif = sub.get("timeInForce")
        if order_type == "LIMIT":
            if tif is None:
                raise _missing("timeInForce")
            if tif not in ("GTC", "IOC", "FOK", "GTX", "GTD"):
                raise ApiError(-1115, "Invalid timeInForce.")
        position_side = sub.get("positionSide", "BOTH")
        if position_side != "BOTH":
            raise ApiError(-4061, "Order's position side does not match user's setting.")
        quantity = sub.need("quantity")
        price = sub.get("price")
        if price is not None and sub.get("priceMatch"):
            raise ApiError(-1106, "Parameter 'price' sent when not required.")
        if order_type == "LIMIT" and price is None:
            if sub.get("priceMatch"):
                raise ApiError(-5037, "Invalid price match type (the simulator does not "
                                      "support priceMatch).")
            raise _missing("price")
        if order_type == "MARKET" and price is not None:
            raise ApiError(-1106, "Parameter 'price' sent when not required.")
        reduce_only = sub.boolean("reduceOnly")
        engine = self.venue.engine
        rejection = spec.check_order(side, order_type, quantity, price,
                                     mark_price=engine.mark_price(symbol) or None,
                                     reduce_only=reduce_only)
        if rejection:
            raise ApiError(rejection.code, rejection.msg)
        client_id = sub.get("newClientOrderId")
        if client_id is not None and not CLIENT_ID.match(client_id):
            raise ApiError(-4015, "Client order id is not valid.")
        stp = sub.get("selfTradePreventionMode")
        if stp is not None and stp not in ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER",
                                           "EXPIRE_BOTH"):
            raise ApiError(-5039, "Invalid self trade prevention mode.")
        gtd = sub.integer("goodTillDate", 0) or 0
        if tif == "GTD" and not (self.venue.now() + 600_000 < gtd < 253402300799000):
            raise ApiError(-5040, "goodTillDate must be greater than current time plus 600 "
                                  "seconds and smaller than 253402300799000.")
        if order_type == "MARKET":
            self._check_market_band(spec, side)
        return OrderRequest(
            symbol=symbol, side=side, type=order_type, quantity=spec.to_steps(quantity),
            price=spec.to_ticks(price) if price is not None else None,
            time_in_force=tif or "GTC", reduce_only=reduce_only, client_order_id=client_id,
            stp_mode=stp, good_till_date=gtd // 1000 * 1000 if gtd else 0,
        )

    def _check_market_band(self, spec, side: str) -> None:
        engine = self.venue.engine
        mark = engine.mark_price(spec.symbol)
        snap = engine.depth(spec.symbol, 1)
        best = (snap.asks if side == "BUY" else snap.bids)[:1]
        if not mark or not best:
            return
        price = best[0][0] * spec.tick_size
        if (side == "BUY" and spec.multiplier_up and price > mark * spec.multiplier_up) or (
                side == "SELL" and spec.multiplier_down and price < mark * spec.multiplier_down):
            raise ApiError(-4131, "The counterparty's best price does not meet the "
                                  "PERCENT_PRICE filter limit.")

    def _place(self, call: Call, params: dict[str, str]) -> dict:
        request = self._request(call, params)
        venue = self.venue
        order, events = venue.engine.place(venue.now(), request)
        venue.metrics.orders.labels(request.type).inc()
        accepted = events[0].order if events else order
        venue.dispatch(events)
        spec = venue.specs[order.symbol]
        if params.get("newOrderRespType", "ACK") == "RESULT":
            return wire.order_json(order, spec)
        return wire.order_json(accepted, spec)

    def new_order(self, call: Call) -> dict:
        return self._place(call, call.params)

    def test_order(self, call: Call) -> dict:
        self._request(call)
        return {}

    def _find(self, call: Call, params: dict[str, str] | None = None) -> Order:
        sub = Call(self.venue, params if params is not None else call.params, call.api_key)
        symbol = sub.symbol()
        order_id = sub.integer("orderId")
        client_id = sub.get("origClientOrderId")
        if order_id is None and client_id is None:
            raise ApiError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but "
                                  "both were empty/null!")
        return self.venue.engine.find(symbol, order_id, client_id)

    def query_order(self, call: Call) -> dict:
        order = self._find(call)
        return wire.order_json(order, self.venue.specs[order.symbol])

    def query_open_order(self, call: Call) -> dict:
        order = self._find(call)
        if not order.is_open:
            raise ApiError(-2013, "Order does not exist.")
        return wire.order_json(order, self.venue.specs[order.symbol])

    def cancel_order(self, call: Call, params: dict[str, str] | None = None) -> dict:
        try:
            order = self._find(call, params)
        except Reject as exc:
            if exc.code == -2013:
                raise ApiError(-2011, "Unknown order sent.") from None
            raise
        venue = self.venue
        order, events = venue.engine.cancel(venue.now(), order.symbol, order.order_id)
        venue.dispatch(events)
        return wire.order_json(order, venue.specs[order.symbol])

    def modify_order(self, call: Call, params: dict[str, str] | None = None) -> dict:
        p = params if params is not None else call.params
        sub = Call(self.venue, p, call.api_key)
        sub.check_decimals()
        order = self._find(call, p)
        spec = self.venue.specs[order.symbol]
        side, quantity, price = sub.need("side"), sub.need("quantity"), sub.get("price")
        if price is None:
            raise _missing("price")
        rejection = spec.check_order(side, "LIMIT", quantity, price,
                                     mark_price=self.venue.engine.mark_price(order.symbol)
                                     or None, reduce_only=order.reduce_only)
        if rejection:
            raise ApiError(rejection.code, rejection.msg)
        venue = self.venue
        order, events = venue.engine.modify(venue.now(), order.symbol, side,
                                            spec.to_steps(quantity), spec.to_ticks(price),
                                            order.order_id)
        venue.dispatch(events)
        answer = wire.order_json(order, spec)  # a modify also says the pair and the base filled
        return {**answer, "pair": order.symbol, "cumBase": answer["executedQty"]}

    def _batch(self, call: Call, name: str, limit: int) -> list:
        raw = call.need(name)
        try:
            items = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.") from None
        if not isinstance(items, list) or not 1 <= len(items) <= limit:
            raise ApiError(-4082, f"Invalid number of batch place orders: {len(items)}.")
        return items

    def _each(self, items: list, one: Callable[[dict[str, str]], dict]) -> list:
        results = []
        for item in items:
            params = {k: str(v).lower() if isinstance(v, bool) else str(v)
                      for k, v in (item or {}).items()}
            try:
                results.append(one(params))
            except (Reject, ApiError) as exc:
                results.append({"code": exc.code, "msg": exc.msg})
        return results

    def batch_new(self, call: Call) -> list:
        items = self._batch(call, "batchOrders", 5)
        return self._each(items, lambda p: self._place(call, p))

    def batch_modify(self, call: Call) -> list:
        items = self._batch(call, "batchOrders", 5)
        return self._each(items, lambda p: self.modify_order(call, p))

    def batch_cancel(self, call: Call) -> list:
        symbol = call.symbol()
        ids = call.get("orderIdList")
        client_ids = call.get("origClientOrderIdList")
        if ids is None and client_ids is None:
            raise _missing("orderIdList")
        try:
            values = orjson.loads(ids if ids is not None else client_ids)
        except orjson.JSONDecodeError:
            raise ApiError(-1130, "Data sent for parameter 'orderIdList' is not valid.") from None
        if not isinstance(values, list) or not 1 <= len(values) <= 10:
            raise ApiError(-4082, "Invalid number of batch place orders.")
        key = "orderId" if ids is not None else "origClientOrderId"
        return self._each([{"symbol": symbol, key: v} for v in values],
                          lambda p: self.cancel_order(call, p))

    def cancel_all(self, call: Call) -> dict:
        symbol = call.symbol()
        venue = self.venue
        venue.dispatch(venue.engine.cancel_all(venue.now(), symbol))
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def open_orders(self, call: Call) -> list:
        symbol = call.symbol(required=False)
        return [wire.order_json(o, self.venue.specs[o.symbol])
                for o in self.venue.engine.open_orders(symbol)]

    def all_orders(self, call: Call) -> list:
        """From `orderId` on (the first `limit`, ascending), else the newest `limit`; within
        startTime..endTime (by creation time) when given."""
        symbol = call.symbol()
        from_id = call.integer("orderId")
        window = call.window(SPAN_7D_MS)
        limit = min(call.integer("limit", 500), 1000)
        orders = [o for o in self.venue.engine.orders.values() if o.symbol == symbol
                  and (from_id is None or o.order_id >= from_id) and o.time in window]
        orders.sort(key=lambda o: o.order_id)
        orders = orders[:limit] if from_id is not None else orders[-limit:]
        return [wire.order_json(o, self.venue.specs[symbol]) for o in orders]

    def countdown(self, call: Call) -> dict:
        symbol = call.symbol()
        countdown = call.integer("countdownTime")
        if countdown is None:
            raise _missing("countdownTime")
        self.venue.engine.set_countdown(self.venue.now(), symbol, countdown)
        return {"symbol": symbol, "countdownTime": str(countdown)}

    def user_trades(self, call: Call) -> list:
        symbol = call.symbol()
        window = call.window(SPAN_7D_MS)
        from_id, order_id = call.integer("fromId"), call.integer("orderId")
        limit = min(call.integer("limit", 500), 1000)
        spec = self.venue.specs[symbol]
        fills = [f for f in self.venue.engine.fills if f.symbol == symbol and f.ts in window
                 and (from_id is None or f.trade_id >= from_id)
                 and (order_id is None or f.order_id == order_id)]
        fills = fills[:limit] if from_id is not None else fills[-limit:]
        return [{
            "symbol": f.symbol, "id": f.trade_id, "orderId": f.order_id, "side": f.side,
            "price": spec.price_str(f.price), "qty": spec.qty_str(f.qty),
            "realizedPnl": wire.money(f.realized_pnl), "quoteQty": wire.money(f.quote_qty),
            "commission": wire.money(f.commission), "commissionAsset": f.commission_asset,
            "marginAsset": spec.margin_asset, "time": f.ts,
            "positionSide": f.position_side, "buyer": f.side == "BUY", "maker": f.maker,
        } for f in fills]

    def income(self, call: Call) -> list:
        symbol = call.symbol(required=False)
        kind = call.get("incomeType")
        window = call.window()
        limit = min(call.integer("limit", 100), 1000)
        rows = [i for i in self.venue.engine.incomes
                if (symbol is None or i.symbol == symbol)
                and (kind is None or i.income_type == kind) and i.ts in window]
        return [{"symbol": i.symbol, "incomeType": i.income_type,
                 "income": wire.money(i.income), "asset": i.asset, "info": i.info,
                 "time": i.ts, "tranId": i.tran_id,
                 "tradeId": str(i.trade_id) if i.trade_id else ""} for i in rows[:limit]]

    def listen_key_new(self, call: Call) -> dict:
        return {"listenKey": self.venue.create_listen_key()}

    def listen_key_keepalive(self, call: Call) -> dict:
        if not self.venue.keepalive_listen_key(call.get("listenKey")):
            raise ApiError(-1125, "This listenKey does not exist.")
        key = call.get("listenKey") or next(
            k for k, v in self.venue.listen_keys.items() if v.alive)
        return {"listenKey": key}

    def listen_key_close(self, call: Call) -> dict:
        self.venue.close_listen_key(call.get("listenKey"))
        return {}

    # -- ground truth and metrics ------------------------------------------------------------

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.venue.metrics.registry),
                        media_type="text/plain; version=0.0.4")

    async def sim_control(self, request: Request) -> Response:
        action = request.path_params["action"]
        venue = self.venue
        params = dict(request.query_params)
        if action == "state":
            return _json(venue.engine.state())
        if action == "fills":
            return _json([_fill_row(f, venue) for f in venue.engine.fills])
        if action == "reset" and request.method == "POST":
            venue.reset()
            return _json({"reset": True, "time": venue.now()})
        if action == "step" and request.method == "POST":
            if not venue.clock.step_mode:
                return _json({"code": -1, "msg": "start the venue with --step to step time"},
                             400)
            if "events" in params:
                applied = venue.step_events(int(params["events"]))
            else:
                applied = None
                venue.clock.step(int(params.get("ms", "0")))
                venue.tick()
            return _json({"time": venue.now(), "applied": applied,
                          "marketDone": venue.market_over,
                          **_published(venue)})
        if action == "published":
            return _json({"time": venue.now(), "speed": venue.clock.speed,
                          "stepMode": venue.clock.step_mode, **_published(venue)})
        if action == "faults":
            if request.method == "POST":
                try:
                    venue.faults = Faults.from_mapping(orjson.loads(await request.body()))
                except (ValueError, orjson.JSONDecodeError) as exc:
                    return _json({"code": -1, "msg": str(exc)}, 400)
                venue.clock.skew_ms = venue.faults.clock_skew_ms
            return _json(vars(venue.faults))
        return _json({"code": -1, "msg": f"unknown /_sim/ action {action!r}"}, 404)

    # -- WebSockets --------------------------------------------------------------------------

    async def websocket(self, ws: WebSocket) -> None:
        path = "/" + ws.path_params["path"]
        route, mode, rest = _split_ws_path(path)
        venue = self.venue
        if mode is None:
            await ws.close(code=1008)
            return
        query = dict(parse_qsl(ws.url.query))
        listen_keys = set()
        events: dict[str, frozenset[str]] = {}
        streams: set[str] = set()
        combined = mode == "stream"
        if route == "private" or (route in USER_DATA_ROUTES and mode == "ws"
                                  and rest in venue.listen_keys):
            asked = _user_streams(parse_qsl(ws.url.query)) or {rest: None}
            listen_keys = {k for k in asked if k in venue.listen_keys}
            events = {k: v for k, v in asked.items() if k in listen_keys and v is not None}
            if list(asked) != [""] and not listen_keys:
                await ws.close(code=1008)  # an unknown key: Binance refuses the handshake
                return
        elif combined:
            streams = set(filter(None, query.get("streams", "").split("/")))
        else:
            streams = set(filter(None, rest.split("/")))
        await ws.accept()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=50_000)
        closing: list[tuple[int, str]] = []

        def send(data: bytes) -> None:
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:
                close(1008, "slow consumer")

        def close(code: int, reason: str) -> None:
            if not closing:
                closing.append((code, reason))
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)

        sub = Subscriber(send, route, combined, streams, listen_keys, venue.now(), close,
                         events)
        venue.subscribers.append(sub)
        venue.metrics.connections.inc()
        writer = asyncio.create_task(self._ws_writer(ws, queue, closing))
        try:
            while True:
                text = await ws.receive_text()
                self._ws_control(sub, text)
                if closing:
                    break
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            venue.subscribers.remove(sub)
            venue.metrics.connections.dec()
            close(1000, "")
            with contextlib.suppress(Exception):
                await writer
            if closing:
                with contextlib.suppress(Exception):
                    await ws.close(code=closing[0][0], reason=closing[0][1])

    async def _ws_writer(self, ws: WebSocket, queue: asyncio.Queue,
                         closing: list[tuple[int, str]]) -> None:
        """Send what the venue queues; at the None it closes with the code and reason the
        venue gave (a fault's 1001, the 24-hour limit…)."""
        while True:
            data = await queue.get()
            if data is None:
                code, reason = closing[0] if closing else (1000, "")
                with contextlib.suppress(Exception):
                    await ws.close(code=code, reason=reason)
                return
            try:
                await ws.send_text(data.decode())
            except Exception:
                return

    def _ws_control(self, sub: Subscriber, text: str) -> None:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            sub.send(orjson.dumps({"code": 3, "msg": f"Invalid JSON: {exc}"}))
            return
        if not isinstance(message, dict):
            sub.send(orjson.dumps({"code": 2, "msg": "Invalid request: not an object"}))
            return
        method, ident, params = message.get("method"), message.get("id"), message.get("params")
        if not (isinstance(ident, str) and ident) and not (isinstance(ident, int)
                                                             and ident >= 0):
            # The docs say an unsigned integer; Binance's own SDK sends UUID strings.
            sub.send(orjson.dumps({"code": 2, "msg": "Invalid request: request ID must be an "
                                                      "unsigned integer or a string",
                                   "id": ident}))
            return
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            names = [p for p in params or [] if isinstance(p, str)]
            keys = {n for n in names if n in self.venue.listen_keys
                    and sub.route in USER_DATA_ROUTES}
            if keys:  # user data by listen key over SUBSCRIBE (what Binance's SDK does)
                names = [n for n in names if n not in keys]
                for key in keys:  # by SUBSCRIBE a key carries every event
                    sub.events.pop(key, None)
                if method == "SUBSCRIBE":
                    sub.listen_keys |= keys
                else:
                    sub.listen_keys -= keys
            if method == "SUBSCRIBE":
                if len(sub.streams) + len(names) > MAX_STREAMS:
                    sub.send(orjson.dumps({"code": 2, "msg": "Invalid request: too many "
                                                              "streams", "id": ident}))
                    return
                sub.streams.update(names)
            else:
                sub.streams.difference_update(names)
            sub.send(orjson.dumps({"result": None, "id": ident}))
        elif method == "LIST_SUBSCRIPTIONS":
            names = sorted(sub.streams | sub.listen_keys)
            sub.send(orjson.dumps({"result": names, "id": ident}))
        elif method == "SET_PROPERTY" and params and params[0] == "combined":
            sub.combined = bool(params[1]) if len(params) > 1 else sub.combined
            sub.send(orjson.dumps({"result": None, "id": ident}))
        elif method == "GET_PROPERTY" and params and params[0] == "combined":
            sub.send(orjson.dumps({"result": sub.combined, "id": ident}))
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            sub.send(orjson.dumps({"code": 0, "msg": "Unknown property", "id": ident}))
        else:
            sub.send(orjson.dumps({"code": 2, "msg": f"Invalid request: unknown method "
                                                      f"{method!r}", "id": ident}))


def _split_ws_path(path: str) -> tuple[str, str | None, str]:
    """'/public/ws/a/b' → ('public', 'ws', 'a/b'); '/stream' → ('', 'stream', '')."""
    parts = path.strip("/").split("/", 2)
    route = ""
    if parts and parts[0] in ("public", "market", "private"):
        route = parts.pop(0)
        parts = "/".join(parts).split("/", 1)
    if not parts or parts[0] not in ("ws", "stream"):
        return route, None, ""
    return route, parts[0], parts[1] if len(parts) > 1 else ""


def _user_streams(pairs: list[tuple[str, str]]) -> dict[str, frozenset[str] | None]:
    """The listen keys of a /private query and, for each, the event types its `events=`
    names (`A/B`; it follows its listenKey): `listenKey=k1&events=ORDER_TRADE_UPDATE&
    listenKey=k2` → {k1: {ORDER_TRADE_UPDATE}, k2: None (every event)}."""
    keys: dict[str, frozenset[str] | None] = {}
    last = None
    for name, value in pairs:
        if name == "listenKey":
            keys.setdefault(value, None)
            last = value
        elif name == "events" and last is not None:
            keys[last] = (keys[last] or frozenset()) | set(filter(None, value.split("/")))
    return keys


def _depth_weight(params: dict[str, str]) -> int:
    try:
        return DEPTH_WEIGHTS.get(int(params.get("limit", "500")), 20)
    except ValueError:
        return 20


def _params(query: str, body: str) -> dict[str, str]:
    """Query and form body together; a key in both takes the query's value."""
    params = dict(parse_qsl(body, keep_blank_values=True))
    params.update(parse_qsl(query, keep_blank_values=True))
    return params


def _strip_signature(raw: str) -> str:
    """The signed payload is everything sent except `&signature=…` itself."""
    return re.sub(r"&?signature=[^&]*", "", raw)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _max_notional(symbol: str, leverage: int) -> str:
    caps = [b["notionalCap"] for b in leverage_brackets(symbol) if b["initialLeverage"] >= leverage]
    return str(caps[-1] if caps else 0)


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data, default=str), status, media_type="application/json")


def _published(venue) -> dict:
    """Messages delivered so far per stream name and per listen key (for lockstep clients)."""
    return {"streams": dict(venue.published), "users": dict(venue.published_user),
            "subscribed": sorted({n for sub in venue.subscribers for n in sub.streams}),
            "listening": sorted({k for sub in venue.subscribers for k in sub.listen_keys})}


def _fill_row(fill, venue: Venue) -> dict:
    spec = venue.specs[fill.symbol]
    return {"symbol": fill.symbol, "tradeId": fill.trade_id, "orderId": fill.order_id,
            "clientOrderId": fill.client_order_id, "side": fill.side,
            "price": spec.price_str(fill.price), "qty": spec.qty_str(fill.qty),
            "commission": wire.money(fill.commission), "realizedPnl": wire.money(
                fill.realized_pnl), "maker": fill.maker, "time": fill.ts}


# -- running it ------------------------------------------------------------------------------


class AppThread:
    """An ASGI app served by uvicorn on its own thread and loop; `port=0` picks a free port."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, name: str = "mmkit-http"):
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                ws_ping_interval=180, ws_ping_timeout=600, lifespan="on")
        self.uvicorn = uvicorn.Server(config)
        self.uvicorn.install_signal_handlers = lambda: None
        self.thread = threading.Thread(target=self.uvicorn.run, name=name, daemon=True)

    def start(self, timeout: float = 10.0) -> AppThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.uvicorn.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        return self.uvicorn.servers[0].sockets[0].getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> AppThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ServerThread(AppThread):
    """The venue served on its own thread: for tests, `mmkit run`'s embedded simulator and
    benchmarks."""

    def __init__(self, venue: Venue, host: str = "127.0.0.1", port: int = 0):
        self.venue = venue
        self.server = SimServer(venue)
        super().__init__(self.server.app, host, port, name="mmkit-sim")
