"""The REST client over loopback against a small scripted server that answers with the real
payloads in ../shared/data/api: signing, weight headers, throttling, 429/418, -1021 resync,
retries, outcome-unknown order placement, and that no secret ever reaches an output."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections import defaultdict, deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mmkit.binance.limits import Limits, WindowLimit
from mmkit.binance.rest import RestClient, encode_params
from mmkit.binance.signing import Credentials, verify_hmac
from mmkit.errors import NetworkError, OutcomeUnknown, RateLimited, VenueError
from mmkit.sim.server import AppThread

KEY = "tEsTkEy" + "k" * 57
SECRET = "tEsTsEcReT" + "s" * 54


def ccxt_response(data, endpoint: str):
    entries = json.loads((data / "api/rest/ccxt/binance_usdm_http_responses.json").read_text())
    return next(e["httpResponse"] for e in entries["entries"]
                if e["endpoint_inferred"].endswith(endpoint))


class Scripted:
    """Answers each (method, path) from a queue of scripted responses, then from a default;
    records every request with its raw query and headers."""

    def __init__(self, defaults: dict):
        self.defaults = defaults
        self.queue: dict[tuple[str, str], deque] = defaultdict(deque)
        self.seen: list[dict] = []
        self.server_offset_ms = 0
        self.used_weight = 0
        self.app = Starlette(routes=[Route("/{path:path}", self.handle,
                                           methods=["GET", "POST", "PUT", "DELETE"])])

    def script(self, method: str, path: str, *responses) -> None:
        self.queue[(method, path)].extend(responses)

    async def handle(self, request: Request) -> Response:
        key = (request.method, request.url.path)
        query = request.url.query
        self.seen.append({"method": request.method, "path": request.url.path, "query": query,
                          "headers": dict(request.headers)})
        self.used_weight += 1
        if key == ("GET", "/fapi/v1/time"):
            return JSONResponse({"serverTime": int(time.time() * 1000) + self.server_offset_ms})
        if "signature=" in query:
            payload, signature = query.rsplit("&signature=", 1)
            if not verify_hmac(SECRET, payload, signature):
                return JSONResponse({"code": -1022, "msg": "Signature for this request is not valid."},
                                    400)
        status, body, headers, delay = 200, self.defaults.get(key, {}), {}, 0.0
        if self.queue[key]:
            status, body, headers, *rest = self.queue[key].popleft()
            delay = rest[0] if rest else 0.0
        if delay:
            await asyncio.sleep(delay)
        headers = {"X-MBX-USED-WEIGHT-1M": str(self.used_weight), **headers}
        return JSONResponse(body, status, headers=headers)


@pytest.fixture(scope="module")
def scripted(shared_data):
    rest = shared_data / "api/rest"
    defaults = {
        ("GET", "/fapi/v1/exchangeInfo"):
            json.loads((rest / "exchangeInfo_fapi_20210721T090403Z_full.json").read_text()),
        ("GET", "/fapi/v1/depth"):
            json.loads((rest / "depth_ETHUSDT_limit1000_20240808T235416Z.json").read_text()),
        ("GET", "/fapi/v3/account"): ccxt_response(shared_data, "/fapi/v3/account"),
        ("GET", "/fapi/v1/userTrades"): ccxt_response(shared_data, "/fapi/v1/userTrades"),
        ("POST", "/fapi/v1/order"): {"orderId": 1, "status": "NEW"},
        ("DELETE", "/fapi/v1/order"): {"orderId": 1, "status": "CANCELED"},
        ("POST", "/fapi/v1/listenKey"): {"listenKey": "lk" * 16},
    }
    server = Scripted(defaults)
    with AppThread(server.app) as thread:
        server.base_url = thread.base_url
        yield server


@pytest.fixture
def server(scripted):
    scripted.queue.clear()
    scripted.seen.clear()
    scripted.server_offset_ms = 0
    return scripted


async def no_sleep(seconds: float) -> None:
    no_sleep.slept.append(seconds)


def client_for(server, **kw) -> RestClient:
    no_sleep.slept = []
    return RestClient(server.base_url, Credentials(KEY, SECRET), sleep=no_sleep, **kw)


def run(coro):
    return asyncio.run(coro)


def test_real_payloads_decode_and_requests_are_signed(server):
    async def go():
        async with client_for(server) as client:
            account = await client.account()
            depth = await client.depth("ETHUSDT", 1000)
            trades = await client.user_trades("BTCUSDT")
            return account, depth, trades

    account, depth, trades = run(go())
    assert "assets" in account and depth["lastUpdateId"] == 5123107856276
    assert isinstance(trades, list) and trades
    signed = [r for r in server.seen if r["path"] == "/fapi/v3/account"][0]
    assert signed["headers"]["x-mbx-apikey"] == KEY
    assert "recvWindow=5000&timestamp=" in signed["query"]
    assert signed["query"].rsplit("&", 1)[1].startswith("signature=")
    unsigned = [r for r in server.seen if r["path"] == "/fapi/v1/depth"][0]
    assert "x-mbx-apikey" not in unsigned["headers"]


def test_weight_header_is_tracked(server):
    async def go():
        async with client_for(server) as client:
            await client.server_time()
            await client.server_time()
            return client.limits.weight.used

    assert run(go()) >= 2


def test_exchange_info_seeds_limits_from_rate_limits(server):
    async def go():
        async with client_for(server) as client:
            await client.exchange_info()
            return client.limits

    limits = run(go())
    assert limits.weight.limit == 2400
    assert {w.interval_ms: w.limit for w in limits.orders} == {60_000: 1200, 10_000: 300}


def test_429_waits_retry_after_then_succeeds(server):
    server.script("GET", "/fapi/v3/account",
                  (429, {"code": -1003, "msg": "Too many requests."}, {"Retry-After": "7"}))

    async def go():
        async with client_for(server) as client:
            return await client.account(), client.retries

    account, retries = run(go())
    assert "assets" in account and retries == 1
    assert 7 in no_sleep.slept


def test_429_without_retry_after_backs_off_with_jitter(server):
    server.script("GET", "/fapi/v1/depth",
                  *[(429, {"code": -1003, "msg": "Too many requests."}, {})] * 2)

    async def go():
        async with client_for(server, backoff_s=0.2) as client:
            return await client.depth("ETHUSDT")

    run(go())
    first, second = no_sleep.slept[:2]
    assert 0.1 <= first <= 0.3 and 0.2 <= second <= 0.6


def test_418_halts_every_request_until_the_ban_ends(server):
    server.script("GET", "/fapi/v1/depth",
                  (418, {"code": -1003, "msg": "Way too many requests; IP banned."},
                   {"Retry-After": "120"}))

    async def go():
        async with client_for(server) as client:
            with pytest.raises(RateLimited) as first:
                await client.depth("ETHUSDT")
            sent = len(server.seen)
            with pytest.raises(RateLimited) as second:
                await client.server_time()
            return first.value, second.value, sent

    first, second, sent = run(go())
    assert first.status == 418 and first.retry_after == 120
    assert second.status == 418 and len(server.seen) == sent  # nothing more was sent


def test_minus_1021_resyncs_the_clock_and_retries_once(server):
    server.script("GET", "/fapi/v3/account",
                  (400, {"code": -1021, "msg": "Timestamp for this request is outside of the "
                         "recvWindow."}, {}))
    server.server_offset_ms = 4000

    async def go():
        async with client_for(server) as client:
            account = await client.account()
            return account, client.clock.ms

    account, offset = run(go())
    assert "assets" in account
    assert 3500 < offset < 4500
    assert [r["path"] for r in server.seen].count("/fapi/v3/account") == 2


def test_minus_1021_twice_is_raised(server):
    body = {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}
    server.script("GET", "/fapi/v3/account", (400, body, {}), (400, body, {}))

    async def go():
        async with client_for(server) as client:
            await client.account()

    with pytest.raises(VenueError) as err:
        run(go())
    assert err.value.code == -1021 and err.value.exit_code == 3


def test_reads_are_retried_on_5xx_but_orders_are_not(server):
    busy = (503, {"code": -1000, "msg": "Service Unavailable."}, {})
    server.script("GET", "/fapi/v1/depth", busy)
    server.script("POST", "/fapi/v1/order", busy)

    async def go():
        async with client_for(server) as client:
            await client.depth("ETHUSDT")
            with pytest.raises(VenueError) as err:
                await client.place_order(symbol="ETHUSDT", side="BUY", type="LIMIT",
                                         timeInForce="GTX", quantity="0.010", price="2000")
            return err.value

    err = run(go())
    assert err.status == 503
    assert [r["path"] for r in server.seen].count("/fapi/v1/order") == 1


def place_gtc_bid(server, **params):
    """One GTC bid through the client; the server's scripted answer decides what comes back."""
    async def go():
        async with client_for(server) as client:
            return await client.place_order(symbol="ETHUSDT", side="BUY", type="LIMIT",
                                            timeInForce="GTC", quantity="0.010", price="2000",
                                            **params)

    return run(go())


