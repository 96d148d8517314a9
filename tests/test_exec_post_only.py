"""Execution against the simulator: a post-only order refused with -5022 is repriced (or sent
as a plain limit, per postOnlyFallback) and sent again within the same `execute`, not a quote
later; at most postOnlyRetries times per slot and cycle."""

from __future__ import annotations

import asyncio

from mmkit.binance.rest import RestClient
from mmkit.binance.signing import Credentials
from mmkit.execution import Execution
from mmkit.model import QuoteLevel
from mmkit.orders import LIVE, ClientIds, OrderManager, Place
from mmkit.sim.instruments import default_specs
from mmkit.sim.venue import SIM_API_KEY, SIM_API_SECRET
from tests.simkit import serve, static_venue

SPEC = default_specs(["ETHUSDC"])["ETHUSDC"]
SIZE = SPEC.to_steps("0.010")


def bid(price: str) -> QuoteLevel:
    return QuoteLevel("BUY", SPEC.to_ticks(price), SIZE, "b0")  # GTX


def one_cycle(quote: list[QuoteLevel], **settings):
    """One diff and one execute against a fresh venue (bid 3000.00, ask 3000.01): the lines,
    what execute returned, the manager's slot b0 (state, time in force) and counters, and our
    open orders on the venue."""
    async def go(sim):
        async with RestClient(sim.base_url, Credentials(SIM_API_KEY, SIM_API_SECRET)) as rest:
            manager = OrderManager(SPEC, ClientIds("mm", "po"), **settings)
            lines: list[dict] = []
            execution = Execution(rest, manager, "ETHUSDC", lines.append)
            retried = await execution.execute(manager.diff(quote, 0))
            resting = await rest.open_orders("ETHUSDC")
            cycle = list(lines)
            order = manager.slot("b0")
            slot = (order.state, order.time_in_force) if order else None
            await execution.cancel_all("shutdown")
            return cycle, retried, (slot, manager.counters), resting

    with serve(static_venue()) as sim:
        return asyncio.run(go(sim))


def test_a_post_only_reject_is_repriced_and_sent_again_in_the_same_cycle():
    lines, retried, manager, resting = one_cycle([bid("3000.01")])  # at the ask: would take
    kinds = [(x["type"], x.get("price"), x.get("code")) for x in lines]
    assert kinds == [("order_new", "3000.01", None), ("order_reject", None, -5022),
                     ("order_new", "3000.00", None), ("order_ack", None, None)]
    assert [type(a) for a in retried] == [Place]  # the caller counts it as an order sent
    slot, counters = manager
    assert slot == (LIVE, "GTX") and counters.post_only_rejects == 1
    assert [(o["price"], o["timeInForce"]) for o in resting] == [("3000.00", "GTX")]


def test_in_cycle_retries_stop_at_post_only_retries():
    lines, retried, manager, resting = one_cycle([bid("3000.03")], post_only_retries=1)
    news = [x["price"] for x in lines if x["type"] == "order_new"]
    assert news == ["3000.03", "3000.02"]  # one retry, a tick away; both would take
    assert [x["code"] for x in lines if x["type"] == "order_reject"] == [-5022, -5022]
    slot, counters = manager
    assert len(retried) == 1 and slot is None and resting == []
    assert counters.post_only_rejects == 2


def test_with_the_limit_fallback_the_retry_is_a_plain_limit():
    lines, retried, _, resting = one_cycle([bid("3000.01")], post_only_fallback="limit")
    news = [(x["price"], x["timeInForce"]) for x in lines if x["type"] == "order_new"]
    assert news == [("3000.01", "GTX"), ("3000.01", "GTC")]
    assert lines[-1]["type"] == "order_ack" and len(retried) == 1
    assert resting == []  # it took the ask, as a plain limit may
