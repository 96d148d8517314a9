"""SymbolSpec (mmkit.symbols): built from real exchangeInfo entries (ccxt's copy, whose integers
are strings, and a full 2021 recording) and from the simulator's listing; exact tick/step
conversion and side-aware rounding as Hypothesis properties; and check_order answering with
the code Binance gives for each PRICE_FILTER, LOT_SIZE, MIN_NOTIONAL and PERCENT_PRICE breach."""

from __future__ import annotations

import dataclasses
import json
import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.sim.instruments import default_specs
from mmkit.symbols import BUY, SELL, SymbolSpec

CCXT_FILE = "api/rest/ccxt/exchangeInfo_symbols_BTCUSDT_ETHUSDT.json"
FULL_FILE = "api/rest/exchangeInfo_fapi_20210721T090403Z_full.json"
# Distinct tick/step shapes from the 2021 recording: tick 1, 0.10, 0.010, 0.00010, 0.000001;
# step 1, 0.1, 0.01, 0.001.
VARIED = ["YFIUSDT", "MKRUSDT", "BNBUSDT", "ADAUSDT", "THETAUSDT", "1000SHIBUSDT", "BTCBUSD"]

PRICES = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("5000000"), places=8)
QTYS = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("10000000"), places=8)
FEW = settings(max_examples=150, deadline=None)


def _entries(path) -> dict[str, dict]:
    return {e["symbol"]: e for e in json.loads(path.read_text())["symbols"]}


@pytest.fixture(scope="session")
def ccxt_specs(shared_data) -> dict[str, SymbolSpec]:
    return {s: SymbolSpec.from_exchange_info(e) for s, e in _entries(shared_data / CCXT_FILE).items()}


@pytest.fixture(scope="session")
def full_specs(shared_data) -> dict[str, SymbolSpec]:
    return {s: SymbolSpec.from_exchange_info(e) for s, e in _entries(shared_data / FULL_FILE).items()}


@pytest.fixture(scope="session")
def specs(ccxt_specs, full_specs) -> list[SymbolSpec]:
    """Every shape of spec the properties run over."""
    return [*ccxt_specs.values(), *default_specs(["ETHUSDC"]).values(),
            *(full_specs[s] for s in VARIED)]


@pytest.fixture(scope="session")
def btc(ccxt_specs) -> SymbolSpec:
    """BTCUSDT: tick 0.10 with pricePrecision 2, so an off-tick price can stay within precision."""
    return ccxt_specs["BTCUSDT"]


def _code(rejection) -> int | None:
    return rejection.code if rejection else None


# -- construction -------------------------------------------------------------------------------


def test_ccxt_btcusdt_entry_with_string_integers(btc):
    assert (btc.symbol, btc.base_asset, btc.quote_asset, btc.margin_asset) == (
        "BTCUSDT", "BTC", "USDT", "USDT")
    assert btc.tick_size == Decimal("0.1") and btc.step_size == Decimal("0.001")
    assert (btc.min_price, btc.max_price) == (Decimal("556.80"), Decimal("4529764"))
    assert (btc.min_qty, btc.max_qty) == (Decimal("0.001"), Decimal(1000))
    assert (btc.market_min_qty, btc.market_max_qty) == (Decimal("0.001"), Decimal(120))
    assert btc.min_notional == 5
    assert (btc.multiplier_up, btc.multiplier_down) == (Decimal("1.05"), Decimal("0.95"))
    assert (btc.multiplier_decimal, btc.max_num_orders) == (4, 200)
    assert (btc.price_precision, btc.quantity_precision) == (2, 3)
    assert (btc.price_decimals, btc.qty_decimals) == (1, 3)
    assert "GTD" in btc.time_in_force and "LIMIT" in btc.order_types


def test_ccxt_ethusdt_entry(ccxt_specs):
    eth = ccxt_specs["ETHUSDT"]
    assert eth.tick_size == Decimal("0.01") and eth.min_price == Decimal("39.86")
    assert eth.price_decimals == 2 and eth.market_max_qty == 2000


