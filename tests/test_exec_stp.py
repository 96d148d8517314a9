"""Our orders say their self-trade prevention (Binance's pages disagree on the default): at the
venue they rest with EXPIRE_MAKER, so one of ours never trades with another."""

from __future__ import annotations

from mmkit.orders import SELF_TRADE_PREVENTION
from tests.test_exec_post_only import bid, one_cycle


def test_orders_rest_with_our_self_trade_prevention():
    _, _, _, resting = one_cycle([bid("2999.00")])
    assert SELF_TRADE_PREVENTION == "EXPIRE_MAKER"
    assert [o["selfTradePreventionMode"] for o in resting] == ["EXPIRE_MAKER"]
