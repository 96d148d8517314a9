"""The strategy core: ladder invariants as properties over random books, inventories and
parameters, then scenarios (drift, volatility, shock, skew, models, static orders, heartbeat,
stale book, take-profit, signals)."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmkit.config import InventoryConfig, StrategyConfig, load_config
from mmkit.errors import ConfigError
from mmkit.model import BUY, SELL, BookTop, MarketTrade, MarkPrice, OwnFill
from mmkit.sim.instruments import default_specs
from mmkit.strategy import Strategy, make_strategy, models
from mmkit.strategy.models import ModelInput

SPEC = default_specs(["ETHUSDC"])["ETHUSDC"]
MID = 300_000  # 3000.00 USDC in ticks


def config(**changes) -> StrategyConfig:
    values = {k: (Decimal(str(v)) if isinstance(getattr(StrategyConfig(), k), Decimal) else v)
              for k, v in changes.items()}
    return replace(StrategyConfig(), **values)


def strategy(**changes) -> Strategy:
    return make_strategy(SPEC, config(**changes))


def book(ts: int, bid: int = MID, ask: int | None = None, bid_qty: int = 1000,
         ask_qty: int = 1000, stale: bool = False, depth: int = 3) -> BookTop:
    ask = bid + 1 if ask is None else ask
    return BookTop("ETHUSDC", ts, ts, ts, stale,
                   [(bid - i, bid_qty) for i in range(depth)],
                   [(ask + i, ask_qty) for i in range(depth)])


def fill(trade_id: int, side: str, price: int, qty: int, ts: int = 0) -> OwnFill:
    return OwnFill("ETHUSDC", ts, trade_id, trade_id, f"mm-{trade_id}", side, price, qty, True,
                   Decimal(0), "USDC", Decimal(0))


def by_tag(quote) -> dict:
    return {level.tag: level for level in quote.levels}


def run(strat: Strategy, books) -> list:
    return [q for q in (strat.on_book(b) for b in books) if q is not None]


# --- invariants ------------------------------------------------------------------------------------

def check_ladder(strat: Strategy, quote, top: BookTop) -> None:
    levels = quote.levels
    assert len({lv.tag for lv in levels}) == len(levels)
    bids = [lv for lv in levels if lv.side == BUY]
    asks = [lv for lv in levels if lv.side == SELL]
    for lv in levels:
        assert isinstance(lv.price, int) and isinstance(lv.qty, int)
        assert lv.price >= 1 and lv.qty >= 1
        assert SPEC.qty_str(lv.qty) and SPEC.to_steps(SPEC.qty_str(lv.qty)) == lv.qty
        assert lv.qty * SPEC.step_size >= SPEC.min_qty
        assert SPEC.notional(lv.price, lv.qty) >= SPEC.min_notional
        assert SPEC.check_order(lv.side, "LIMIT", SPEC.qty_str(lv.qty),
                                SPEC.price_str(lv.price)) is None
        assert lv.time_in_force == "GTX"
        assert lv.reduce_only == (lv.tag == "tp")
    if bids and asks:
        assert max(b.price for b in bids) < min(a.price for a in asks)
    assert all(b.price < top.best_ask for b in bids)
    assert all(a.price > top.best_bid for a in asks)
    # the side that grows the position is never bigger than the other (beyond the minimum)
    tags = by_tag(quote)
    pos = strat.position
    grow, other = ("b0", "a0") if pos > 0 else ("a0", "b0")
    if pos and grow in tags and other in tags:
        g = tags[grow]
        assert g.qty <= tags[other].qty or g.qty == strat.min_steps(g.price)
    # resting orders on the growing side never take the position past maxInventory
    room_bid = strat.max_steps - pos
    room_ask = strat.max_steps + pos
    assert sum(b.qty for b in bids if not b.reduce_only) <= max(room_bid, 0)
    assert sum(a.qty for a in asks if not a.reduce_only) <= max(room_ask, 0)


params = st.fixed_dictionaries({
    "model": st.sampled_from(["fixed", "vol", "as", "glft"]),
    "base_size": st.sampled_from(["0.001", "0.002", "0.005", "0.01", "0.02"]),
    "max_inventory": st.sampled_from(["0.02", "0.05", "0.1"]),
    "spread_ticks": st.integers(0, 40),
    "spread": st.sampled_from(["0.1", "1", "5", "20"]),
    "levels": st.integers(1, 4),
    "level_spacing_ticks": st.integers(1, 30),
    "improve_ticks": st.integers(0, 3),
    "static_fraction": st.sampled_from(["0", "0.2", "0.5", "1"]),
    "static_ticks": st.integers(0, 50),
    "take_profit_ticks": st.integers(0, 40),
    "skew": st.sampled_from(["0", "1", "5"]),
    "size_skew": st.sampled_from(["0", "1", "3"]),
    "gamma": st.sampled_from([1e-5, 5e-4, 0.1, 5.0]),
    "kappa": st.sampled_from([0.001, 0.02, 1.0]),
    "imbalance_ticks": st.sampled_from([0.0, 5.0, 50.0]),
    "flow_ticks": st.sampled_from([0.0, 10.0, 100.0]),
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=params,
       price=st.integers(4_000, 1_000_000),
       gap=st.integers(1, 30),
       moves=st.lists(st.integers(-40, 40), min_size=1, max_size=12),
       qtys=st.lists(st.integers(1, 5000), min_size=2, max_size=2),
       inventory=st.floats(-2.5, 2.5),
       trades=st.lists(st.tuples(st.integers(1, 3000), st.booleans()), max_size=4),
       funding=st.sampled_from(["-0.003", "0", "0.0001", "0.01"]))
def test_every_quote_keeps_the_ladder_invariants(params, price, gap, moves, qtys, inventory,
                                                 trades, funding):
    strat = strategy(**params)
    strat.on_mark(MarkPrice("ETHUSDC", 0, Decimal(price) / 100, Decimal(price) / 100,
                            Decimal(funding), 0))
    strat.on_position(round(inventory * strat.max_steps), 0)
    for i, (qty, buyer_maker) in enumerate(trades):
        strat.on_trade(MarketTrade("ETHUSDC", i, i, price, qty, buyer_maker))
    ts = 0
    for move in moves:
        ts += 137
        price = max(price + move, 4_000)
        top = book(ts, price, price + gap, *qtys)
        quote = strat.on_book(top)
        if quote is not None and quote.paused is None:
            check_ladder(strat, quote, top)
        elif quote is not None:
            assert quote.levels == []


@settings(max_examples=60, deadline=None)
@given(inventory=st.integers(1, 60), base=st.sampled_from(["0.005", "0.01", "0.02"]),
       size_skew=st.sampled_from(["0.5", "1", "2"]), model=st.sampled_from(["vol", "glft"]))
def test_sizes_shrink_on_the_side_that_grows_inventory(inventory, base, size_skew, model):
    flat = strategy(base_size=base, size_skew=size_skew, model=model, static_fraction="0")
    long = strategy(base_size=base, size_skew=size_skew, model=model, static_fraction="0")
    short = strategy(base_size=base, size_skew=size_skew, model=model, static_fraction="0")
    long.on_position(inventory, 0)
    short.on_position(-inventory, 0)
    q_flat, q_long, q_short = (by_tag(s.on_book(book(0))) for s in (flat, long, short))
    if "b0" in q_long:
        assert q_long["b0"].qty <= max(q_flat["b0"].qty, long.min_steps(q_long["b0"].price))
    assert q_long["a0"].qty == q_flat["a0"].qty
    if "a0" in q_short:
        assert q_short["a0"].qty <= max(q_flat["a0"].qty, short.min_steps(q_short["a0"].price))
    assert q_short["b0"].qty == q_flat["b0"].qty


# --- sizes and the book ------------------------------------------------------------------------------

def test_small_sizes_are_raised_to_the_minimum_notional():
    quote = strategy(base_size="0.001", static_fraction="0").on_book(book(0))
    levels = by_tag(quote)
    assert levels["b0"].qty == 2 and levels["a0"].qty == 2  # 0.002 ETH × ~3000 >= 5 USDC


def test_a_level_that_cannot_reach_the_minimum_within_max_inventory_is_dropped():
    strat = strategy(base_size="0.001", max_inventory="0.002", static_fraction="0")
    strat.on_position(1, 0)  # room to buy: 1 step, less than the 2 the notional needs
    levels = by_tag(strat.on_book(book(0)))
    assert "b0" not in levels and levels["a0"].qty == 2
    strat.on_position(2, 1)
    assert "b0" not in by_tag(strat.on_book(book(1)))


def test_improve_by_a_tick_when_the_spread_allows_but_never_cross():
    wide = strategy(spread_ticks=2, static_fraction="0", imbalance_ticks=0, micro_weight=0)
    levels = by_tag(wide.on_book(book(0, MID, MID + 400)))
    assert (levels["b0"].price, levels["a0"].price) == (MID + 1, MID + 399)
    tight = strategy(model="fixed", spread_ticks=1, static_fraction="0", imbalance_ticks=0,
                     micro_weight=0)
    levels = by_tag(tight.on_book(book(0, MID, MID + 1)))
    assert (levels["b0"].price, levels["a0"].price) == (MID, MID + 1)
    skewed = strategy(spread_ticks=1, static_fraction="0", imbalance_ticks=50)  # fair far up
    levels = by_tag(skewed.on_book(book(0, MID, MID + 1, bid_qty=9000, ask_qty=1)))
    assert levels["b0"].price == MID and levels["a0"].price > MID + 1
    join = strategy(spread_ticks=2, static_fraction="0", improve_ticks=0)
    levels = by_tag(join.on_book(book(0, MID, MID + 400)))
    assert (levels["b0"].price, levels["a0"].price) == (MID, MID + 400)


def test_ladder_levels_and_tags():
    quote = strategy(levels=3, level_spacing_ticks=10, spread_ticks=20).on_book(book(0))
    levels = by_tag(quote)
    assert [t for t in levels] == ["b0", "b1", "b2", "bS", "a0", "a1", "a2", "aS"]
    assert levels["b0"].price - levels["b2"].price == 20
    assert levels["a2"].price - levels["a0"].price == 20
    assert levels["b2"].price - levels["bS"].price == 100  # staticTicks behind the deepest
    assert levels["b0"].qty == 8 and levels["bS"].qty == 2  # 0.010 split 80/20


# --- scenarios -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("direction", [1, -1])
def test_fair_follows_a_drift(direction):
    strat = strategy(spread_ticks=10)
    quotes = run(strat, [book(t * 100, MID + direction * t * 5) for t in range(100)])
    fairs = [q.reasons["fair"] for q in quotes]
    bids = [by_tag(q)["b0"].price for q in quotes]
    assert len(quotes) > 10
    assert all((b - a) * direction >= 0 for a, b in zip(fairs, fairs[1:], strict=False))
    assert (bids[-1] - bids[0]) * direction > 400
    assert abs(fairs[-1] - (MID + direction * 99 * 5) / 100) < 0.2


def test_a_volatility_spike_widens_the_spread():
    strat = strategy(model="vol", spread_ticks=10, vol_half_life=2000)
    calm = run(strat, [book(t * 100, MID) for t in range(50)])
    wild = run(strat, [book(5000 + t * 100, MID + (30 if t % 2 else -30)) for t in range(50)])
    calm_half, wild_half = calm[-1].reasons["halfSpreadTicks"], wild[-1].reasons["halfSpreadTicks"]
    assert calm_half == 5 and wild_half > 3 * calm_half
    assert wild[-1].reasons["volTicks"] > 20
    calm_q, wild_q = by_tag(calm[-1]), by_tag(wild[-1])
    assert wild_q["a0"].price - wild_q["b0"].price > 2 * (calm_q["a0"].price - calm_q["b0"].price)
    # and requotes come faster in the volatile market
    assert wild[-1].reasons["refreshMs"] < calm[-1].reasons["refreshMs"]


def test_a_fixed_spread_ignores_volatility():
    strat = strategy(model="fixed", spread_ticks=3)
    run(strat, [book(t * 100, MID + (30 if t % 2 else -30)) for t in range(50)])
    quote = strat.on_book(book(5000, MID))
    assert quote is None or quote.reasons["halfSpreadTicks"] == 1.5


def test_shock_pauses_then_resumes_after_the_cooldown():
    strat = strategy(shock_bps=20, shock_window=1000, shock_cooldown=5000)
    assert strat.on_book(book(0, MID)).levels
    jump = MID + MID // 100  # +1 %
    paused = strat.on_book(book(500, jump))
    assert paused.paused == "shock" and paused.levels == [] and paused.reasons["moveBps"] > 20
    during = run(strat, [book(1000 + t * 100, jump) for t in range(40)])  # up to 4900
    assert during and all(q.paused == "shock" and not q.levels for q in during)
    # the window still saw the jump at ts 1000: the cooldown counts from there
    assert during[-1].reasons["resumeAt"] == 6000
    still = strat.on_book(book(5900, jump))
    assert still is None or still.paused == "shock"
    resumed = strat.on_book(book(6000, jump))
    assert resumed.paused is None and resumed.levels


def test_a_quiet_move_does_not_pause():
    strat = strategy(shock_bps=20, shock_window=1000)
    quotes = run(strat, [book(t * 200, MID + t * 10) for t in range(30)])  # 0.33 bps a step
    assert all(q.paused is None for q in quotes)


@pytest.mark.parametrize("model", ["fixed", "vol", "as", "glft"])
def test_inventory_skews_the_reservation_against_the_position(model):
    def top(position):
        strat = strategy(model=model, static_fraction="0", take_profit_ticks=0)
        run(strat, [book(t * 100, MID + (3 if t % 2 else -3)) for t in range(20)])
        strat.on_position(position, 2000)
        return strat.on_book(book(2000, MID))

    flat, long, short = top(0), top(30), top(-30)
    assert long.reasons["skewTicks"] < 0 < short.reasons["skewTicks"]
    assert by_tag(long)["a0"].price < by_tag(flat)["a0"].price < by_tag(short)["a0"].price
    assert by_tag(long)["b0"].price < by_tag(flat)["b0"].price < by_tag(short)["b0"].price


def test_avellaneda_stoikov_and_glft_widen_with_volatility_and_risk_aversion():
    def pricing(fn, sigma, gamma, q=2.0):
        x = ModelInput(base_half=5, sigma=sigma, inventory_ratio=0.4, inventory_lots=q)
        if fn == "as":
            return models.avellaneda_stoikov(x, gamma, 0.02, 30.0, 1, 10_000)
        return models.glft(x, gamma, 0.02, 1.0, 1, 10_000)

    for fn in ("as", "glft"):
        assert pricing(fn, 60, 5e-4).half_spread > pricing(fn, 10, 5e-4).half_spread
        assert pricing(fn, 60, 5e-3).half_spread > pricing(fn, 60, 5e-4).half_spread
        assert abs(pricing(fn, 30, 5e-3).skew) > abs(pricing(fn, 30, 5e-4).skew)
        assert pricing(fn, 30, 5e-4, q=-2).skew == -pricing(fn, 30, 5e-4, q=2).skew
        assert pricing(fn, 30, 5e-4, q=0).skew == 0
    # known values: AS half = (γσ²T + (2/γ)ln(1+γ/κ)) / 2
    x = ModelInput(5, 30.0, 0.0, 1.0)
    got = models.avellaneda_stoikov(x, 5e-4, 0.02, 30.0, 1, 10_000)
    assert got.half_spread == pytest.approx((5e-4 * 900 * 30 + 4000 * math.log(1.025)) / 2)
    assert got.skew == pytest.approx(-5e-4 * 900 * 30)
    c1, c2 = models.glft_coefficients(5e-4, 0.02, 1.0)
    assert c1 == pytest.approx(2000 * math.log(1.025))
    assert c2 == pytest.approx(math.sqrt(5e-4 / 0.04 * 1.025 ** 41))


@pytest.mark.parametrize("model", ["as", "glft"])
def test_model_spread_grows_with_gamma_in_the_strategy(model):
    def half(gamma):
        strat = strategy(model=model, gamma=gamma, max_half_spread_ticks=100_000)
        quotes = run(strat, [book(t * 100, MID + (40 if t % 2 else -40)) for t in range(30)])
        return quotes[-1].reasons["halfSpreadTicks"]

    assert half(0.05) > half(0.005)


def test_static_orders_are_refreshed_rarely():
    strat = strategy(static_refresh=10_000, spread_ticks=10, refresh_interval=100, refresh_min=0)
    quotes = run(strat, [book(t * 100, MID + t) for t in range(150)])  # drifts up 1 tick/100 ms
    statics = [(q.ts, by_tag(q)["bS"].price) for q in quotes]
    dynamic = [by_tag(q)["b0"].price for q in quotes]
    assert len(set(dynamic)) > 50
    before = {price for ts, price in statics if ts < 10_000}
    after = {price for ts, price in statics if ts >= 10_000}
    assert len(before) == 1 and len(after) == 1 and after != before
    assert after.pop() - before.pop() > 50


def test_a_static_order_is_replaced_when_the_ladder_moves_behind_it():
    strat = strategy(model="fixed", static_refresh=60_000, spread_ticks=10, static_ticks=20)
    first = by_tag(strat.on_book(book(0, MID)))["bS"].price
    later = by_tag(strat.on_book(book(1000, MID - 100)))["bS"].price  # the market fell through
    assert later == first - 100


def test_heartbeat_repeats_the_ladder_every_quote_interval():
    strat = strategy(quote_interval=1000)
    quotes = run(strat, [book(t * 100, MID) for t in range(55)])
    assert [q.ts for q in quotes] == [0, 1000, 2000, 3000, 4000, 5000]
    assert all(q.levels == quotes[0].levels for q in quotes)


def test_a_changed_ladder_is_sent_at_once_not_at_the_heartbeat():
    strat = strategy(quote_interval=5000, refresh_interval=100, refresh_min=100)
    first = strat.on_book(book(0, MID))
    assert strat.on_book(book(100, MID)) is None
    moved = strat.on_book(book(200, MID + 50))
    assert moved is not None and moved.levels != first.levels


def test_a_stale_book_pauses_quoting():
    strat = strategy()
    assert strat.on_book(book(0)).paused is None
    stale = strat.on_book(book(100, stale=True))
    assert stale.paused == "stale" and stale.levels == []
    assert strat.on_book(book(200, stale=True)) is None  # nothing new until the heartbeat
    assert strat.on_book(book(1100, stale=True)).paused == "stale"
    fresh = strat.on_book(book(1200))
    assert fresh.paused is None and fresh.levels


def test_an_empty_book_side_pauses():
    top = BookTop("ETHUSDC", 0, 0, 1, False, [(MID, 10)], [])
    assert strategy().on_book(top).paused == "empty"


# --- inventory: fills, snapshots, take-profit ------------------------------------------------------

def test_fills_move_inventory_and_a_take_profit_rests_near_entry():
    strat = strategy(take_profit_ticks=30, spread_ticks=200)
    strat.on_book(book(0))
    strat.on_fill(fill(1, BUY, MID - 100, 10))
    strat.on_fill(fill(1, BUY, MID - 100, 10))  # the same fill twice counts once
    strat.on_fill(fill(2, BUY, MID - 50, 10))
    assert strat.position == 20 and strat.entry == MID - 75
    levels = by_tag(strat.on_book(book(100, MID - 200)))  # the market fell below our entry
    tp = levels["tp"]
    assert (tp.side, tp.price, tp.qty, tp.reduce_only) == (SELL, MID - 75 + 30, 20, True)
    assert tp.price > max(lv.price for lv in levels.values() if lv.side == BUY)
    assert "aS" not in levels  # the take-profit takes the reducing side's static slot
    strat.on_fill(fill(3, SELL, MID - 45, 20))
    levels = by_tag(strat.on_book(book(200, MID - 200)))
    assert strat.position == 0 and "tp" not in levels and "aS" in levels


def test_a_short_take_profit_buys_below_entry_and_never_crosses():
    strat = strategy(take_profit_ticks=30)
    strat.on_fill(fill(1, SELL, MID + 100, 10))
    tp = by_tag(strat.on_book(book(0, MID + 200, MID + 201)))["tp"]
    assert (tp.side, tp.price, tp.reduce_only) == (BUY, MID + 70, True)
    strat.on_book(book(100, MID - 300, MID - 299))
    tp = by_tag(strat.on_book(book(10_000, MID - 300, MID - 299)))["tp"]
    assert tp.price < MID - 299


def test_a_position_snapshot_overrides_the_fills():
    strat = strategy()
    strat.on_fill(fill(1, BUY, MID, 10))
    strat.on_position(-5, 10)
    assert strat.position == -5
    quote = strat.on_book(book(20))
    assert quote.reasons["position"] == "-0.005"
    assert by_tag(quote)["tp"].side == BUY  # entry unknown after a flip: the mid stands in


def test_a_snapshot_with_the_venues_entry_prices_the_take_profit_from_it():
    """A start (or `depth --user`'s snapshot) holding a position: the venue's entry price,
    not the mid at start, sets the take-profit; fills then move it as usual."""
    strat = strategy(take_profit_ticks=30, spread_ticks=200)
    strat.on_position(20, 0, float(MID - 100))
    tp = by_tag(strat.on_book(book(0, MID - 200)))["tp"]
    assert (tp.side, tp.price) == (SELL, MID - 100 + 30)
    strat.on_position(20, 10, float(MID + 500))  # the same position: the fills' entry stays
    assert strat.entry == MID - 100


def test_a_full_inventory_stops_the_growing_side():
    strat = strategy(max_inventory="0.05")
    strat.on_position(50, 0)
    levels = by_tag(strat.on_book(book(0)))
    assert not [lv for lv in levels.values() if lv.side == BUY]
    assert levels["a0"].qty == 8


def targeted(target: str, position: int, **changes) -> Strategy:
    """A strategy steering towards `inventory.targetPosition` = target, holding `position`."""
    strat = make_strategy(SPEC, config(**changes),
                          InventoryConfig(target_position=Decimal(target)))
    strat.on_position(position, 0)
    return strat


def test_the_skews_steer_towards_the_target_position_not_flat():
    plain = dict(static_fraction="0", take_profit_ticks=0, model="fixed", spread_ticks=20)
    at_target = targeted("0.030", 30, **plain).on_book(book(0))
    flat = strategy(**plain).on_book(book(0))
    assert at_target.reasons["skewTicks"] == 0 and at_target.reasons["target"] == "0.030"
    assert [(lv.tag, lv.price, lv.qty) for lv in at_target.levels] == [
        (lv.tag, lv.price, lv.qty) for lv in flat.levels]  # at the target: as if flat
    short_of_target = targeted("0.030", 0, **plain).on_book(book(0))
    short = strategy(**plain)
    short.on_position(-30, 0)
    as_short = short.on_book(book(0))
    # 0.030 below the target quotes as 0.030 short: reservation up, asks shrunk
    assert short_of_target.reasons["skewTicks"] == as_short.reasons["skewTicks"] > 0
    assert [(lv.tag, lv.price, lv.qty) for lv in short_of_target.levels] == [
        (lv.tag, lv.price, lv.qty) for lv in as_short.levels]
    assert by_tag(short_of_target)["a0"].qty < by_tag(flat)["a0"].qty
    assert "target" not in flat.reasons


@pytest.mark.parametrize("model", ["vol", "as", "glft"])
def test_every_model_skews_on_the_distance_from_the_target(model):
    long_of_target = targeted("-0.020", 10, model=model, take_profit_ticks=0)
    long = strategy(model=model, take_profit_ticks=0)
    long.on_position(30, 0)
    for strat in (long_of_target, long):
        run(strat, [book(t * 100, MID + (3 if t % 2 else -3)) for t in range(20)])
    a, b = long_of_target.on_book(book(2000)), long.on_book(book(2000))
    assert a.reasons["skewTicks"] == b.reasons["skewTicks"] < 0


def test_the_take_profit_closes_only_the_excess_over_the_target():
    over = by_tag(targeted("0.020", 30, take_profit_ticks=30).on_book(book(0)))
    assert (over["tp"].side, over["tp"].qty, over["tp"].reduce_only) == (SELL, 10, True)
    assert "aS" not in over  # its static slot goes to the take-profit, as when flat-targeted
    under = by_tag(targeted("0.020", 10, take_profit_ticks=30).on_book(book(0)))
    assert "tp" not in under and "aS" in under  # below the target: nothing to take profit on
    across = by_tag(targeted("-0.020", 10, take_profit_ticks=30).on_book(book(0)))
    assert (across["tp"].side, across["tp"].qty) == (SELL, 10)  # reduce-only: at most all
    short_over = by_tag(targeted("-0.020", -35, take_profit_ticks=30).on_book(book(0)))
    assert (short_over["tp"].side, short_over["tp"].qty) == (BUY, 15)


def test_the_target_comes_from_the_inventory_config():
    overrides = {"symbols": {"ETHUSDC": {"inventory": {"targetPosition": "-0.0159"}}}}
    cfg = load_config(env={}, overrides=overrides).symbol("ETHUSDC")
    assert make_strategy(SPEC, cfg.strategy, cfg.inventory).target == -15  # towards zero
    assert make_strategy(SPEC, cfg.strategy).target == 0  # without it: flat
    huge = InventoryConfig(target_position=Decimal("0.5"))
    assert make_strategy(SPEC, cfg.strategy, huge).target == 50  # within maxInventory


# --- signals ------------------------------------------------------------------------------------------

def fair_shift(strat: Strategy, top: BookTop | None = None) -> float:
    quote = strat.on_book(top or book(10_000))
    return quote.reasons["signalTicks"]


def test_buy_flow_lifts_and_sell_flow_lowers_fair_within_its_bound():
    quiet = dict(micro_weight=0, imbalance_ticks=0, funding_ticks=0, flow_ticks=10)
    buys, sells = strategy(**quiet), strategy(**quiet)
    for i in range(50):
        buys.on_trade(MarketTrade("ETHUSDC", 9_000 + i, i, MID, 1000, False))
        sells.on_trade(MarketTrade("ETHUSDC", 9_000 + i, i, MID, 1000, True))
    up, down = fair_shift(buys), fair_shift(sells)
    assert 9 < up <= 10 and -10 <= down < -9


def test_positive_funding_lowers_fair_within_its_bound():
    strat = strategy(micro_weight=0, imbalance_ticks=0, flow_ticks=0, funding_ticks=5)
    strat.on_mark(MarkPrice("ETHUSDC", 0, Decimal("3000"), Decimal("3000"), Decimal("0.0001"), 0))
    assert fair_shift(strat) == pytest.approx(-1.0)
    strat.on_mark(MarkPrice("ETHUSDC", 1, Decimal("3000"), Decimal("3000"), Decimal("0.05"), 0))
    assert fair_shift(strat, book(20_000, MID + 2)) == pytest.approx(-5.0)


def test_bid_heavy_book_lifts_fair_through_imbalance_and_microprice():
    strat = strategy(flow_ticks=0, funding_ticks=0, imbalance_ticks=5, micro_weight=1)
    quote = strat.on_book(book(0, MID, MID + 1, bid_qty=3000, ask_qty=1000))
    assert quote.reasons["imbalance"] == 0.5
    assert quote.reasons["microprice"] == pytest.approx((MID + 0.75) / 100)
    assert quote.reasons["signalTicks"] == pytest.approx(0.25 + 2.5)


def test_reasons_are_plain_numbers_for_people():
    reasons = strategy().on_book(book(0)).reasons
    for key in ("fair", "halfSpreadTicks", "skewTicks", "volTicks", "microprice", "imbalance",
                "flow", "funding"):
        assert isinstance(reasons[key], float | int), key
    assert reasons["model"] == "vol"
    assert reasons["fair"] == pytest.approx(3000.005, abs=0.01)


# --- configuration -----------------------------------------------------------------------------------

def test_strategy_keys_are_set_like_any_other():
    overrides = {"symbols": {"ETHUSDC": {"strategy": {"spreadTicks": "3", "model": "glft"}}}}
    cfg = load_config(env={}, overrides=overrides).symbol("ETHUSDC").strategy
    assert (cfg.spread_ticks, cfg.model) == (3, "glft")
    quote = make_strategy(SPEC, replace(cfg, model="fixed")).on_book(book(0))
    assert quote.reasons["halfSpreadTicks"] == 1.5


@pytest.mark.parametrize("key, value, message", [
    ("model", "magic", "must be one of fixed, vol, as, glft, got 'magic'"),
    ("spreadTicks", -1, "must be >= 0, got -1"),
    ("microWeight", 2, "must be between 0 and 1, got 2"),
    ("refreshMin", 900, "must be <= refreshInterval (500), got 900"),
    ("minHalfSpreadTicks", 2000, "must be <= maxHalfSpreadTicks (1000), got 2000"),
])
def test_strategy_keys_are_validated(key, value, message):
    overrides = {"symbols": {"ETHUSDC": {"strategy": {key: value}}}}
    with pytest.raises(ConfigError) as caught:
        load_config(env={}, overrides=overrides)
    assert str(caught.value) == f"symbols.ETHUSDC.strategy.{key}: {message}"
