"""Execution against the simulator: a modify (PUT /fapi/v1/order or a batch PUT) whose answer is
lost has an unknown outcome, like a place: the order is held, never modified again blindly,
and settled by querying it; the order manager then holds the venue's price and size."""

from __future__ import annotations

import asyncio

import pytest

from mmkit.binance.rest import RestClient
from mmkit.binance.signing import Credentials
from mmkit.execution import Execution
from mmkit.model import QuoteLevel
from mmkit.orders import LIVE, UNKNOWN, ClientIds, Modify, OrderManager
from mmkit.sim.instruments import default_specs
from mmkit.sim.venue import SIM_API_KEY, SIM_API_SECRET, Faults
from tests.simkit import serve, static_venue

SPEC = default_specs(["ETHUSDC"])["ETHUSDC"]
SIZE = SPEC.to_steps("0.010")


@pytest.fixture(scope="module")
def sim():
    with serve(static_venue()) as server:  # bid 3000.00, ask 3000.01, nothing trades
        yield server


@pytest.fixture
def lose(sim):
    """Call to lose every order response from now on; all faults off after the test."""
    def on(rate: float = 1.0) -> None:
        sim.venue.faults = Faults(lose_order_response_rate=rate)
    yield on
    sim.venue.faults = Faults()


def level(side: str, price: str, tag: str) -> QuoteLevel:
    return QuoteLevel(side, SPEC.to_ticks(price), SIZE, tag)


class Parts:
    def __init__(self, rest: RestClient, run_id: str):
        self.manager = OrderManager(SPEC, ClientIds("mm", run_id))
        self.lines: list[dict] = []
        self.execution = Execution(rest, self.manager, "ETHUSDC", self.lines.append)

    async def resting(self) -> dict[str, dict]:
        """Our open orders on the venue, by client order id."""
        orders = await self.execution.client.open_orders("ETHUSDC")
        return {o["clientOrderId"]: o for o in orders
                if o["clientOrderId"].startswith(self.manager.ids.head)}


def run_against(sim, run_id: str, body):
    async def go():
        async with RestClient(sim.base_url, Credentials(SIM_API_KEY, SIM_API_SECRET)) as rest:
            parts = Parts(rest, run_id)
            try:
                return await body(parts)
            finally:
                sim.venue.faults = Faults()
                await parts.execution.cancel_all("shutdown")
    return asyncio.run(go())


def test_a_lost_modify_answer_is_unknown_then_settled_at_the_venues_price(sim, lose):
    async def body(p: Parts):
        m = p.manager
        await p.execution.execute(m.diff([level("BUY", "2999.50", "b0")], 0))
        assert m.slot("b0").state == LIVE
        (modify,) = m.diff([level("BUY", "2999.40", "b0")], 10)
        assert isinstance(modify, Modify)
        lose()
        await p.execution.execute([modify])
        lose(0.0)
        order = m.slot("b0")
        reject = p.lines[-1]
        assert reject["type"] == "order_reject" and reject["unknown"] is True
        assert reject["code"] is None and reject["clientOrderId"] == order.client_order_id
        assert order.state == UNKNOWN  # not a reject: the venue did apply it
        assert m.diff([level("BUY", "2999.40", "b0")], 20) == []  # never resent blindly
        assert m.unknown_orders() == [order]

        await p.execution.settle_unknown()
        ack = p.lines[-1]
        assert ack["type"] == "order_ack" and ack["settled"] is True
        assert order.state == LIVE and order.price == SPEC.to_ticks("2999.40")
        assert m.diff([level("BUY", "2999.40", "b0")], 30) == []  # nothing left to send
        resting = await p.resting()
        assert [o["price"] for o in resting.values()] == ["2999.40"]
        return p.lines

    lines = run_against(sim, "lostmod", body)
    modifies = [x for x in lines if x["type"] == "order_modify"]
    assert len(modifies) == 1  # the modify went out once


def test_a_lost_batch_modify_answer_holds_each_order_with_its_own_id(sim, lose):
    async def body(p: Parts):
        m = p.manager
        quote = [level("BUY", "2999.50", "b0"), level("SELL", "3000.50", "a0")]
        await p.execution.execute(m.diff(quote, 0))
        moved = [level("BUY", "2999.45", "b0"), level("SELL", "3000.55", "a0")]
        actions = m.diff(moved, 10)
        assert [type(a) for a in actions] == [Modify, Modify]  # one batch PUT
        lose()
        await p.execution.execute(actions)
        lose(0.0)
        rejects = [x for x in p.lines if x["type"] == "order_reject"]
        ids = {a.order.client_order_id for a in actions}
        assert {x["clientOrderId"] for x in rejects} == ids
        assert all(x["unknown"] and x["code"] is None for x in rejects)
        assert all("clientOrderId ," not in x["msg"] for x in rejects)
        assert {o.state for o in m.orders.values()} == {UNKNOWN}
        assert m.diff(moved, 20) == []

        await p.execution.settle_unknown()
        assert {(o.tag, SPEC.price_str(o.price)) for o in m.orders.values()} == {
            ("b0", "2999.45"), ("a0", "3000.55")}
        assert {o.state for o in m.orders.values()} == {LIVE}
        resting = await p.resting()
        assert sorted(o["price"] for o in resting.values()) == ["2999.45", "3000.55"]
        assert m.diff(moved, 30) == []

    run_against(sim, "lostbatch", body)


def test_a_modify_that_never_left_is_a_definite_failure_and_tried_again(sim):
    """Connection refused: the venue never saw it, so the order keeps its price and the next
    diff may send the modify again (this is not an unknown outcome)."""
    async def body(p: Parts):
        m = p.manager
        await p.execution.execute(m.diff([level("BUY", "2999.50", "b0")], 0))
        actions = m.diff([level("BUY", "2999.40", "b0")], 10)
        real = p.execution.client
        async with RestClient("http://127.0.0.1:1", Credentials(SIM_API_KEY, SIM_API_SECRET),
                              max_retries=0) as dead:
            dead.clock = real.clock
            p.execution.client = dead
            await p.execution.execute(actions)
            p.execution.client = real
        order = m.slot("b0")
        assert order.state == LIVE and order.price == SPEC.to_ticks("2999.50")
        assert p.lines[-1]["type"] == "order_reject" and p.lines[-1]["unknown"] is False
        (again,) = m.diff([level("BUY", "2999.40", "b0")], 20)
        assert isinstance(again, Modify)
        await p.execution.execute([again])
        assert order.state == LIVE and order.price == SPEC.to_ticks("2999.40")

    run_against(sim, "deadmod", body)