def test_unknown_execution_status_surfaces_the_client_order_id(server):
    server.script("POST", "/fapi/v1/order",
                  (503, {"code": -1007, "msg": "Timeout waiting for response from backend "
                         "server. Send status unknown; execution status unknown."}, {}))

    with pytest.raises(OutcomeUnknown) as err:
        place_gtc_bid(server, newClientOrderId="mm-abc-1")
    assert err.value.client_order_id == "mm-abc-1" and "mm-abc-1" in str(err.value)


@pytest.mark.parametrize("status, body", [
    (500, {"code": -1000, "msg": "An unknown error occurred while processing the request."}),
    (502, "<html>Bad Gateway</html>"),
    (504, {}),
    (408, {}),
    (503, {"code": -1000, "msg": "Unknown error, please check your request or try again later."}),
])
def test_an_order_answered_by_a_backend_failure_has_an_unknown_outcome(server, status, body):
    server.script("POST", "/fapi/v1/order", (status, body, {}))

    with pytest.raises(OutcomeUnknown) as err:
        place_gtc_bid(server, newClientOrderId="mm-abc-2")
    assert err.value.client_order_id == "mm-abc-2" and err.value.exit_code == 4
    assert [r["path"] for r in server.seen].count("/fapi/v1/order") == 1


@pytest.mark.parametrize("body", [
    {"code": -1000, "msg": "Service Unavailable."},
    {"code": -1000, "msg": "Internal error; unable to process your request. Please try again."},
    {"code": -1008, "msg": "Request throttled by system-level protection."},
])
def test_an_order_the_venue_says_it_never_ran_is_a_plain_failure(server, body):
    server.script("POST", "/fapi/v1/order", (503, body, {}))

    with pytest.raises(VenueError) as err:
        place_gtc_bid(server)
    assert not isinstance(err.value, OutcomeUnknown) and err.value.status == 503