def test_full_2021_exchange_info_builds_every_symbol(full_specs):
    assert len(full_specs) == 122
    for spec in full_specs.values():
        assert spec.tick_size > 0 and spec.step_size > 0
        assert spec.min_notional == 5
        assert spec.price_decimals <= spec.price_precision
        assert spec.qty_decimals <= spec.quantity_precision
        spec.to_ticks(spec.min_price)  # minPrice lies on the tick grid
        spec.to_steps(spec.min_qty)
    assert full_specs["BTCSTUSDT"].status == "PENDING_TRADING"
    assert full_specs["BTCUSDT_210924"].contract_type == "CURRENT_QUARTER"
    assert "GTD" not in full_specs["BTCUSDT"].time_in_force


def test_full_2021_integer_tick_and_step(full_specs):
    yfi, ada = full_specs["YFIUSDT"], full_specs["ADAUSDT"]
    assert yfi.price_decimals == 0 and yfi.price_str(30000) == "30000"
    assert ada.qty_decimals == 0 and ada.qty_str(12) == "12"
    assert ada.tick_size == Decimal("0.0001") and ada.price_str(12345) == "1.2345"


def test_sim_ethusdc_spec_matches_ethusdt_filters(ccxt_specs):
    usdc, usdt = default_specs(["ETHUSDC"])["ETHUSDC"], ccxt_specs["ETHUSDT"]
    assert (usdc.quote_asset, usdc.margin_asset) == ("USDC", "USDC")
    for name in ("tick_size", "step_size", "min_price", "min_qty", "min_notional",
                 "multiplier_up", "multiplier_down", "price_precision", "quantity_precision"):
        assert getattr(usdc, name) == getattr(usdt, name), name


def test_legacy_min_notional_key_and_missing_filters():
    spec = SymbolSpec.from_exchange_info({"symbol": "X", "filters": [
        {"filterType": "MIN_NOTIONAL", "minNotional": "10"}]})
    assert spec.min_notional == 10 and spec.tick_size == Decimal("0.01")
    assert spec.market_max_qty == 0 and spec.multiplier_up == 0


# -- exact conversion and rounding --------------------------------------------------------------


@FEW
@given(st.data(), PRICES)
def test_round_price_buy_is_on_tick_and_never_above(specs, data, price):
    spec = data.draw(st.sampled_from(specs))
    rounded = spec.round_price(price, BUY) * spec.tick_size
    assert rounded <= price < rounded + spec.tick_size
    assert spec.to_ticks(rounded) == spec.round_price(price, BUY)


@FEW
@given(st.data(), PRICES)
def test_round_price_sell_is_on_tick_and_never_below(specs, data, price):
    spec = data.draw(st.sampled_from(specs))
    rounded = spec.round_price(price, SELL) * spec.tick_size
    assert rounded - spec.tick_size < price <= rounded
    assert spec.to_ticks(rounded) == spec.round_price(price, SELL)


@FEW
@given(st.data(), st.integers(0, 10**9))
def test_on_tick_price_rounds_to_itself_both_sides(specs, data, ticks):
    spec = data.draw(st.sampled_from(specs))
    text = spec.price_str(ticks)
    assert spec.round_price(text, BUY) == spec.round_price(text, SELL) == ticks


@FEW
@given(st.data(), QTYS)
def test_round_qty_is_on_step_and_never_above(specs, data, qty):
    spec = data.draw(st.sampled_from(specs))
    rounded = spec.round_qty(qty) * spec.step_size
    assert rounded <= qty < rounded + spec.step_size


@FEW
@given(st.data(), st.integers(-(10**12), 10**12))
def test_ticks_and_steps_round_trip_through_strings_exactly(specs, data, units):
    spec = data.draw(st.sampled_from(specs))
    price, qty = spec.price_str(units), spec.qty_str(units)
    assert spec.to_ticks(price) == units and spec.to_steps(qty) == units
    assert Decimal(price) == units * spec.tick_size and Decimal(qty) == units * spec.step_size
    assert len(price.partition(".")[2]) == spec.price_decimals
    assert len(qty.partition(".")[2]) == spec.qty_decimals


