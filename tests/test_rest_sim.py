"""mmkit's REST client against the simulator: the order lifecycle, Ed25519 keys, and the
faults a live venue throws at a client (lost order responses, 429s, clock skew)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mmkit.binance.rest import RestClient
from mmkit.binance.signing import Credentials
from mmkit.errors import OutcomeUnknown, VenueError
from mmkit.sim.venue import SIM_API_KEY, SIM_API_SECRET, Faults
from tests.simkit import serve, static_venue

ED_KEY = "edKey" + "e" * 59
ED_PRIVATE = Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def sim():
    venue = static_venue()
    venue.ed25519_keys[ED_KEY] = ED_PRIVATE.public_key()
    with serve(venue) as server:
        yield server


@pytest.fixture
def faults(sim):
    """The running venue's faults, all off again after the test."""
    yield sim.venue.faults
    sim.venue.faults = Faults()
    sim.venue.clock.skew_ms = 0


def client(sim, credentials=None, **kw) -> RestClient:
    async def no_sleep(_seconds: float) -> None:
        return None

    return RestClient(sim.base_url, credentials or Credentials(SIM_API_KEY, SIM_API_SECRET),
                      sleep=no_sleep, **kw)


def run(coro):
    return asyncio.run(coro)


GTX_BID = dict(symbol="ETHUSDC", side="BUY", type="LIMIT", timeInForce="GTX",
               quantity="0.010", price="2990.00")


def test_place_query_modify_cancel(sim):
    async def go():
        async with client(sim) as rest:
            placed = await rest.place_order(**GTX_BID)
            cid = placed["clientOrderId"]
            queried = await rest.query_order("ETHUSDC", client_order_id=cid)
            modified = await rest.modify_order(symbol="ETHUSDC", orderId=placed["orderId"],
                                               side="BUY", quantity="0.020", price="2991.00")
            open_orders = await rest.open_orders("ETHUSDC")
            canceled = await rest.cancel_order("ETHUSDC", order_id=placed["orderId"])
            return placed, queried, modified, open_orders, canceled

    placed, queried, modified, open_orders, canceled = run(go())
    assert placed["status"] == "NEW" and placed["clientOrderId"].startswith("mm")
    assert queried["orderId"] == placed["orderId"]
    assert modified["price"] == "2991.00" and modified["origQty"] == "0.020"
    assert [o["orderId"] for o in open_orders] == [placed["orderId"]]
    assert canceled["status"] == "CANCELED"


def test_crossing_post_only_is_rejected_with_5022(sim):
    async def go():
        async with client(sim) as rest:
            await rest.place_order(**{**GTX_BID, "price": "3001.00"})

    with pytest.raises(VenueError) as err:
        run(go())
    assert err.value.code == -5022


def test_batch_places_and_reports_per_order_errors(sim):
    async def go():
        async with client(sim) as rest:
            results = await rest.place_batch([dict(GTX_BID), {**GTX_BID, "price": "2990.005"}])
            await rest.cancel_all("ETHUSDC")
            return results

    ok, bad = run(go())
    assert ok["status"] == "NEW" and bad["code"] in (-1111, -4014)


def test_ed25519_key_signs_requests(sim):
    async def go(private_key):
        async with client(sim, Credentials(ED_KEY, private_key=private_key)) as rest:
            return await rest.account()

    assert "assets" in run(go(ED_PRIVATE))
    with pytest.raises(VenueError) as err:
        run(go(Ed25519PrivateKey.generate()))
    assert err.value.code == -1022


def test_ed25519_key_from_a_pem_file(sim, tmp_path):
    from mmkit.binance.signing import load_ed25519_private_key

    pem = tmp_path / "key.pem"
    pem.write_bytes(ED_PRIVATE.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))

    async def go():
        credentials = Credentials(ED_KEY, private_key=load_ed25519_private_key(pem))
        async with client(sim, credentials) as rest:
            return await rest.balances()

    assert any(b["asset"] == "USDC" for b in run(go()))


def test_lost_order_response_is_reconciled_by_client_order_id(sim, faults):
    faults.lose_order_response_rate = 1.0

    async def go():
        async with client(sim) as rest:
            with pytest.raises(OutcomeUnknown) as err:
                await rest.place_order(**GTX_BID)
            faults.lose_order_response_rate = 0.0
            found = await rest.query_order("ETHUSDC", client_order_id=err.value.client_order_id)
            await rest.cancel_order("ETHUSDC", order_id=found["orderId"])
            return err.value, found

    err, found = run(go())
    assert err.exit_code == 4
    assert found["clientOrderId"] == err.client_order_id and found["status"] == "NEW"


def test_429_fault_is_waited_out(sim, faults):
    faults.rate_429 = 0.5

    async def go():
        async with client(sim, max_retries=20) as rest:
            for _ in range(10):
                await rest.book_ticker("ETHUSDC")
            return rest.retries

    assert run(go()) > 0


def test_clock_skew_is_absorbed_by_the_offset(sim, faults):
    async def go():
        async with client(sim) as rest:
            await rest.account()  # measures the offset
            sim.venue.clock.skew_ms = 30_000  # the venue jumps 30 s ahead
            account = await rest.account()  # -1021, resync, retry
            return account, rest.clock.ms

    account, offset = run(go())
    assert "assets" in account and 29_000 < offset < 31_000


def test_user_trades_since_reads_past_a_full_page():
    """Over 1000 fills since the start: the venue answers 1000 a call, from one end of the
    window, so the client halves windows until each fits; every trade comes once, in order."""
    market = dict(symbol="ETHUSDC", type="MARKET", quantity="0.010")

    async def go(sim):
        async with client(sim) as rest, httpx.AsyncClient(base_url=sim.base_url) as http:
            start = (await http.get("/fapi/v1/time")).json()["serverTime"]
            for i in range(210):  # 1050 taker fills, flat every other batch
                await rest.place_batch([{**market, "side": "SELL" if i % 2 else "BUY"}] * 5)
                # venue time moves on: inside the 300-orders-per-10-s limit
                await http.post("/_sim/step", params={"ms": 170})
            return await rest.user_trades_since("ETHUSDC", start)

    with serve(static_venue(step=True)) as sim:
        trades = run(go(sim))
        truth = [f.trade_id for f in sim.venue.engine.fills if f.symbol == "ETHUSDC"]
    assert len(truth) == 1050
    assert [t["id"] for t in trades] == truth
    assert [t["time"] for t in trades] == sorted(t["time"] for t in trades)