def test_order_timeout_is_outcome_unknown_never_resent(server):
    server.script("POST", "/fapi/v1/order", (200, {"orderId": 2}, {}, 1.0))

    async def go():
        async with client_for(server, read_timeout=0.2) as client:
            await client.place_order(symbol="ETHUSDT", side="SELL", type="LIMIT",
                                     timeInForce="GTC", quantity="0.010", price="4000")

    with pytest.raises(OutcomeUnknown) as err:
        run(go())
    sent = [r for r in server.seen if r["path"] == "/fapi/v1/order"]
    assert len(sent) == 1
    assert err.value.client_order_id and err.value.client_order_id in sent[0]["query"]


def test_cancel_timeout_is_retried(server):
    server.script("DELETE", "/fapi/v1/order", (200, {"orderId": 1}, {}, 1.0))

    async def go():
        async with client_for(server, read_timeout=0.2) as client:
            return await client.cancel_order("ETHUSDT", order_id=1)

    assert run(go())["status"] == "CANCELED"


def test_unreachable_venue_is_a_network_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def go():
        no_sleep.slept = []
        async with RestClient(f"http://127.0.0.1:{port}", sleep=no_sleep) as client:
            await client.server_time()

    with pytest.raises(NetworkError) as err:
        run(go())
    assert err.value.exit_code == 4 and len(no_sleep.slept) == 3


def test_limits_throttle_before_the_venue_would_refuse():
    limits = Limits.defaults(headroom=0.9)
    now = 1_700_000_010_000
    limits.observe_headers({"x-mbx-used-weight-1m": "2150"}, now)
    assert limits.wait_ms(5, 0, now) == 0
    limits.take(5, 0, now)
    assert limits.wait_ms(20, 0, now) == 60_000 - now % 60_000
    assert limits.wait_ms(20, 0, now + 60_000) == 0


def test_order_windows_count_orders_not_weight():
    window = WindowLimit("ORDERS 10s", 300, 10_000, headroom=1.0)
    for _ in range(300):
        assert window.wait_ms(1, 5_000) == 0
        window.take(1, 5_000)
    assert window.wait_ms(1, 5_000) == 5_000


def test_params_encode_as_binance_expects():
    from decimal import Decimal

    assert encode_params({"reduceOnly": True, "price": Decimal("2000.10"), "x": None,
                          "batchOrders": [{"a": "1"}]}) == \
        "reduceOnly=true&price=2000.10&batchOrders=%5B%7B%22a%22%3A%221%22%7D%5D"


def test_no_secret_in_errors_logs_or_reprs(server, caplog):
    caplog.set_level(logging.DEBUG)
    server.script("GET", "/fapi/v3/account",
                  (400, {"code": -2015, "msg": f"Invalid API-key {KEY}, IP, or permissions"}, {}))

    async def go():
        async with client_for(server) as client:
            texts = [repr(client), str(client.credentials)]
            with pytest.raises(VenueError) as err:
                await client.account()
            texts.append(str(err.value))
            return texts

    texts = run(go()) + [caplog.text]
    for text in texts:
        assert SECRET not in text and KEY not in text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(0, 3_000)), min_size=1, max_size=300))
def test_a_client_that_waits_as_told_never_exceeds_the_window(requests):
    window = WindowLimit("REQUEST_WEIGHT 1m", 600, 60_000, headroom=0.9)
    now, per_window = 0, defaultdict(int)
    for cost, gap in requests:
        now += gap
        now += window.wait_ms(cost, now)
        window.take(cost, now)
        per_window[now // 60_000] += cost
    assert max(per_window.values()) <= window.budget