def test_rounding_stays_exact_beyond_28_significant_digits(btc):
    """Decimal division keeps 28 digits: a quotient of 10000.99..96 must not round up to 10001."""
    quarter = dataclasses.replace(btc, tick_size=Decimal("0.25"), step_size=Decimal("0.25"))
    just_below = Decimal("2500.249999999999999999999999")  # 28 digits, as Decimal math makes
    assert quarter.round_price(just_below, BUY) == 10000
    assert quarter.round_qty(just_below) == 10000
    assert quarter.round_price(Decimal("2500.000000000000000000000001"), SELL) == 10001
    long = Decimal("60000.09999999999999999999999999999")  # parsed, not computed: 34 digits
    assert btc.round_price(long, BUY) == 600000
    assert btc.round_price(Decimal("60000.10000000000000000000000000001"), SELL) == 600002


def test_price_str_keeps_trailing_zeros(btc):
    assert btc.price_str(600000) == "60000.0"
    assert btc.qty_str(1000) == "1.000"
    assert btc.to_ticks("60000") == btc.to_ticks("60000.00") == 600000


def test_to_ticks_and_to_steps_refuse_off_grid_values(btc):
    with pytest.raises(ValueError, match="not on the tick"):
        btc.to_ticks("60000.05")
    with pytest.raises(ValueError, match="not on the step"):
        btc.to_steps("0.0015")
    with pytest.raises(ValueError):
        btc.to_ticks("abc")


def test_notional_is_exact(btc):
    assert btc.notional(600001, 1234) == Decimal("74040.1234")


# -- check_order --------------------------------------------------------------------------------


@FEW
@given(st.data())
def test_valid_on_tick_order_inside_every_filter_passes(specs, data):
    spec = data.draw(st.sampled_from(specs))
    low, high = spec.to_ticks(spec.min_price), min(spec.to_ticks(spec.max_price), 10**9)
    ticks = data.draw(st.integers(low, high))
    price = ticks * spec.tick_size
    min_steps = max(spec.to_steps(spec.min_qty),
                    math.ceil(spec.min_notional / (price * spec.step_size)))
    max_steps = spec.to_steps(spec.max_qty)
    if min_steps > max_steps:
        return
    steps = data.draw(st.integers(min_steps, max_steps))
    side = data.draw(st.sampled_from([BUY, SELL]))
    assert spec.check_order(side, "LIMIT", spec.qty_str(steps), spec.price_str(ticks),
                            mark_price=price) is None


@FEW
@given(st.data(), PRICES)
def test_rounded_price_never_fails_tick_or_precision(specs, data, price):
    spec = data.draw(st.sampled_from(specs))
    side = data.draw(st.sampled_from([BUY, SELL]))
    text = spec.price_str(spec.round_price(price, side))
    code = _code(spec.check_order(side, "LIMIT", spec.qty_str(10**6), text))
    assert code not in (-4014, -1111)


def test_valid_orders_pass(btc):
    assert btc.check_order(BUY, "LIMIT", "0.010", "60000.0", mark_price=Decimal(60000)) is None
    assert btc.check_order(SELL, "LIMIT", "1", "60000", mark_price=Decimal(60000)) is None
    assert btc.check_order(BUY, "MARKET", "0.001", mark_price=Decimal(60000)) is None


def test_off_tick_price_is_4014(btc):
    assert _code(btc.check_order(BUY, "LIMIT", "0.010", "60000.05")) == -4014


def test_too_many_decimals_is_1111(btc):
    assert _code(btc.check_order(BUY, "LIMIT", "0.010", "60000.123")) == -1111
    assert _code(btc.check_order(BUY, "LIMIT", "0.0101", "60000.0")) == -1111
    assert _code(btc.check_order(BUY, "MARKET", "0.0001")) == -1111


def test_price_below_min_is_4013_and_above_max_is_4002(btc):
    assert _code(btc.check_order(BUY, "LIMIT", "0.010", "556.7")) == -4013
    assert btc.check_order(BUY, "LIMIT", "0.010", "556.8") is None
    assert _code(btc.check_order(SELL, "LIMIT", "0.010", "4529764.1")) == -4002
    assert btc.check_order(SELL, "LIMIT", "0.010", "4529764") is None


