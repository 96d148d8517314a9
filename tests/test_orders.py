"""The order manager: desired quote vs resting orders, the three outcomes, post-only repricing,
client order ids; and, with hypothesis, never two orders in one slot whatever the venue says."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.model import QuoteLevel
from mmkit.orders import (
    LIVE,
    UNKNOWN,
    Cancel,
    ClientIds,
    LocalReject,
    Modify,
    OrderManager,
    Place,
    base36,
)
from mmkit.sim.instruments import default_specs

SPEC = default_specs(["ETHUSDC"])["ETHUSDC"]
BID = SPEC.to_ticks("3000.00")
SIZE = SPEC.to_steps("0.010")


def manager(**kw) -> OrderManager:
    return OrderManager(SPEC, ClientIds("mm", "run1"), **kw)


def bid(price=BID, qty=SIZE, tag="b0") -> QuoteLevel:
    return QuoteLevel("BUY", price, qty, tag)


def ask(price=BID + 2, qty=SIZE, tag="a0") -> QuoteLevel:
    return QuoteLevel("SELL", price, qty, tag)


def ack(m: OrderManager, actions, now=0) -> None:
    for i, action in enumerate(actions):
        if isinstance(action, Place | Modify):
            m.on_ack(action.order.client_order_id, {"orderId": 100 + i, "status": "NEW"}, now)
        elif isinstance(action, Cancel):
            m.on_cancel_ack(action.order.client_order_id, {"status": "CANCELED"})


def test_places_one_order_per_slot_and_waits_for_the_ack():
    m = manager()
    first = m.diff([bid(), ask()], 0)
    assert [type(a) for a in first] == [Place, Place]
    assert m.diff([bid(), ask()], 10) == []  # pending: not placed twice
    ack(m, first)
    assert m.diff([bid(), ask()], 20) == []  # live and unchanged: no churn


def test_price_change_is_a_modify_and_a_side_change_a_cancel():
    m = manager()
    ack(m, m.diff([bid()], 0))
    (modify,) = m.diff([bid(price=BID - 1)], 10)
    assert isinstance(modify, Modify) and modify.price == BID - 1
    ack(m, [modify])
    assert m.slot("b0").price == BID - 1 and m.slot("b0").state == LIVE
    (cancel,) = m.diff([QuoteLevel("SELL", BID + 5, SIZE, "b0")], 20)
    assert isinstance(cancel, Cancel)
    assert m.diff([QuoteLevel("SELL", BID + 5, SIZE, "b0")], 30) == []  # wait for the cancel
    ack(m, [cancel])
    assert [type(a) for a in m.diff([QuoteLevel("SELL", BID + 5, SIZE, "b0")], 40)] == [Place]


def test_tolerance_and_age():
    m = manager(price_tolerance=1, size_tolerance=1, max_age_ms=1000)
    ack(m, m.diff([bid()], 0), now=0)
    assert m.diff([bid(price=BID - 1, qty=SIZE + 1)], 500) == []
    (action,) = m.diff([bid()], 1500)
    assert isinstance(action, Cancel) and action.reason == "stale"


def test_a_slot_dropped_from_the_quote_is_cancelled():
    m = manager()
    ack(m, m.diff([bid(), ask()], 0))
    (cancel,) = m.diff([bid()], 10)
    assert isinstance(cancel, Cancel) and cancel.order.tag == "a0"


def test_post_only_reject_reprices_a_tick_away_until_the_quote_moves():
    m = manager(post_only_retries=2)
    (place,) = m.diff([ask(price=BID)], 0)
    m.on_reject(place.order.client_order_id, -5022, "Post Only order will be rejected.")
    (retry,) = m.diff([ask(price=BID)], 1)
    assert retry.order.price == BID + 1
    m.on_reject(retry.order.client_order_id, -5022, "again")
    (retry2,) = m.diff([ask(price=BID)], 2)
    assert retry2.order.price == BID + 2
    m.on_reject(retry2.order.client_order_id, -5022, "again")
    (capped,) = m.diff([ask(price=BID)], 3)
    assert capped.order.price == BID + 2  # at most post_only_retries ticks away
    m.on_reject(capped.order.client_order_id, -5022, "again")
    (fresh,) = m.diff([ask(price=BID + 5)], 4)
    assert fresh.order.price == BID + 5  # a new quoted price starts afresh
    assert m.counters.post_only_rejects == 4


def test_unknown_outcome_holds_the_slot_until_settled():
    m = manager()
    (place,) = m.diff([bid()], 0)
    cid = place.order.client_order_id
    m.on_unknown(cid)
    assert m.diff([bid()], 10) == []  # never a second order for the slot
    m.on_settled(cid, None, 20)  # the venue never got it
    (again,) = m.diff([bid()], 30)
    assert again.order.client_order_id != cid
    m.on_unknown(again.order.client_order_id)
    m.on_settled(again.order.client_order_id, {"orderId": 7, "status": "NEW"}, 40)
    assert m.slot("b0").state == LIVE and m.slot("b0").order_id == 7


def test_stream_update_settles_an_unknown_order_and_terminal_status_frees_the_slot():
    m = manager()
    (place,) = m.diff([bid()], 0)
    cid = place.order.client_order_id
    m.on_unknown(cid)
    m.on_update({"clientOrderId": cid, "orderId": 9, "status": "NEW", "executedQty": "0"}, 5)
    assert m.slot("b0").state == LIVE
    m.on_update({"clientOrderId": cid, "orderId": 9, "status": "FILLED",
                 "executedQty": "0.010"}, 6)
    assert m.slot("b0") is None


def amendment(order, price: int, qty: int, ts: int, status: str = "NEW") -> dict:
    """The user stream's `order` line for an ORDER_TRADE_UPDATE with execution type
    AMENDMENT (docs/streams.md)."""
    return {"type": "order", "clientOrderId": order.client_order_id, "orderId": 100,
            "price": SPEC.price_str(price), "qty": SPEC.qty_str(qty), "executedQty": "0",
            "status": status, "execType": "AMENDMENT", "ts": ts}


def test_an_amendment_on_the_stream_moves_the_order_to_the_venues_price_and_size():
    m = manager()
    ack(m, m.diff([bid()], 0))
    order = m.slot("b0")
    m.on_update(amendment(order, BID - 3, 2 * SIZE, 50), 50)
    assert (order.price, order.qty, order.state) == (BID - 3, 2 * SIZE, LIVE)
    assert m.diff([bid(price=BID - 3, qty=2 * SIZE)], 60) == []  # nothing to re-send


def unknown_modify():
    """A live bid whose modify to a tick lower got no answer: the manager, order, its id."""
    m = manager()
    ack(m, m.diff([bid()], 0))
    (modify,) = m.diff([bid(price=BID - 1)], 10)
    m.on_unknown(modify.order.client_order_id)
    return m, modify.order, modify.order.client_order_id


def test_an_unknown_modify_holds_the_order_until_the_venue_says_what_happened():
    m, order, cid = unknown_modify()
    assert order.state == UNKNOWN and m.unknown_orders() == [order]
    assert m.diff([bid(price=BID - 1)], 20) == []  # never re-sent blindly
    assert m.diff([bid(price=BID - 2)], 25) == []  # nor replaced by another modify
    # a fill says nothing about the modify: still unknown
    m.on_update({"clientOrderId": cid, "orderId": 100, "status": "PARTIALLY_FILLED",
                 "executedQty": "0.001", "execType": "TRADE", "ts": 30}, 30)
    assert order.state == UNKNOWN and order.executed == 1
    m.on_update(amendment(order, BID - 1, SIZE, 40, "PARTIALLY_FILLED"), 40)
    assert (order.state, order.price) == (LIVE, BID - 1)
    assert m.diff([bid(price=BID - 1, qty=SIZE - 1)], 50) == []


def test_an_unknown_modify_settled_by_query_takes_the_venues_price():
    m, order, cid = unknown_modify()
    found = {"orderId": 100, "status": "NEW", "price": SPEC.price_str(BID),
             "origQty": SPEC.qty_str(SIZE), "executedQty": "0"}
    m.on_settled(cid, found, 20)  # it never applied: the old price stands
    assert (order.state, order.price, order.want_price) == (LIVE, BID, None)
    (again,) = m.diff([bid(price=BID - 1)], 30)  # known not applied: now it may go again
    assert isinstance(again, Modify)
    m.on_unknown(cid)
    m.on_settled(cid, {**found, "price": SPEC.price_str(BID - 1)}, 40)
    assert (order.state, order.price) == (LIVE, BID - 1)
    m.on_unknown(cid)  # and a query that finds it gone frees the slot
    m.on_settled(cid, None, 50)
    assert m.slot("b0") is None


def test_a_stale_amendment_does_not_undo_a_later_modify():
    m = manager()
    (place,) = m.diff([bid()], 0)
    m.on_ack(place.order.client_order_id, {"orderId": 100, "status": "NEW",
                                           "updateTime": 100}, 100)
    (modify,) = m.diff([bid(price=BID - 1)], 110)
    m.on_ack(modify.order.client_order_id, {"orderId": 100, "status": "NEW",
                                            "updateTime": 120}, 120)
    (modify2,) = m.diff([bid(price=BID - 2)], 130)
    m.on_ack(modify2.order.client_order_id, {"orderId": 100, "status": "NEW",
                                             "updateTime": 140}, 140)
    m.on_update(amendment(modify.order, BID - 1, SIZE, 120), 150)  # the first one's, late
    assert m.slot("b0").price == BID - 2


def test_no_need_to_modify_means_the_order_is_already_there():
    m = manager()
    ack(m, m.diff([bid()], 0))
    (modify,) = m.diff([bid(price=BID - 1)], 10)
    m.on_reject(modify.order.client_order_id, -5027, "No need to modify the order.")
    assert (m.slot("b0").state, m.slot("b0").price) == (LIVE, BID - 1)
    assert m.diff([bid(price=BID - 1)], 20) == []  # no -5027 loop


def test_post_only_reject_is_retried_within_the_cycle_up_to_the_limit():
    m = manager(post_only_retries=2)
    (place,) = m.diff([ask(price=BID), bid(price=BID - 5)], 0)[:1]
    assert m.retry_post_only() == []  # nothing rejected yet
    m.on_reject(place.order.client_order_id, -5022, "Post Only order will be rejected.")
    (retry,) = m.retry_post_only()
    assert isinstance(retry, Place) and (retry.order.tag, retry.order.price) == ("a0", BID + 1)
    m.on_reject(retry.order.client_order_id, -5022, "again")
    (retry2,) = m.retry_post_only()
    assert retry2.order.price == BID + 2
    m.on_reject(retry2.order.client_order_id, -5022, "again")
    assert m.retry_post_only() == []  # postOnlyRetries spent in this cycle
    (next_cycle,) = [a for a in m.diff([ask(price=BID), bid(price=BID - 5)], 10)
                     if a.order.tag == "a0"]
    assert next_cycle.order.price == BID + 2
    m.on_reject(next_cycle.order.client_order_id, -2019, "Margin is insufficient.")
    assert m.retry_post_only() == []  # only post-only rejects are retried


def test_post_only_retry_with_the_limit_fallback_goes_out_as_a_plain_limit():
    m = manager(post_only_fallback="limit", post_only_retries=1)
    (place,) = m.diff([ask(price=BID)], 0)
    m.on_reject(place.order.client_order_id, -5022, "Post Only order will be rejected.")
    (retry,) = m.retry_post_only()
    assert (retry.order.price, retry.order.time_in_force) == (BID, "GTC")


def test_post_only_retry_skips_a_slot_the_quote_no_longer_wants():
    m = manager()
    (place,) = m.diff([ask(price=BID)], 0)
    m.diff([], 5)  # a newer quote without a0
    m.on_reject(place.order.client_order_id, -5022, "Post Only order will be rejected.")
    assert m.retry_post_only() == []


def test_order_the_venue_would_refuse_is_never_sent():
    m = manager()
    (reject,) = m.diff([bid(qty=1)], 0)  # 0.001 ETH at 3000 = 3 USDC < minNotional 5
    assert isinstance(reject, LocalReject) and reject.code == -4164
    assert m.orders == {} and m.counters.local_rejects == 1


def test_cancel_of_an_order_already_gone_frees_the_slot():
    m = manager()
    ack(m, m.diff([bid()], 0))
    (cancel,) = m.diff([], 10)
    m.on_cancel_reject(cancel.order.client_order_id, -2011)
    assert m.orders == {}


def test_a_fill_without_a_client_id_is_matched_by_the_venues_order_id():
    """A fill recovered from userTrades whose order the venue could not show: the order it
    filled is still found (by orderId), so it is not modified as if it rested."""
    from decimal import Decimal

    from mmkit.model import OwnFill

    m = manager()
    ack(m, m.diff([bid(), ask()], 0))  # orderIds 100 and 101
    m.on_fill(OwnFill("ETHUSDC", 5, 1, 100, "", "BUY", BID, SIZE, True, Decimal(0), "USDC",
                      Decimal(0)))
    assert [o.tag for o in m.orders.values()] == ["a0"]


def test_client_ids_are_short_unique_and_recognised():
    ids = ClientIds.for_run("mm", 1_795_593_672_899, salt=4242)
    seen = {ids.next() for _ in range(100_000)}
    assert len(seen) == 100_000
    assert max(map(len, seen)) <= 36
    assert all(ids.ours(cid) for cid in seen) and not ids.ours("web_abc")
    assert base36(0) == "0" and base36(35) == "z" and base36(36) == "10"


levels = st.builds(
    QuoteLevel,
    side=st.sampled_from(["BUY", "SELL"]),
    price=st.integers(BID - 20, BID + 20),
    qty=st.integers(SIZE, SIZE * 3),
    tag=st.sampled_from(["b0", "b1", "a0", "a1"]),
)
venue_says = st.sampled_from(["ack", "reject", "post_only", "unknown", "settle_none",
                              "settle_found", "cancel_ack", "cancel_gone", "fill", "none"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(levels, max_size=4), st.lists(venue_says, max_size=6)),
                max_size=25))
def test_never_two_orders_in_one_slot(script):
    m = manager(price_tolerance=1)
    now = 0
    for quote, replies in script:
        now += 100
        unique = list({level.tag: level for level in quote}.values())
        actions = m.diff(unique, now)
        for action, reply in zip(actions, replies + ["none"] * len(actions), strict=False):
            if isinstance(action, LocalReject):
                continue
            order = action.order
            cid = order.client_order_id
            if isinstance(action, Cancel):
                if reply == "cancel_gone":
                    m.on_cancel_reject(cid, -2011)
                elif reply != "none":
                    m.on_cancel_ack(cid, {"status": "CANCELED"})
                continue
            if reply == "ack":
                m.on_ack(cid, {"orderId": now, "status": "NEW"}, now)
            elif reply == "reject":
                m.on_reject(cid, -2019, "Margin is insufficient.")
            elif reply == "post_only":
                m.on_reject(cid, -5022, "Post Only order will be rejected.")
            elif reply == "unknown":
                m.on_unknown(cid)
            elif reply == "settle_none":
                m.on_unknown(cid)
                m.on_settled(cid, None, now)
            elif reply == "settle_found":
                m.on_unknown(cid)
                m.on_settled(cid, {"orderId": now, "status": "NEW"}, now)
        for retry in m.retry_post_only():  # the shell sends these within the cycle
            if isinstance(retry, Place):
                m.on_reject(retry.order.client_order_id, -5022, "again")
        tags = [o.tag for o in m.orders.values()]
        assert len(tags) == len(set(tags))
        for order in m.orders.values():
            assert order.qty >= 1 and order.price > 0
