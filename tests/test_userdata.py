"""User-stream normalisation on real and documented payloads from ../shared/data."""

from __future__ import annotations

import json

import pytest

from mmkit.binance.userdata import FillDeduper, ListenKeyExpired, normalize

SYNTHETIC = "api/ws_user/nautilus_trader_synthetic"


def _load(shared_data, name):
    return json.loads((shared_data / name).read_text())


def test_trade_update_gives_an_order_line_and_a_fill_line(shared_data):
    order, fill = normalize(_load(shared_data, f"{SYNTHETIC}/order_update_trade.json"))
    assert order["type"] == "order" and order["status"] == "PARTIALLY_FILLED"
    assert fill == {
        "type": "fill", "symbol": "BTCUSDT", "ts": 1568879465651, "tradeId": 12345678,
        "orderId": 8886774, "clientOrderId": "TEST", "side": "BUY", "price": "7100.50",
        "qty": "0.001", "maker": True, "commission": "0.01000000", "commissionAsset": "USDT",
        "realizedPnl": "12.34", "source": "stream",
    }


def test_new_order_gives_no_fill(shared_data):
    lines = normalize(_load(shared_data, f"{SYNTHETIC}/order_update_new.json"))
    assert [line["type"] for line in lines] == ["order"]


def test_account_update_gives_balance_and_changed_positions(shared_data):
    lines = normalize(_load(shared_data, f"{SYNTHETIC}/account_update.json"))
    assert [line["type"] for line in lines] == ["balance", "position", "position", "position"]
    assert lines[0]["asset"] == "USDT" and lines[0]["reason"] == "ORDER"
    assert lines[2]["qty"] == "20" and lines[2]["positionSide"] == "LONG"


def test_trade_lite_and_market_data_are_ignored(shared_data):
    assert normalize(_load(shared_data, "api/ws_user/nautilus_trader/ws_futures_trade_lite.json")) == []
    assert normalize({"e": "depthUpdate", "E": 1, "s": "ETHUSDC", "b": [], "a": []}) == []
    assert normalize({"e": "aggTrade", "E": 1, "s": "ETHUSDC"}) == []


def test_listen_key_expiry_is_raised():
    with pytest.raises(ListenKeyExpired):
        normalize({"e": "listenKeyExpired", "E": 1736996475556, "listenKey": "k"})


def test_deduper_emits_each_fill_once():
    dedupe = FillDeduper(capacity=2)
    fill = {"symbol": "ETHUSDC", "tradeId": 7}
    assert dedupe.fresh(fill) and not dedupe.fresh(dict(fill))
    assert dedupe.fresh({"symbol": "ETHUSDT", "tradeId": 7})
