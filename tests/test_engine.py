"""The matching engine: rules one by one, then invariants under random order flow."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmkit.model import DepthDiff, DepthSnapshot, MarketTrade, MarkPrice
from mmkit.sim.engine import Engine, EngineConfig, OrderRequest, OrderUpdate, Reject
from mmkit.sim.instruments import default_specs

SPECS = default_specs(["ETHUSDC"])
SPEC = SPECS["ETHUSDC"]
BID, ASK = SPEC.to_ticks("3000.00"), SPEC.to_ticks("3000.01")
S = "ETHUSDC"


def engine(queue_model: str = "risk_averse", balance: str = "100", depth: int = 1000) -> Engine:
    e = Engine(SPECS, EngineConfig(queue_model=queue_model,
                                   balances={"USDC": Decimal(balance)}))
    e.apply(DepthSnapshot(S, 1, 100, [(BID - i, depth) for i in range(20)],
                          [(ASK + i, depth) for i in range(20)]))
    return e


def limit(side: str, price: int, qty: int = 10, tif: str = "GTC", **kw) -> OrderRequest:
    return OrderRequest(S, side, "LIMIT", qty, price, tif, **kw)


def sell_trade(price: int, qty: int, ts: int = 10, trade_id: int = 1) -> MarketTrade:
    return MarketTrade(S, ts, trade_id, price, qty, buyer_is_maker=True)


def test_a_new_order_joins_behind_the_displayed_quantity():
    e = engine()
    order, _ = e.place(2, limit("BUY", BID))
    assert order.queue_ahead == 1000
    e.apply(sell_trade(BID, 995))
    assert order.executed_qty == 0 and order.queue_ahead == 5
    e.apply(sell_trade(BID, 8, trade_id=2))
    assert order.executed_qty == 3 and order.status == "PARTIALLY_FILLED"


def test_a_trade_through_our_price_fills_us_completely():
    e = engine()
    order, _ = e.place(2, limit("BUY", BID))
    e.apply(sell_trade(BID - 1, 1))
    assert order.status == "FILLED"
    fill = e.fills[-1]
    assert fill.maker and fill.price == BID and fill.commission == Decimal("0.006")


def test_queue_models_differ_on_cancellations():
    averse, prob = engine("risk_averse"), engine("prob_power")
    for e in (averse, prob):
        e.place(2, limit("BUY", BID))  # 1000 ahead of us
        e.apply(DepthDiff(S, 3, 3, 101, 101, 100, [(BID, 2000)], []))  # 1000 join behind
        e.apply(DepthDiff(S, 4, 4, 102, 102, 101, [(BID, 1500)], []))  # 500 cancel somewhere
    assert averse.open_orders()[0].queue_ahead == 1000  # always behind us
    assert prob.open_orders()[0].queue_ahead == 750  # as likely ahead as behind


def test_gtx_that_would_take_is_rejected_and_leaves_nothing():
    e = engine()
    with pytest.raises(Reject) as exc:
        e.place(2, limit("BUY", ASK, tif="GTX"))
    assert exc.value.code == -5022
    assert e.open_orders() == [] and not e.orders


def test_ioc_walks_levels_and_expires_the_rest():
    e = engine("risk_averse", "1000000")
    order, events = e.place(2, limit("BUY", ASK + 1, qty=2500, tif="IOC"))
    assert order.executed_qty == 2000 and order.status == "EXPIRED" and order.expire_reason == 2
    assert [f.price for f in e.fills] == [ASK, ASK + 1]
    assert e.depth(S, 1).asks[0] == (ASK + 2, 1000)


def test_fok_that_cannot_fill_is_rejected():
    e = engine("risk_averse", "1000000")
    with pytest.raises(Reject) as exc:
        e.place(2, limit("BUY", ASK, qty=1001, tif="FOK"))
    assert exc.value.code == -5021


def test_reduce_only_must_reduce():
    e = engine()
    with pytest.raises(Reject) as exc:
        e.place(2, limit("SELL", ASK + 5, reduce_only=True))
    assert exc.value.code == -2022
    e.place(3, limit("BUY", ASK, qty=10, tif="IOC"))
    order, _ = e.place(4, limit("SELL", BID, qty=30, tif="IOC", reduce_only=True))
    assert order.executed_qty == 10 and e.positions[S].amount == 0


def _expired_reduce_only(events) -> list[int]:
    return [x.order.order_id for x in events if isinstance(x, OrderUpdate)
            and x.execution_type == "EXPIRED" and x.order.status == "EXPIRED"
            and x.order.expire_reason == 4 and x.order.reduce_only]


def test_reduce_only_orders_expire_when_a_fill_closes_the_position():
    """Audit: long 40, a resting reduce-only ask for 40; a MARKET sell closes the position.
    The reduce-only order can no longer reduce: it expires (er=4) and leaves the book."""
    e = engine("risk_averse", "100000")
    e.place(1, limit("BUY", ASK, 40, "IOC"))
    ro, _ = e.place(2, limit("SELL", ASK + 5, 40, reduce_only=True))
    _, events = e.place(3, OrderRequest(S, "SELL", "MARKET", 40))
    assert e.positions[S].amount == 0
    assert ro.status == "EXPIRED" and ro.expire_reason == 4
    assert _expired_reduce_only(events) == [ro.order_id]
    assert e.open_orders() == [] and dict(e.depth(S, 10).asks)[ASK + 5] == 1000


def test_a_market_trade_that_closes_the_position_expires_the_other_reduce_only_orders():
    e = engine("risk_averse", "100000")
    e.place(1, limit("SELL", BID, 30, "IOC"))  # short 30
    first, _ = e.place(2, limit("BUY", BID, 30, reduce_only=True))  # behind 1000
    second, _ = e.place(3, limit("BUY", BID - 2, 30, reduce_only=True))
    events = e.apply(sell_trade(BID - 1, 1))  # through our bid: fills all 30 of `first`
    assert first.status == "FILLED" and e.positions[S].amount == 0
    assert second.status == "EXPIRED" and _expired_reduce_only(events) == [second.order_id]


def test_only_surplus_reduce_only_orders_expire_best_priced_first():
    """Long 40 with reduce-only asks of 30 (better price) and 30: both can reduce. After a
    fill leaves 20, the better-priced one covers the whole position, so the other expires."""
    e = engine("risk_averse", "100000")
    e.place(1, limit("BUY", ASK, 40, "IOC"))
    worse, _ = e.place(2, limit("SELL", ASK + 6, 30, reduce_only=True))
    better, _ = e.place(3, limit("SELL", ASK + 5, 30, reduce_only=True))
    assert worse.is_open and better.is_open
    _, events = e.place(4, limit("SELL", BID, 20, "IOC"))
    assert e.positions[S].amount == 20
    assert better.status == "NEW" and worse.status == "EXPIRED"
    assert _expired_reduce_only(events) == [worse.order_id]


def test_expire_maker_expires_our_maker_and_the_taker_goes_on():
    e = engine()
    e.apply(DepthDiff(S, 2, 2, 101, 101, 100, [], [(ASK, 0)]))  # nobody ahead of our ask
    maker, _ = e.place(2, limit("SELL", ASK))
    taker, events = e.place(3, limit("BUY", ASK + 1, tif="IOC", stp_mode="EXPIRE_MAKER"))
    assert maker.status == "EXPIRED_IN_MATCH" and maker.expire_reason == 1
    assert taker.executed_qty == 10 and e.fills[-1].order_id == taker.order_id
    assert e.fills[-1].price == ASK + 1  # the taker went on past our expired maker
    assert _chained(events)  # one delta for the expired maker and the level taken


def _chained(events) -> bool:
    """The book deltas among `events` follow each other on one id chain, in list order."""
    from itertools import pairwise

    from mmkit.sim.engine import BookDelta

    deltas = [x for x in events if isinstance(x, BookDelta)]
    return all(b.prev_id == a.last_id for a, b in pairwise(deltas))


def test_a_taker_fills_from_the_queue_ahead_of_our_order_without_self_trade_prevention():
    """Audit: our ask queued behind 1000 of the market's; an IOC bid of ours for less than
    that fills from the market and never reaches our ask, so STP does not fire."""
    e = engine()
    maker, _ = e.place(2, limit("SELL", ASK))  # behind the 1000 displayed at the ask
    taker, events = e.place(3, limit("BUY", ASK, tif="IOC"))
    assert taker.status == "FILLED" and [f.order_id for f in e.fills] == [taker.order_id]
    assert maker.status == "NEW" and maker.queue_ahead == 990
    assert e.depth(S, 1).asks[0] == (ASK, 1000)  # 990 of the market's + our 10
    assert _chained(events)


@pytest.mark.parametrize("mode, maker_status, taker_status, filled_from_us", [
    ("EXPIRE_MAKER", "EXPIRED_IN_MATCH", "EXPIRED", 0),
    ("EXPIRE_TAKER", "NEW", "EXPIRED_IN_MATCH", 0),
    ("EXPIRE_BOTH", "EXPIRED_IN_MATCH", "EXPIRED_IN_MATCH", 0),
    ("NONE", "PARTIALLY_FILLED", "FILLED", 5),
])
def test_self_trade_prevention_applies_when_the_taker_reaches_our_order(
        mode, maker_status, taker_status, filled_from_us):
    """The taker first takes the 1000 ahead of our ask; then it meets our order, and only
    then does the STP mode act (NONE: the two trade; nothing of ours trades out of turn)."""
    e = engine("risk_averse", "1000000")
    maker, _ = e.place(2, limit("SELL", ASK))
    taker, events = e.place(3, limit("BUY", ASK, 1005, "IOC", stp_mode=mode))
    assert (maker.status, taker.status) == (maker_status, taker_status)
    market_fills = [f for f in e.fills if f.order_id == taker.order_id and f.qty == 1000]
    assert len(market_fills) == 1 and market_fills[0].price == ASK
    assert maker.executed_qty == filled_from_us
    assert taker.executed_qty == 1000 + filled_from_us
    assert e.books[S].market.asks.get(ASK, 0) == 0
    if maker.is_open:
        assert maker.queue_ahead == 0
    assert _chained(events)


def test_modify_requeues_and_reports_amendment():
    e = engine()
    order, _ = e.place(2, limit("BUY", BID))
    e.apply(sell_trade(BID, 600))
    assert order.queue_ahead == 400
    _, events = e.modify(3, S, "BUY", 20, BID, order.order_id)
    assert isinstance(events[0], OrderUpdate) and events[0].execution_type == "AMENDMENT"
    assert order.queue_ahead == 1000 and order.orig_qty == 20


def test_insufficient_margin_is_refused():
    e = engine(balance="1")
    with pytest.raises(Reject) as exc:
        e.place(2, limit("BUY", BID, qty=10_000))
    assert exc.value.code == -2019


def test_countdown_cancels_everything_when_it_lapses():
    e = engine()
    e.place(2, limit("BUY", BID))
    e.set_countdown(2, S, 1000)
    assert e.advance(1001) == [] or e.open_orders()
    events = e.advance(1002)
    assert e.open_orders() == []
    assert any(isinstance(ev, OrderUpdate) and ev.execution_type == "EXPIRED" for ev in events)


def test_funding_is_paid_at_the_funding_time():
    e = engine()
    e.apply(MarkPrice(S, 2, Decimal("3000"), Decimal("3000"), Decimal("0.0001"), 5000))
    e.place(3, limit("BUY", ASK, qty=10, tif="IOC"))
    before = e.balances["USDC"].wallet
    e.advance(5000)
    assert e.balances["USDC"].wallet == before - Decimal("0.003")
    assert e.incomes[-1].income_type == "FUNDING_FEE"


def test_round_trip_realises_the_price_difference():
    e = engine("risk_averse", "1000")
    e.place(2, limit("BUY", ASK, qty=100, tif="IOC"))  # 0.1 ETH at 3000.01
    e.apply(DepthDiff(S, 3, 3, 101, 101, 100, [(ASK + 100, 50)], []))  # a bid at 3001.01
    e.place(4, limit("SELL", ASK + 100, qty=50, tif="IOC"))
    assert e.fills[-1].realized_pnl == Decimal("0.05")  # 1.00 × 0.05
    assert e.positions[S].amount == 50


# -- invariants under random flow ----------------------------------------------------------

actions = st.lists(
    st.one_of(
        st.tuples(st.just("place"), st.sampled_from(["BUY", "SELL"]), st.integers(-8, 8),
                  st.integers(1, 300), st.sampled_from(["GTC", "IOC", "GTX", "FOK"]),
                  st.booleans()),
        st.tuples(st.just("trade"), st.booleans(), st.integers(-6, 6), st.integers(1, 2000)),
        # a trade at the price of one of our resting orders: maker fills, whole and partial
        st.tuples(st.just("hit"), st.integers(0, 50), st.integers(1, 400)),
        st.tuples(st.just("depth"), st.booleans(), st.integers(-6, 6), st.integers(0, 2000)),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("modify"), st.integers(0, 50), st.integers(-8, 8), st.integers(1, 300)),
    ),
    min_size=10, max_size=80,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=actions, model=st.sampled_from(["risk_averse", "prob_power"]))
def test_invariants_hold_under_random_flow(actions, model):
    from mmkit.sim.engine import BookDelta

    e = engine(model, "100000", depth=50)  # thin, so that trades reach our queued orders
    ts, update_id, trade_id = 10, 100, 1
    mid = (BID + ASK) // 2
    last_id = e.books[S].last_id
    for action in actions:
        ts += 1
        kind = action[0]
        events = []
        try:
            if kind == "place":
                _, side, offset, qty, tif, reduce = action
                events = e.place(ts, limit(side, mid + offset, qty, tif, reduce_only=reduce))[1]
            elif kind == "trade":
                _, sell, offset, qty = action
                trade_id += 1
                events = e.apply(MarketTrade(S, ts, trade_id, mid + offset, qty,
                                             buyer_is_maker=sell))
            elif kind == "hit":
                opened = e.open_orders()
                if opened:
                    order = opened[action[1] % len(opened)]
                    trade_id += 1
                    events = e.apply(MarketTrade(S, ts, trade_id, order.price, action[2],
                                                 buyer_is_maker=order.side == "BUY"))
            elif kind == "depth":
                _, bid_side, offset, qty = action
                update_id = max(update_id, e.books[S].last_id) + 1
                price = mid + offset
                best_ask = e.books[S].market.best_ask
                best_bid = e.books[S].market.best_bid
                if bid_side and (best_ask is None or price < best_ask):
                    events = e.apply(DepthDiff(S, ts, ts, update_id, update_id, update_id - 1,
                                               [(price, qty)], []))
                elif not bid_side and (best_bid is None or price > best_bid):
                    events = e.apply(DepthDiff(S, ts, ts, update_id, update_id, update_id - 1,
                                               [], [(price, qty)]))
            elif kind == "cancel":
                opened = e.open_orders()
                if opened:
                    events = e.cancel(ts, S, opened[action[1] % len(opened)].order_id)[1]
            elif kind == "modify":
                opened = e.open_orders()
                if opened:
                    order = opened[action[1] % len(opened)]
                    events = e.modify(ts, S, order.side, action[3] + order.executed_qty,
                                      mid + action[2], order.order_id)[1]
        except Reject:
            pass
        _check_invariants(e)
        for delta in (x for x in events if isinstance(x, BookDelta)):
            assert delta.prev_id == last_id, "the depth chain broke (pu != previous u)"
            assert delta.first_id <= delta.last_id
            last_id = delta.last_id


def _check_invariants(e: Engine) -> None:
    snap = e.depth(S, 1000)
    if snap.bids and snap.asks:
        assert snap.bids[0][0] < snap.asks[0][0], "public book crossed"
    for order in e.orders.values():
        assert 0 <= order.executed_qty <= order.orig_qty
    signed = sum(f.qty if f.side == "BUY" else -f.qty for f in e.fills)
    assert e.positions[S].amount == signed
    realized = sum((f.realized_pnl for f in e.fills), Decimal(0))
    fees = sum((f.commission for f in e.fills), Decimal(0))
    funding = sum((i.income for i in e.incomes if i.income_type == "FUNDING_FEE"), Decimal(0))
    # exact but for Decimal's 28 significant digits: an averaged entry price makes realized
    # PnL with more digits than the wallet (1e5) can carry, and sums round in another order
    assert abs(e.balances["USDC"].wallet - (Decimal("100000") + realized - fees + funding)) \
        < Decimal("1e-12")
    book = e.books[S]
    for side, levels in book.orders.items():  # the margin check's running sum
        assert book.growing_ticks[side] == sum(o.price * (o.orig_qty - o.executed_qty)
                                               for q in levels.values() for o in q
                                               if not o.reduce_only)
    amount = e.positions[S].amount
    for order in e.open_orders():
        assert order.queue_ahead >= 0
        if order.reduce_only:  # it can still reduce: the position is on the other side
            assert (amount > 0 and order.side == "SELL") or (amount < 0 and order.side == "BUY")


def test_modified_reduce_only_order_expires_once_the_position_is_closed():
    """Found by the invariants test: a reduce-only bid modified to cross the ask closed the
    short, then rested its remainder at the crossing price (a crossed public book)."""
    e = engine("risk_averse", "100000")
    e.place(1, limit("SELL", BID, 1, "IOC"))  # short 1
    order, _ = e.place(2, limit("BUY", BID - 1, 1, "GTC", reduce_only=True))
    order, _ = e.modify(3, S, "BUY", 2, ASK, order.order_id)
    assert order.status == "EXPIRED" and order.executed_qty == 1
    assert e.positions[S].amount == 0
    snap = e.depth(S, 5)
    assert snap.bids[0][0] < snap.asks[0][0]


def test_a_diff_crossing_our_order_publishes_one_uncrossed_delta():
    """The feed puts an ask below our resting bid: we fill as maker, and the public book
    goes out as one delta that already holds the match (never crossed in between)."""
    from mmkit.book import OrderBook
    from mmkit.sim.engine import BookDelta

    e = engine()
    order, _ = e.place(2, limit("BUY", BID, qty=10))
    snapshot = e.depth("ETHUSDC", 1000)
    book = OrderBook()
    book.load(snapshot.bids, snapshot.asks)
    events = e.apply(DepthDiff("ETHUSDC", 3, 3, 101, 101, 100, [], [(BID, 6)]))
    deltas = [x for x in events if isinstance(x, BookDelta)]
    assert len(deltas) == 1 and order.executed_qty == 6
    book.apply(deltas[0].bids, deltas[0].asks)
    assert not book.crossed
    assert book.best_bid == BID and book.best_ask == ASK