def test_qty_below_min_is_4004(btc):
    spec = dataclasses.replace(btc, min_qty=Decimal("0.01"))
    assert _code(spec.check_order(BUY, "LIMIT", "0.009", "60000.0")) == -4004
    assert spec.check_order(BUY, "LIMIT", "0.010", "60000.0") is None


def test_qty_above_max_is_4005_with_market_lot_for_market_orders(btc):
    assert _code(btc.check_order(BUY, "LIMIT", "1000.001", "60000.0")) == -4005
    assert btc.check_order(BUY, "LIMIT", "120.001", "60000.0") is None
    assert _code(btc.check_order(BUY, "MARKET", "120.001", mark_price=Decimal(60000))) == -4005
    assert btc.check_order(BUY, "MARKET", "120", mark_price=Decimal(60000)) is None


def test_qty_off_step_is_4023(btc):
    spec = dataclasses.replace(btc, min_qty=Decimal("0.01"), step_size=Decimal("0.01"))
    assert _code(spec.check_order(BUY, "LIMIT", "0.015", "60000.0")) == -4023
    assert spec.check_order(BUY, "LIMIT", "0.02", "60000.0") is None


def test_notional_below_min_is_4164_unless_reduce_only(btc):
    rejection = btc.check_order(BUY, "LIMIT", "0.004", "1000.0")
    assert _code(rejection) == -4164
    assert "no smaller than 5 " in rejection.msg and "reduce only" in rejection.msg
    assert btc.check_order(BUY, "LIMIT", "0.005", "1000.0") is None
    assert btc.check_order(BUY, "LIMIT", "0.004", "1000.0", reduce_only=True) is None


def test_market_order_notional_uses_mark_price(btc):
    assert _code(btc.check_order(SELL, "MARKET", "0.004", mark_price=Decimal(1000))) == -4164
    assert btc.check_order(SELL, "MARKET", "0.004", mark_price=Decimal(1000),
                           reduce_only=True) is None
    assert btc.check_order(SELL, "MARKET", "0.005", mark_price=Decimal(1000)) is None


def test_buy_above_mark_cap_is_4016(btc):
    mark = Decimal(60000)  # cap 63000, floor 57000
    assert _code(btc.check_order(BUY, "LIMIT", "0.010", "63000.1", mark_price=mark)) == -4016
    assert btc.check_order(BUY, "LIMIT", "0.010", "63000.0", mark_price=mark) is None
    assert btc.check_order(BUY, "LIMIT", "0.010", "50000.0", mark_price=mark) is None


def test_sell_below_mark_floor_is_4024(btc):
    mark = Decimal(60000)
    assert _code(btc.check_order(SELL, "LIMIT", "0.010", "56999.9", mark_price=mark)) == -4024
    assert btc.check_order(SELL, "LIMIT", "0.010", "57000.0", mark_price=mark) is None
    assert btc.check_order(SELL, "LIMIT", "0.010", "70000.0", mark_price=mark) is None


def test_band_is_not_checked_without_a_mark(btc):
    assert btc.check_order(BUY, "LIMIT", "0.010", "4000000.0") is None


@pytest.mark.parametrize("qty, price", [
    ("abc", "60000.0"), ("0.010", "6e4x"), ("", "60000.0"), ("0.010", "NaN"),
    ("Infinity", "60000.0"), ("0.010", "-inf"),
])
def test_malformed_number_is_1102(btc, qty, price):
    assert _code(btc.check_order(BUY, "LIMIT", qty, price)) == -1102


def test_non_positive_qty_and_price(btc):
    assert _code(btc.check_order(BUY, "LIMIT", "0", "60000.0")) == -4003
    assert _code(btc.check_order(BUY, "LIMIT", "-0.010", "60000.0")) == -4003
    assert _code(btc.check_order(BUY, "LIMIT", "0.010", "0")) == -4001
