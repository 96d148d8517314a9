"""The strategy: market and own events in, the desired ladder of resting orders out.

Functional core: no clock, socket, file or env var; time is the events' own `ts`. Prices are
integer ticks, quantities integer steps; the statistics behind them are floats. Behaviour and
parameters: docs/strategy.md.
"""

from __future__ import annotations

import math
from collections import deque
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from mmkit.config import InventoryConfig, StrategyConfig
from mmkit.model import BUY, SELL, BookTop, MarketTrade, MarkPrice, OwnFill, Quote, QuoteLevel
from mmkit.strategy import models
from mmkit.strategy.models import ModelInput, Pricing
from mmkit.strategy.signals import (
    EwmaVolatility,
    ShockDetector,
    TradeFlow,
    imbalance,
    microprice,
)
from mmkit.symbols import SymbolSpec

SEEN_FILLS = 1024  # own trade ids remembered to drop a fill delivered twice


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class Strategy:
    """One symbol's quoting. Feed it events; `on_book` answers with a `Quote` when the desired
    ladder changed, when quoting pauses or resumes, and at least every `quoteInterval` ms of
    book time (a heartbeat repeating the current ladder); otherwise None.

    `inventory` (`symbols.<SYMBOL>.inventory`) gives `targetPosition`: the skews and the
    take-profit act on the position's distance from it (`excess`); without it the target
    is flat."""

    def __init__(self, spec: SymbolSpec, config: StrategyConfig,
                 inventory: InventoryConfig | None = None) -> None:
        self.spec = spec
        self.config = config
        c = config
        step, tick = spec.step_size, spec.tick_size
        self.base_steps = max(1, spec.round_qty(c.base_size))
        self.max_steps = max(1, spec.round_qty(c.max_inventory))
        # signed steps, rounded towards zero and held within ±maxInventory
        target = inventory.target_position if inventory is not None else Decimal(0)
        steps = min(spec.round_qty(abs(target)), self.max_steps)
        self.target = -steps if target < 0 else steps
        self.static_steps = int((self.base_steps * c.static_fraction)
                                .to_integral_value()) if c.static_fraction else 0
        self.level_steps = self.base_steps - self.static_steps
        self.min_qty_steps = max(1, int((spec.min_qty / step).to_integral_value(ROUND_CEILING)))
        self.max_qty_steps = int(spec.max_qty / step) if spec.max_qty else None
        # minimum notional in tick·step units: a level needs price × qty >= this
        self.min_notional_units = int((spec.min_notional / (tick * step))
                                      .to_integral_value(ROUND_CEILING))
        self.min_price = max(1, int((spec.min_price / tick).to_integral_value(ROUND_CEILING)))
        self.max_price = int(spec.max_price / tick) if spec.max_price else None
        self.flow_scale_steps = float(c.flow_scale / step)
        self.skew = float(c.skew)
        self.size_skew = c.size_skew

        self.vol = EwmaVolatility(c.vol_half_life)
        self.flow = TradeFlow(c.flow_half_life)
        self.shock = ShockDetector(c.shock_window)
        self.funding_rate = 0.0
        self.mark: Decimal | None = None

        self.position = 0  # signed steps
        self.entry: float | None = None  # average entry price, ticks
        self._seen: deque[int] = deque(maxlen=SEEN_FILLS)
        self._dirty = True  # recompute the ladder at the next book

        self.paused_until: int | None = None
        self.move_bps = 0.0
        self._ladder: list[QuoteLevel] | None = None
        self._ladder_ts = 0
        self._reasons: dict = {}
        self._static: dict[str, tuple[QuoteLevel, int] | None] = {BUY: None, SELL: None}
        self._sent: tuple | None = None
        self._sent_ts = 0

    # -- events ---------------------------------------------------------------------------------

    def on_trade(self, trade: MarketTrade) -> None:
        """A market trade: the taker's side signs its volume (buyer maker → a sell)."""
        self.flow.add(trade.ts, -trade.qty if trade.buyer_is_maker else trade.qty)

    def on_mark(self, mark: MarkPrice) -> None:
        self.funding_rate = float(mark.funding_rate)
        self.mark = mark.mark

    def on_fill(self, fill: OwnFill) -> None:
        """Our fill moves the position and its average entry (duplicates are ignored)."""
        if fill.trade_id in self._seen:
            return
        self._seen.append(fill.trade_id)
        signed = fill.qty if fill.side == BUY else -fill.qty
        before, after = self.position, self.position + signed
        if after == 0:
            self.entry = None
        elif before == 0 or (before > 0) != (after > 0):
            self.entry = float(fill.price)  # opened, or flipped through zero
        elif abs(after) > abs(before):
            entry = self.entry if self.entry is not None else float(fill.price)
            self.entry = (entry * abs(before) + fill.price * fill.qty) / abs(after)
        self.position = after
        self._dirty = True

    def on_position(self, qty: int, ts: int, entry: float | None = None) -> None:
        """A position snapshot (signed steps) overrides what the fills said. The entry price
        survives when the side is unchanged; otherwise the venue's `entry` (ticks) takes its
        place when the snapshot carries one, else the next book's mid stands in for it."""
        if qty != self.position:
            if qty == 0 or self.position == 0 or (qty > 0) != (self.position > 0):
                self.entry = None
            self.position = qty
            self._dirty = True
        if qty and self.entry is None and entry:
            self.entry = entry
            self._dirty = True

    def on_book(self, book: BookTop) -> Quote | None:
        ts = book.ts
        if book.stale:
            return self._pause(ts, "stale")
        if not book.bids or not book.asks:
            return self._pause(ts, "empty")
        best_bid, best_ask = book.bids[0][0], book.asks[0][0]
        mid = (best_bid + best_ask) / 2
        self.vol.update(ts, mid)
        self.move_bps = self.shock.update(ts, mid)
        if self.position and self.entry is None:
            self.entry = mid
        if self.move_bps > self.config.shock_bps:
            self.paused_until = ts + self.config.shock_cooldown
        if self.paused_until is not None:
            if ts < self.paused_until:
                return self._pause(ts, "shock")
            self.paused_until = None
        if self._refresh_due(ts, best_bid, best_ask):
            self._ladder, self._reasons = self._compute(book, ts)
            self._ladder_ts = ts
            self._dirty = False
        return self._emit(ts, self._ladder or [], None, self._reasons)

    # -- timing ---------------------------------------------------------------------------------

    def base_half(self, mid: float) -> float:
        """The configured half-spread in ticks: spreadTicks / 2, else spread bps of the mid."""
        c = self.config
        if c.spread_ticks:
            return c.spread_ticks / 2
        return float(c.spread) * mid / 20_000

    def refresh_ms(self, mid: float) -> float:
        """Volatility-adaptive refresh: refreshInterval / (1 + σ / base half-spread), never
        below refreshMin."""
        c = self.config
        base = max(self.base_half(mid), 0.5)
        return max(float(c.refresh_min), c.refresh_interval / (1 + self.vol.ticks / base))

    def _refresh_due(self, ts: int, best_bid: int, best_ask: int) -> bool:
        if self._ladder is None or self._dirty:
            return True
        for level in self._ladder:
            if (level.side == BUY and level.price >= best_ask) or (
                    level.side == SELL and level.price <= best_bid):
                return True
        return ts - self._ladder_ts >= self.refresh_ms((best_bid + best_ask) / 2)

    def _emit(self, ts: int, levels: list[QuoteLevel], paused: str | None,
              reasons: dict) -> Quote | None:
        key = (tuple(levels), paused)
        if (self._sent is not None and key == self._sent
                and ts - self._sent_ts < self.config.quote_interval):
            return None
        self._sent, self._sent_ts = key, ts
        return Quote(self.spec.symbol, ts, list(levels), dict(reasons), paused)

    def _pause(self, ts: int, why: str) -> Quote | None:
        self._ladder = None
        self._static = {BUY: None, SELL: None}
        reasons = {"model": self.config.model, "volTicks": round(self.vol.ticks, 3),
                   "moveBps": round(self.move_bps, 3), "position": self._qty_text()}
        if why == "shock" and self.paused_until is not None:
            reasons["resumeAt"] = self.paused_until
        return self._emit(ts, [], why, reasons)

    # -- the ladder -----------------------------------------------------------------------------

    @property
    def excess(self) -> int:
        """Position − targetPosition, signed steps: what the skews and take-profit steer
        back to zero."""
        return self.position - self.target

    def _pricing(self, mid: float) -> Pricing:
        c = self.config
        q = self.excess
        x = ModelInput(base_half=self.base_half(mid), sigma=self.vol.ticks,
                       inventory_ratio=q / self.max_steps, inventory_lots=q / self.base_steps)
        low, high = float(c.min_half_spread_ticks), float(c.max_half_spread_ticks)
        if c.model == "fixed":
            return models.fixed(x, self.skew)
        if c.model == "vol":
            return models.vol_adaptive(x, self.skew, c.vol_multiplier, low, high)
        if c.model == "as":
            return models.avellaneda_stoikov(x, c.gamma, c.kappa, c.horizon, low, high)
        return models.glft(x, c.gamma, c.kappa, c.arrival_rate, low, high)

    def min_steps(self, price: int) -> int:
        """The least quantity, in steps, an order at `price` may carry: minQty, and enough
        for price × qty >= minNotional."""
        return max(self.min_qty_steps, _ceil_div(self.min_notional_units, max(price, 1)))

    def _size(self, qty: int, price: int, room: int) -> int:
        """A level's quantity: raised to the minimum for its price, trimmed to the room left
        on its side (and maxQty); 0 (drop) when the minimum does not fit."""
        if qty <= 0:
            return 0
        qty = max(qty, self.min_steps(price))
        if self.max_qty_steps is not None:
            qty = min(qty, self.max_qty_steps)
        qty = min(qty, room)
        return qty if qty >= self.min_steps(price) else 0

    def _skewed(self, qty: int, grows: bool) -> int:
        """Sizes on the side that grows the excess (position − target) shrink by
        sizeSkew × |excess| / Qmax."""
        q = self.excess
        if not grows or not q:
            return qty
        factor = 1 - self.size_skew * abs(q) / self.max_steps
        return int((qty * max(factor, Decimal(0))).to_integral_value(ROUND_FLOOR))

    def _price_ok(self, price: int) -> bool:
        return price >= self.min_price and (self.max_price is None or price <= self.max_price)

    def _compute(self, book: BookTop, ts: int) -> tuple[list[QuoteLevel], dict]:
        c = self.config
        best_bid, best_ask = book.bids[0][0], book.asks[0][0]
        mid = (best_bid + best_ask) / 2

        micro = microprice(book.bids, book.asks)
        imb = imbalance(book.bids, book.asks, c.imbalance_levels)
        flow = math.tanh(self.flow.at(ts) / self.flow_scale_steps)
        funding = max(-1.0, min(1.0, self.funding_rate / c.funding_scale))
        signal = (c.micro_weight * (micro - mid) + c.imbalance_ticks * imb
                  + c.flow_ticks * flow - c.funding_ticks * funding)
        fair = mid + signal

        pricing = self._pricing(mid)
        half = max(pricing.half_spread, 0.5)
        cap = float(c.max_half_spread_ticks)
        skew = max(-cap, min(cap, pricing.skew))
        reservation = fair + skew

        # top of the ladder: the model's price, at most improveTicks inside the touch, never
        # crossing; each step only lowers a bid or raises an ask, so bid < ask survives
        bid0 = math.floor(reservation - half)
        ask0 = math.ceil(reservation + half)
        if ask0 <= bid0:
            ask0 = bid0 + 1
        bid0 = min(bid0, best_bid + c.improve_ticks, best_ask - 1)
        ask0 = max(ask0, best_ask - c.improve_ticks, best_bid + 1)

        bids, asks = self._side(BUY, bid0, ts), self._side(SELL, ask0, ts)
        levels = bids + asks
        tp = self._take_profit(best_bid, best_ask, levels)
        if tp is not None:
            levels.append(tp)

        tick = float(self.spec.tick_size)
        reasons = {
            "model": c.model,
            "fair": round(fair * tick, 6),
            "mid": round(mid * tick, 6),
            "reservation": round(reservation * tick, 6),
            "halfSpreadTicks": round(half, 3),
            "skewTicks": round(skew, 3) + 0.0,
            "signalTicks": round(signal, 3),
            "volTicks": round(self.vol.ticks, 3),
            "microprice": round(micro * tick, 6),
            "imbalance": round(imb, 4),
            "flow": round(flow, 4),
            "funding": self.funding_rate,
            "position": self._qty_text(),
            "refreshMs": round(self.refresh_ms(mid)),
        }
        if self.entry is not None and self.position:
            reasons["entry"] = round(self.entry * tick, 6)
        if self.target:
            reasons["target"] = self._qty_text(self.target)
        return levels, reasons

    def _side(self, side: str, top: int, ts: int) -> list[QuoteLevel]:
        """One side's ladder (b0..bN or a0..aN) and its static order (bS/aS)."""
        c = self.config
        sign = -1 if side == BUY else 1  # direction away from the touch
        prefix = "b" if side == BUY else "a"
        grows = (self.excess >= 0) if side == BUY else (self.excess <= 0)  # moves off target
        room = self.max_steps - self.position if side == BUY else self.max_steps + self.position
        room = max(room, 0)
        out: list[QuoteLevel] = []
        deepest = top
        for i in range(c.levels):
            price = top + sign * i * c.level_spacing_ticks
            deepest = price
            if not self._price_ok(price):
                break
            qty = self._size(self._skewed(self.level_steps, grows), price, room)
            if qty:
                out.append(QuoteLevel(side, price, qty, f"{prefix}{i}"))
                room -= qty
        static = self._static_level(side, deepest + sign * c.static_ticks, deepest, grows, room,
                                    ts)
        if static is not None:
            out.append(static)
        return out

    def _static_level(self, side: str, target: int, deepest: int, grows: bool, room: int,
                      ts: int) -> QuoteLevel | None:
        """The parked order keeps its price and size until staticRefresh ms have passed, or
        the ladder moved behind it, or it no longer fits the room; then it is re-placed."""
        if not self.static_steps or (self._take_profit_qty() and not grows):
            self._static[side] = None  # the reducing side's slot goes to the take-profit
            return None
        kept = self._static[side]
        if kept is not None:
            level, placed = kept
            behind = level.price <= deepest if side == BUY else level.price >= deepest
            if (behind and level.qty <= room and ts - placed < self.config.static_refresh
                    and self._price_ok(level.price)):
                return level
        self._static[side] = None
        if not self._price_ok(target):
            return None
        qty = self._size(self._skewed(self.static_steps, grows), target, room)
        if not qty:
            return None
        level = QuoteLevel(side, target, qty, "bS" if side == BUY else "aS")
        self._static[side] = (level, ts)
        return level

    def _take_profit_qty(self) -> int:
        """The take-profit's size: the excess over the target, when closing it reduces the
        position (a reduce-only order cannot build one), at most the whole position."""
        p, q = self.position, self.excess
        if not self.config.take_profit_ticks or not p or not q or (p > 0) != (q > 0):
            return 0
        return min(abs(p), abs(q))

    def _take_profit(self, best_bid: int, best_ask: int,
                     levels: list[QuoteLevel]) -> QuoteLevel | None:
        """A reduce-only order for the excess over the target (the whole position when the
        target is flat) at entry ± takeProfitTicks, kept on the passive side of the book and
        of our own quotes."""
        n = self.config.take_profit_ticks
        qty = self._take_profit_qty()
        if not qty or self.entry is None:
            return None
        if self.max_qty_steps is not None:
            qty = min(qty, self.max_qty_steps)
        if self.position > 0:
            bids = [lv.price for lv in levels if lv.side == BUY]
            price = max(math.ceil(self.entry) + n, best_bid + 1, max(bids, default=0) + 1)
            side = SELL
        else:
            asks = [lv.price for lv in levels if lv.side == SELL]
            price = min(math.floor(self.entry) - n, best_ask - 1,
                        min(asks, default=best_ask) - 1)
            side = BUY
        if not self._price_ok(price) or qty < self.min_steps(price):
            return None
        return QuoteLevel(side, price, qty, "tp", reduce_only=True)

    def _qty_text(self, steps: int | None = None) -> str:
        steps = self.position if steps is None else steps
        text = self.spec.qty_str(abs(steps))
        return "-" + text if steps < 0 else text


def make_strategy(spec: SymbolSpec, config: StrategyConfig,
                  inventory: InventoryConfig | None = None) -> Strategy:
    """The strategy for one symbol with its validated settings (`symbols.<SYMBOL>.strategy`,
    and `symbols.<SYMBOL>.inventory` for targetPosition; without it the target is flat)."""
    return Strategy(spec, config, inventory)
