"""The risk guards: one test per guard making it act, the mode state machine, and properties
(position limits, emergency orders, reduce-only, PnL conservation)."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.config import InventoryConfig, RiskConfig
from mmkit.model import BUY, SELL, BookTop, OwnFill, Quote, QuoteLevel
from mmkit.risk import (
    COOLDOWN,
    DAY_MS,
    HALTED,
    NORMAL,
    REDUCE_ONLY,
    Ledger,
    RiskEngine,
    build_guards,
    reducing,
)
from mmkit.sim.instruments import default_specs

SPEC = default_specs(["ETHUSDC"])["ETHUSDC"]
T0 = (1_700_000_000_000 // DAY_MS) * DAY_MS + 3_600_000  # 01:00 UTC
PX = 200_000  # 2000.00 in ticks
MAX = 50  # steps: the default maxPosition 0.05


def engine(inventory: dict | None = None, **risk) -> RiskEngine:
    return build_guards(SPEC, replace(RiskConfig(), **risk),
                        replace(InventoryConfig(), **(inventory or {})))


def book(ts: int, bid: int = PX, ask: int = PX + 10, *, bids=None, asks=None,
         recv: int | None = None, stale: bool = False) -> BookTop:
    return BookTop("ETHUSDC", ts, ts if recv is None else recv, 1, stale,
                   bids if bids is not None else [(bid, 1000)],
                   asks if asks is not None else [(ask, 1000)])


def fill(side: str, price: int, qty: int, ts: int, fee: str = "0",
         asset: str = "USDC") -> OwnFill:
    return OwnFill("ETHUSDC", ts, ts, 1, "mm-x", side, price, qty, True, Decimal(fee), asset,
                   Decimal(0))


def quote(ts: int, *levels: QuoteLevel) -> Quote:
    return Quote("ETHUSDC", ts, list(levels))


def bid(price: int, qty: int, tag: str = "b0") -> QuoteLevel:
    return QuoteLevel(BUY, price, qty, tag)


def ask(price: int, qty: int, tag: str = "a0") -> QuoteLevel:
    return QuoteLevel(SELL, price, qty, tag)


def acts(events, guard: str) -> list[str]:
    return [e.action for e in events if e.guard == guard]


def ready(e: RiskEngine, ts: int = T0, position: int = 0) -> RiskEngine:
    """An engine with a fresh book at 2000.00/2000.10 and `position` steps adopted at its mid."""
    e.on_position(position, ts)
    e.on_book(book(ts))
    return e


# --- one test per guard --------------------------------------------------------------------------

def test_max_position_shrinks_then_drops_levels():
    e = ready(engine(), position=30)
    out, events = e.apply(quote(T0, bid(PX - 100, 15, "b0"), bid(PX - 200, 15, "b1"),
                                ask(PX + 100, 10)), T0)
    assert [(lv.tag, lv.qty) for lv in out.levels] == [("b0", 15), ("b1", 5), ("a0", 10)]
    [event] = [e for e in events if e.guard == "max_position"]
    assert event.action == "shrink"
    assert event.detail == "b1 0.015 -> 0.005: position 0.030 of max 0.050"


def test_max_position_drops_a_level_too_small_to_trade():
    e = ready(engine(), position=-48)
    out, events = e.apply(quote(T0, ask(PX + 100, 10)), T0)
    # reduce-only mode drops the ask before max_position sees it; in normal mode it is
    # max_position that acts: room 2 steps = 4 USDC < minNotional 5
    assert out.levels == [] and acts(events, "reduce_only")
    e = ready(engine(inventory={"reduce_only_threshold": Decimal(1)}), position=-48)
    out, events = e.apply(quote(T0, ask(PX + 100, 10)), T0)
    assert out.levels == [] and acts(events, "max_position") == ["drop"]


def test_order_size_caps_qty_and_notional():
    e = ready(engine())
    out, events = e.apply(quote(T0, bid(PX - 100, 30)), T0)
    assert out.levels[0].qty == 20 and acts(events, "order_size") == ["shrink"]
    e = ready(engine(max_order_notional=Decimal("30")))
    out, events = e.apply(quote(T0, bid(PX - 100, 20)), T0)  # 30 / 1999 → 0.015
    assert out.levels[0].qty == 15 and acts(events, "order_size") == ["shrink"]


def test_daily_notional_caps_growth_and_resets_at_midnight():
    e = ready(engine())
    for i, side in enumerate([BUY, SELL] * 4):  # 8 × 0.030 × 2000 = 480 USDC of 500
        e.on_fill(fill(side, PX, 30, T0 + i))
    assert e.daily_notional == Decimal("480.00000") and e.position == 0
    out, events = e.apply(quote(T0 + 10, bid(PX - 100, 20), ask(PX + 100, 20)), T0 + 10)
    assert [lv.qty for lv in out.levels] == [10, 9]  # 20 USDC left: 0.010 @ 1999, 0.009 @ 2001
    assert acts(events, "daily_notional") == ["shrink", "shrink"]
    e.on_fill(fill(BUY, PX, 10, T0 + 20))
    out, events = e.apply(quote(T0 + 30, bid(PX - 100, 20), ask(PX + 100, 20)), T0 + 30)
    assert [(lv.side, lv.qty) for lv in out.levels] == [(SELL, 10)]  # only the reducing part
    assert "drop" in acts(events, "daily_notional")
    midnight = (T0 // DAY_MS + 1) * DAY_MS
    e.on_book(book(midnight + 5))
    assert e.daily_notional == 0
    out, _ = e.apply(quote(midnight + 5, bid(PX - 100, 20), ask(PX + 100, 20)), midnight + 5)
    assert [lv.qty for lv in out.levels] == [20, 20]


def test_order_rate_pulls_quotes_until_the_window_frees():
    e = ready(engine(max_orders_per_window=40))
    e.on_order_sent(T0, 40)
    out, events = e.apply(quote(T0 + 100, bid(PX - 100, 10)), T0 + 100)
    assert out.levels == [] and out.paused == "risk: order_rate"
    assert acts(events, "order_rate") == ["drop"]
    later = T0 + 10_001
    e.on_book(book(later))
    out, events = e.apply(quote(later, bid(PX - 100, 10)), later)
    assert len(out.levels) == 1 and not acts(events, "order_rate")


def test_vwap_of_our_fills_blocks_chasing():
    e = ready(engine())
    e.on_fill(fill(BUY, PX, 10, T0 + 1))  # fill VWAP 2000.00
    out, events = e.apply(quote(T0 + 2, bid(PX + 1100, 10), bid(PX + 900, 10, "b1"),
                                ask(PX + 1200, 10)), T0 + 2)
    # 2011.00 is 55 bps above the fill VWAP: dropped; 2009.00 (45 bps) passes; the ask
    # reduces the long, so it passes whatever its price
    assert [lv.tag for lv in out.levels] == ["b1", "a0"]
    [event] = [e for e in events if e.guard == "vwap"]
    assert event.action == "drop" and "fill VWAP 2000.0000" in event.detail


def test_vwap_of_the_market_when_we_have_no_fills():
    e = ready(engine())
    out, events = e.apply(quote(T0, ask(PX - 1100, 10), ask(PX - 900, 10, "a1")), T0)
    assert [lv.tag for lv in out.levels] == ["a1"]
    assert "market VWAP 2000.0500" in [e for e in events if e.guard == "vwap"][0].detail


def test_kill_switch_halts_for_the_day_then_resumes():
    e = ready(engine(stop_loss_pct=Decimal(20)))
    e.on_fill(fill(BUY, PX, 40, T0 + 1, fee="0.04"))
    e.on_fill(fill(SELL, 180_000, 20, T0 + 2, fee="0.036"))  # realized -4.00
    events = e.on_book(book(T0 + 5000, 170_000, 170_000))  # unrealized 0.020 × -300 = -6.00
    assert e.daily_pnl == Decimal("-10.076") and e.mode == HALTED
    assert acts(events, "kill_switch") == ["halt"]
    [order] = e.emergency_orders(book(T0 + 5000, 170_000, 170_000), T0 + 5000)
    assert (order.side, order.qty, order.reduce_only, order.time_in_force) == (
        SELL, 20, True, "IOC")
    e.on_fill(fill(SELL, 170_000, 20, T0 + 5001))
    assert e.mode == HALTED  # flat, but a kill switch lasts the day
    out, _ = e.apply(quote(T0 + 90_000, bid(PX, 10)), T0 + 90_000)
    assert out.levels == [] and out.paused == "risk halted: kill_switch"
    midnight = (T0 // DAY_MS + 1) * DAY_MS
    events = e.on_book(book(midnight, 170_000, 170_010))
    assert e.mode == COOLDOWN and e.daily_pnl == 0
    events = e.on_book(book(midnight + 60_000, 170_000, 170_010))
    assert e.mode == NORMAL and acts(events, "cooldown") == ["resume"]


def earlier(side: str, price: int, qty: int, ts: int, *, trade_id: int | None = None,
            pnl: str = "0", fee: str = "0", symbol: str = "ETHUSDC") -> OwnFill:
    """A fill made before this process started (a GET /fapi/v1/userTrades row)."""
    return OwnFill(symbol, ts, trade_id or ts, 1, "mm-old", side, price, qty, True,
                   Decimal(fee), "USDC", Decimal(pnl))


def test_seed_day_counts_todays_earlier_fills_against_the_daily_notional():
    midnight = (T0 // DAY_MS) * DAY_MS
    e = ready(engine())
    events = e.seed_day([
        earlier(BUY, PX, 30, midnight + 1),  # 60 USDC
        earlier(SELL, PX, 30, midnight + 2),  # 60 USDC
        earlier(BUY, PX, 30, midnight + 2, trade_id=midnight + 1),  # the same trade again
        earlier(BUY, PX, 50, midnight - 1),  # yesterday's
        earlier(BUY, PX, 50, midnight + 3, symbol="BTCUSDC"),  # another symbol's
    ] + [earlier(side, PX, 30, T0 - 100 + i) for i, side in enumerate([BUY, SELL] * 3)],
        T0)
    assert events == [] and e.daily_notional == Decimal("480.00000")  # 8 × 60 of 500
    assert e.position == 0  # the position is the venue's (on_position), not the fills'
    out, events = e.apply(quote(T0 + 10, bid(PX - 100, 20), ask(PX + 100, 20)), T0 + 10)
    assert [lv.qty for lv in out.levels] == [10, 9]  # 20 USDC left, as if we had seen them
    assert acts(events, "daily_notional") == ["shrink", "shrink"]
    e.on_fill(fill(BUY, PX, 30, midnight + 1))  # a seeded trade arriving again counts once
    assert e.daily_notional == Decimal("480.00000")
    next_day = midnight + DAY_MS
    e.on_book(book(next_day))
    assert e.daily_notional == 0


def test_seed_day_keeps_the_kill_switch_across_a_restart():
    e = ready(engine(stop_loss_pct=Decimal(20)))
    events = e.seed_day([earlier(BUY, PX, 40, T0 - 60_000, pnl="0", fee="0.04"),
                         earlier(SELL, 195_000, 40, T0 - 50_000, pnl="-2.00", fee="0.04"),
                         earlier(BUY, PX, 40, T0 - 40_000, pnl="0", fee="0.04"),
                         earlier(SELL, 180_000, 40, T0 - 30_000, pnl="-8.00", fee="0.04")],
                        T0)
    assert e.daily_pnl == Decimal("-10.16") and e.mode == HALTED
    assert acts(events, "kill_switch") == ["halt"]  # stopped today, stopped after a restart
    out, _ = e.apply(quote(T0 + 1, bid(PX - 100, 10)), T0 + 1)
    assert out.levels == [] and out.paused == "risk halted: kill_switch"

    fresh = ready(engine(stop_loss_pct=Decimal(20)))
    fresh.seed_day([earlier(SELL, 195_000, 40, T0 - 50_000, pnl="-2.00", fee="0.04")], T0)
    assert fresh.daily_pnl == Decimal("-2.04") and fresh.mode == NORMAL
    fresh.on_fill(fill(BUY, PX, 10, T0 + 1, fee="0.01"))
    fresh.on_fill(fill(SELL, PX - 100, 10, T0 + 2, fee="0.01"))  # realized -0.01 here
    assert fresh.daily_pnl == Decimal("-2.07")  # before and after the restart, added up


def test_data_latency_cancels_all_on_stale_or_old_books():
    e = engine()
    out, events = e.apply(quote(T0, bid(PX - 100, 10)), T0)
    assert out.levels == [] and acts(events, "data_latency") == ["cancel_all"]
    assert "no book yet" in events[0].detail
    e.on_book(book(T0, stale=True))
    out, events = e.apply(quote(T0, bid(PX - 100, 10)), T0)
    assert out.levels == [] and "stale" in events[0].detail
    e.on_book(book(T0))
    out, events = e.apply(quote(T0 + 3001, bid(PX - 100, 10)), T0 + 3001)
    assert out.levels == [] and "received 3001 ms ago" in events[0].detail
    e.on_book(book(T0, recv=T0 + 4000))
    out, events = e.apply(quote(T0 + 4000, bid(PX - 100, 10)), T0 + 4000)
    assert out.levels == [] and "arrived 4000 ms after" in events[0].detail
    e.on_book(book(T0 + 5000))
    out, events = e.apply(quote(T0 + 5000, bid(PX - 100, 10)), T0 + 5000)
    assert len(out.levels) == 1 and events == []


def test_repeated_acts_are_reported_once():
    e = ready(engine())
    q = quote(T0, bid(PX - 100, 30))
    assert acts(e.apply(q, T0)[1], "order_size") == ["shrink"]
    assert e.apply(q, T0 + 1)[1] == []


def test_reduce_only_mode_enters_and_leaves_with_the_position():
    e = ready(engine())
    events = e.on_fill(fill(BUY, PX, 40, T0 + 1))
    assert e.mode == REDUCE_ONLY
    [event] = events
    assert (event.guard, event.action) == ("reduce_only", "reduce_only")
    assert "reduceOnly=true" in event.detail and "cancels the resting orders first, then " \
        "places" in event.detail
    out, events = e.apply(quote(T0 + 2, bid(PX - 100, 10), ask(PX + 100, 20),
                                ask(PX + 200, 30, "a1")), T0 + 2)
    assert [(lv.tag, lv.qty, lv.reduce_only) for lv in out.levels] == [
        ("a0", 20, True), ("a1", 20, True)]
    assert "drop" in acts(events, "reduce_only") and "shrink" in acts(events, "reduce_only")
    events = e.on_fill(fill(SELL, PX + 100, 10, T0 + 3))
    assert e.mode == NORMAL and acts(events, "reduce_only") == ["resume"]


def test_stop_loss_halt_emergency_reduce_cooldown_resume():
    e = ready(engine(), position=10)  # long 0.010 at the mid 2000.05
    events = e.on_book(book(T0 + 5000, 197_900, 197_910))  # 1.05% down
    assert e.mode == HALTED and acts(events, "stop_loss") == ["halt"]
    assert "cancel all" in events[0].detail
    out, _ = e.apply(quote(T0 + 5000, bid(197_000, 10)), T0 + 5000)
    assert out.levels == [] and out.paused == "risk halted: stop_loss"
    [order] = e.emergency_orders(book(T0 + 5000, 197_900, 197_910), T0 + 5000)
    assert order == QuoteLevel(SELL, 197_900, 10, "em", "IOC", True)
    assert e.emergency_orders(book(T0 + 5500, 197_900, 197_910), T0 + 5500) == []  # retry
    events = e.on_fill(fill(SELL, 197_900, 10, T0 + 5001))
    assert e.mode == COOLDOWN and acts(events, "cooldown") == ["halt"]
    out, _ = e.apply(quote(T0 + 6000, bid(197_000, 10)), T0 + 6000)
    assert out.levels == [] and out.paused == "risk cooldown: stop_loss"
    e.on_book(book(T0 + 65_001, 197_900, 197_910))
    assert e.mode == NORMAL
    out, _ = e.apply(quote(T0 + 65_001, bid(197_800, 10)), T0 + 65_001)
    assert len(out.levels) == 1


def test_shock_halts_and_a_flat_book_goes_straight_to_cooldown():
    e = ready(engine())
    events = e.on_book(book(T0 + 500, PX + 400, PX + 410))  # +20 bps in 0.5 s
    assert [(ev.guard, ev.action) for ev in events] == [("shock", "halt"), ("cooldown", "halt")]
    assert e.mode == COOLDOWN
    e.on_book(book(T0 + 2000, PX + 400, PX + 410))
    e.on_book(book(T0 + 60_600, PX + 400, PX + 410))
    assert e.mode == NORMAL


def test_emergency_walks_the_book_within_the_slippage_bound():
    e = ready(engine(), position=40)
    e.halt("test", T0)
    deep = book(T0 + 1, bids=[(PX, 5), (PX - 500, 5), (PX - 1500, 100)], asks=[(PX + 10, 5)])
    # mid 2000.05, bound 0.5%: 1990.05 → 199005 ticks. Visible within it: 10 of 40, so the
    # whole position goes as an IOC at the bound (what rests up to it, and never worse)
    [order] = e.emergency_orders(deep, T0 + 1)
    bound = math.ceil(Fraction(2 * PX + 10, 2) * (1 - Fraction(5, 1000)))
    assert (order.price, order.qty) == (bound, 40) and order.price > PX - 1500
    enough = book(T0 + 1, bids=[(PX, 30), (PX - 10, 30)], asks=[(PX + 10, 5)])
    e2 = ready(engine(), position=40)
    e2.halt("test", T0)
    [walk] = e2.emergency_orders(enough, T0 + 1)
    assert (walk.price, walk.qty) == (PX - 10, 40)  # visible depth suffices: its worst level
    assert e.emergency_orders(deep, T0 + 2) == []
    assert len(e.emergency_orders(deep, T0 + 1001)) == 1
    assert e.emergency_orders(replace(deep, stale=True), T0 + 3000) == []


def test_profitable_close_holds_the_reducing_order_at_the_touch():
    e = ready(engine(), position=40)  # entry 2000.05
    e.on_book(book(T0 + 2000, 200_100, 200_150))
    out, events = e.apply(quote(T0 + 2000, ask(200_400, 20)), T0 + 2000)
    assert out.levels[0].price == 200_150 and acts(events, "profitable_close") == ["reduce_only"]
    e.on_book(book(T0 + 4000, 200_110, 200_160))  # the touch moved 10 ticks: held
    out, events = e.apply(quote(T0 + 4000, ask(200_400, 20)), T0 + 4000)
    assert out.levels[0].price == 200_150 and events == []
    e.on_book(book(T0 + 6000, 200_130, 200_180))  # 30 ticks: repriced
    out, events = e.apply(quote(T0 + 6000, ask(200_400, 20)), T0 + 6000)
    assert out.levels[0].price == 200_180 and acts(events, "profitable_close") == ["reduce_only"]
    e.on_book(book(T0 + 8000, 199_900, 199_950))  # the touch is below the entry: no priority
    out, events = e.apply(quote(T0 + 8000, ask(200_400, 20)), T0 + 8000)
    assert out.levels[0].price == 200_400 and not acts(events, "profitable_close")


def test_max_open_orders_keeps_the_nearest():
    e = ready(engine())
    levels = [bid(PX - 100 * i, 5, f"b{i}") for i in range(3)] + \
        [ask(PX + 10 + 100 * i, 5, f"a{i}") for i in range(3)]
    out, events = e.apply(quote(T0, *levels), T0)
    assert sorted(lv.tag for lv in out.levels) == ["a0", "a1", "b0", "b1"]
    assert acts(events, "max_open_orders") == ["drop", "drop"]


def test_venue_position_wins_and_is_valued_at_the_mid():
    e = engine()
    e.on_position(20, T0)
    assert e.position == 20 and e.avg_entry is None
    e.on_book(book(T0))
    assert e.avg_entry == Decimal("2000.05") and e.unrealized_pnl == 0


# --- PnL ------------------------------------------------------------------------------------------

def test_pnl_on_a_flip_from_long_to_short_with_a_partial_fill():
    e = ready(engine(stop_loss_pct=Decimal(5)))
    e.on_fill(fill(BUY, 200_000, 10, T0 + 1, fee="0.008"))   # 0.010 @ 2000.00
    e.on_fill(fill(BUY, 200_100, 10, T0 + 2, fee="0.008"))   # 0.010 @ 2001.00 → avg 2000.50
    assert e.avg_entry == Decimal("2000.50")
    # a 0.030 sell fills 0.025 @ 2002.00: closes 0.020 (+0.030), opens short 0.005 @ 2002.00
    e.on_fill(fill(SELL, 200_200, 25, T0 + 3, fee="0.02002"))
    assert e.position == -5 and e.avg_entry == Decimal("2002.00")
    assert e.realized_pnl == Decimal("0.03")
    # the rest of the order is cancelled; a buy of 0.005 @ 1999.00 closes the short: +0.015
    e.on_fill(fill(BUY, 199_900, 5, T0 + 4, fee="0.003998"))
    assert e.position == 0 and e.avg_entry is None
    assert e.realized_pnl == Decimal("0.045")
    assert e.fees == Decimal("0.040018")
    assert e.realized_pnl - e.fees == Decimal("0.004982")
    e.on_fill(fill(BUY, 199_900, 1, T0 + 5, fee="0.0001", asset="BNB"))
    assert e.fees == Decimal("0.040018") and e.ledger.other_fees == {"BNB": Decimal("0.0001")}


fills = st.lists(st.tuples(st.sampled_from([BUY, SELL]), st.integers(190_000, 210_000),
                           st.integers(1, 60)), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(fills, st.integers(190_000, 210_000))
def test_pnl_conserves_cash(trades, mark):
    """Average cost or not, realized + unrealized at a mark equals the cash flow plus the
    position valued at that mark."""
    ledger = Ledger(Fraction(SPEC.tick_size) * Fraction(SPEC.step_size))
    cash = Fraction(0)
    for side, price, qty in trades:
        ledger.fill(side, price, qty)
        cash += (-1 if side == BUY else 1) * price * qty * ledger.unit
    value = ledger.position * Fraction(mark) * ledger.unit
    assert ledger.realized + ledger.unrealized(Fraction(mark)) == cash + value


# --- properties -----------------------------------------------------------------------------------

levels_st = st.lists(
    st.builds(QuoteLevel, st.sampled_from([BUY, SELL]), st.integers(PX - 3000, PX + 3000),
              st.integers(1, 60), st.sampled_from(["b0", "b1", "a0", "a1", "bS", "aS"])),
    max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.integers(-80, 80), levels_st)
def test_position_plus_resting_never_exceeds_max(position, levels):
    e = ready(engine(max_open_orders=10), position=position)
    out, _ = e.apply(quote(T0, *levels), T0)
    buys = sum(lv.qty for lv in out.levels if lv.side == BUY)
    sells = sum(lv.qty for lv in out.levels if lv.side == SELL)
    assert position + buys <= MAX or buys == 0
    assert -position + sells <= MAX or sells == 0
    assert position + buys <= max(MAX, position) and -position + sells <= max(MAX, -position)


@settings(max_examples=200, deadline=None)
@given(st.integers(-80, 80).filter(bool), levels_st)
def test_reduce_only_mode_never_increases(position, levels):
    e = ready(engine(max_open_orders=10), position=position)
    out, _ = e.apply(quote(T0, *levels), T0)
    if abs(position) >= 40:
        assert e.mode == REDUCE_ONLY
        assert all(reducing(lv, position) and lv.reduce_only for lv in out.levels)
        assert sum(lv.qty for lv in out.levels) <= abs(position)


depth_st = st.lists(st.tuples(st.integers(1, 400), st.integers(1, 30)), min_size=1, max_size=10)


@settings(max_examples=200, deadline=None)
@given(st.integers(-80, 80).filter(bool), depth_st, depth_st,
       st.sampled_from([Decimal("0"), Decimal("0.05"), Decimal("0.5"), Decimal("2")]))
def test_emergency_orders_are_reduce_only_ioc_and_bounded(position, bid_gaps, ask_gaps, slip):
    e = ready(engine(inventory={"reduce_only_max_slippage_pct": slip}), position=position)
    e.halt("test", T0)
    bids, price = [], PX
    for gap, qty in bid_gaps:
        price -= gap
        bids.append((price, qty))
    asks, price = [], PX
    for gap, qty in ask_gaps:
        price += gap
        asks.append((price, qty))
    top = book(T0 + 1, bids=bids, asks=asks)
    mid = Fraction(bids[0][0] + asks[0][0], 2)
    orders = e.emergency_orders(top, T0 + 1)
    for order in orders:
        assert order.reduce_only and order.time_in_force == "IOC"
        assert isinstance(order.price, int) and isinstance(order.qty, int) and order.qty > 0
        assert reducing(order, position) and order.qty <= abs(position)
        side_depth = bids if order.side == SELL else asks
        if order.side == SELL:
            assert order.price >= mid * (1 - Fraction(slip) / 100)
            visible = sum(q for p, q in side_depth if p >= order.price)
        else:
            assert order.price <= mid * (1 + Fraction(slip) / 100)
            visible = sum(q for p, q in side_depth if p <= order.price)
        # within the visible depth, or, when that is not enough, the whole position as an
        # IOC at the slippage bound itself (it takes what rests there and no worse)
        assert order.qty <= visible or order.qty == abs(position)


@pytest.mark.parametrize("mode", [NORMAL, REDUCE_ONLY])
def test_apply_keeps_the_quote_identity(mode):
    e = ready(engine(), position=0 if mode == NORMAL else 45)
    q = Quote("ETHUSDC", T0, [ask(PX + 100, 10)], {"fair": 1.0})
    out, _ = e.apply(q, T0)
    assert e.mode == mode and (out.symbol, out.ts, out.reasons) == ("ETHUSDC", T0, {"fair": 1.0})
