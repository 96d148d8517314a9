"""Risk guards: small objects that veto, shrink or reprice the strategy's desired quote, and the
engine that feeds them and keeps the mode (normal → reduce_only → halted → cooldown → normal).

Pure: every method takes the time it needs as an argument (`BookTop.ts`/`recv_ts`, `OwnFill.ts`,
`now_ms`); nothing here reads a clock, a socket, a file or an env var. Prices are integer ticks,
quantities integer steps, money Decimal (or an exact Fraction inside the ledger). The guards,
their parameters and the state machine are described in docs/risk.md.

Two kinds of guards:

- level guards (`LevelGuard`): `check(levels, engine, now_ms)` returns the levels it lets
  through (possibly shrunk, repriced, marked reduce-only) and a `RiskEvent` per act; the
  engine runs them in order, so they compose;
- halt triggers (kill switch, stop-loss, shock): checked on every book, fill and quote; when one
  fires the engine goes `halted`, the shell cancels everything, and `emergency_orders` gives the
  reduce-only IOC orders that flatten within the slippage bound.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

from mmkit.model import BUY, SELL, BookTop, OwnFill, Quote, QuoteLevel, RiskEvent
from mmkit.symbols import SymbolSpec

if TYPE_CHECKING:
    from mmkit.config import InventoryConfig, RiskConfig

NORMAL, REDUCE_ONLY, HALTED, COOLDOWN = "normal", "reduce_only", "halted", "cooldown"
MODES = (NORMAL, REDUCE_ONLY, HALTED, COOLDOWN)
DAY_MS = 86_400_000
EMERGENCY_TAG = "em"


def _frac_to_dec(value: Fraction) -> Decimal:
    return Decimal(value.numerator) / Decimal(value.denominator)


# --- limits: the config in ticks, steps and exact fractions --------------------------------------

@dataclass(frozen=True)
class Limits:
    """The guards' parameters in the core's units (see `Limits.from_config`)."""

    max_position: int  # steps
    reduce_only_threshold: Fraction  # of max_position
    max_order_qty: int  # steps
    max_order_notional: Decimal  # quote asset
    max_open_orders: int
    daily_notional: Decimal  # quote asset: dailyMax × accountEquity
    max_orders_per_window: int
    order_rate_window_ms: int
    vwap_deviation: Fraction  # fraction of the reference (bps / 10_000)
    vwap_window_ms: int
    max_book_age_ms: int
    kill_switch_loss: Fraction  # quote asset
    stop_loss: Fraction  # fraction of the entry price (pct / 100)
    shock: Fraction  # fraction of the mid (bps / 10_000)
    shock_window_ms: int
    cooldown_ms: int
    emergency_retry_ms: int
    slippage: Fraction  # fraction of the mid (pct / 100)
    close_reprice_ticks: int

    @classmethod
    def from_config(cls, spec: SymbolSpec, risk: RiskConfig,
                    inventory: InventoryConfig) -> Limits:
        """From `mmkit.config.RiskConfig` and `InventoryConfig`; base-asset amounts are rounded
        down to the step (a limit never grows by rounding)."""
        return cls(
            max_position=spec.round_qty(risk.max_position),
            reduce_only_threshold=Fraction(inventory.reduce_only_threshold),
            max_order_qty=spec.round_qty(risk.max_order_qty),
            max_order_notional=risk.max_order_notional,
            max_open_orders=risk.max_open_orders,
            daily_notional=risk.daily_max * risk.account_equity,
            max_orders_per_window=risk.max_orders_per_window,
            order_rate_window_ms=risk.order_rate_window_ms,
            vwap_deviation=Fraction(risk.max_vwap_deviation_bps) / 10_000,
            vwap_window_ms=risk.vwap_window_ms,
            max_book_age_ms=risk.max_book_age_ms,
            kill_switch_loss=Fraction(risk.kill_switch_loss),
            stop_loss=Fraction(risk.stop_loss_pct) / 100,
            shock=Fraction(risk.max_drift) / 10_000,
            shock_window_ms=risk.shock_window_ms,
            cooldown_ms=risk.cooldown_ms,
            emergency_retry_ms=risk.emergency_retry_ms,
            slippage=Fraction(inventory.reduce_only_max_slippage_pct) / 100,
            close_reprice_ticks=inventory.close_reprice_ticks,
        )


# --- the ledger: position, average entry, realized PnL and fees ----------------------------------

@dataclass
class Ledger:
    """Average-cost accounting in exact units. `entry` is the average entry price in ticks (a
    Fraction, exact), `realized` the realized PnL in the quote asset (Fraction, exact), `fees`
    the commissions paid in the quote asset (Decimal; negative for rebates); commissions in
    another asset (e.g. BNB) are kept apart in `other_fees` and not converted."""

    unit: Fraction  # the quote-asset value of one tick × one step
    position: int = 0  # signed steps
    entry: Fraction | None = None  # ticks; None when flat (or not known yet)
    realized: Fraction = Fraction(0)
    fees: Decimal = Decimal(0)
    other_fees: dict[str, Decimal] = field(default_factory=dict)
    _fees_exact: Fraction = Fraction(0)  # `fees` as a Fraction, for `total` on every book

    def fill(self, side: str, price: int, qty: int) -> Fraction:
        """Book one fill; returns the PnL it realized (quote asset)."""
        signed = qty if side == BUY else -qty
        p = self.position
        if p != 0 and self.entry is None:
            self.entry = Fraction(price)  # an adopted position never valued: take this price
        if p == 0 or (p > 0) == (signed > 0):
            held = abs(p)
            self.entry = (self.entry * held + price * qty) / (held + qty) if held else \
                Fraction(price)
            self.position = p + signed
            return Fraction(0)
        closed = min(qty, abs(p))
        gain = (price - self.entry) * closed * (1 if p > 0 else -1) * self.unit
        self.realized += gain
        self.position = p + signed
        if self.position == 0:
            self.entry = None
        elif (self.position > 0) != (p > 0):
            self.entry = Fraction(price)  # the flip's remainder opens at this fill's price
        return gain

    def fee(self, amount: Decimal, asset: str, quote_assets: Sequence[str]) -> None:
        if asset in quote_assets or not asset:
            self.fees += amount
            self._fees_exact += Fraction(amount)
        else:
            self.other_fees[asset] = self.other_fees.get(asset, Decimal(0)) + amount

    def adopt(self, qty: int, mark: Fraction | None) -> None:
        """Take the venue's position. Realized PnL is not touched (the fills that made the
        difference are not known); a grown or new position is valued at `mark` (the mid) for
        the part we had not seen, a shrunk one keeps its average entry."""
        p = self.position
        if qty == p:
            return
        if qty == 0:
            self.entry = None
        elif p != 0 and (qty > 0) == (p > 0) and abs(qty) < abs(p):
            pass
        elif p != 0 and (qty > 0) == (p > 0) and self.entry is not None and mark is not None:
            self.entry = (self.entry * abs(p) + mark * (abs(qty) - abs(p))) / abs(qty)
        else:
            self.entry = mark
        self.position = qty

    def unrealized(self, mid: Fraction | None) -> Fraction:
        if not self.position or self.entry is None or mid is None:
            return Fraction(0)
        return (mid - self.entry) * self.position * self.unit

    def total(self, mid: Fraction | None) -> Fraction:
        """Realized + unrealized − fees in the quote asset (fees in other assets excluded)."""
        return self.realized - self._fees_exact + self.unrealized(mid)


# --- helpers for level guards ---------------------------------------------------------------------

def reducing(level: QuoteLevel, position: int) -> bool:
    """Does a fill of this level make |position| smaller (at first)?"""
    return (position > 0 and level.side == SELL) or (position < 0 and level.side == BUY)


def inner_first(levels: Sequence[QuoteLevel]) -> list[QuoteLevel]:
    """Bids highest first, asks lowest first (stable), bids before asks."""
    bids = sorted((lv for lv in levels if lv.side == BUY), key=lambda lv: -lv.price)
    asks = sorted((lv for lv in levels if lv.side == SELL), key=lambda lv: lv.price)
    return bids + asks


class LevelGuard:
    """A guard over the desired levels. Subclasses set `name` and implement `check`."""

    name = "guard"

    def check(self, levels: list[QuoteLevel], engine: RiskEngine,
              now_ms: int) -> tuple[list[QuoteLevel], list[RiskEvent]]:
        raise NotImplementedError

    def _shrunk(self, engine: RiskEngine, level: QuoteLevel, qty: int, why: str, ts: int,
                events: list[RiskEvent]) -> QuoteLevel | None:
        """`level` cut to `qty` steps, or None (dropped) when that leaves less than the
        symbol's minimum quantity or notional (reduce-only orders are exempt from the notional
        minimum, as on the venue)."""
        fmt = engine.spec.qty_str
        if qty >= level.qty:
            return level
        if qty <= 0 or not engine.tradable(level.price, qty, level.reduce_only):
            events.append(RiskEvent(self.name, "drop",
                                    f"{level.tag} {level.side} {fmt(level.qty)}: {why}", ts))
            return None
        events.append(RiskEvent(self.name, "shrink",
                                f"{level.tag} {fmt(level.qty)} -> {fmt(qty)}: {why}", ts))
        return replace(level, qty=qty)


class ReduceOnlyGuard(LevelGuard):
    """In reduce_only mode: only levels that reduce the position pass, marked reduce_only, and
    their total is capped at |position| (inner levels first)."""

    name = "reduce_only"

    def check(self, levels, engine, now_ms):
        if engine.mode != REDUCE_ONLY:
            return levels, []
        p, events, out = engine.position, [], []
        room = abs(p)
        for level in inner_first(levels):
            if not reducing(level, p):
                events.append(RiskEvent(self.name, "drop", f"{level.tag} {level.side} "
                                        f"{engine.spec.qty_str(level.qty)}: reduce-only, "
                                        f"position {engine.qty_text(p)}", now_ms))
                continue
            level = replace(level, reduce_only=True)
            kept = self._shrunk(engine, level, min(level.qty, room),
                                f"reduce-only, position {engine.qty_text(p)}", now_ms, events)
            if kept is not None:
                room -= kept.qty
                out.append(kept)
        return out, events


class ProfitableCloseGuard(LevelGuard):
    """In reduce_only mode, when the touch on the reducing side is better than the average
    entry, the innermost reducing order is put at the touch and held there: it is repriced
    only when the touch moves more than `close_reprice_ticks` away, the held price would cross
    the book (post-only reject), leaves the slippage bound around the mid, or stops being
    profitable."""

    name = "profitable_close"

    def __init__(self) -> None:
        self.held: dict[str, int] = {}  # side -> price ticks

    def reset(self) -> None:
        self.held.clear()

    def check(self, levels, engine, now_ms):
        p, entry, limits = engine.position, engine.ledger.entry, engine.limits
        bid, ask, mid = engine.best_bid, engine.best_ask, engine.mid
        if engine.mode != REDUCE_ONLY or not p or entry is None or None in (bid, ask, mid):
            self.held.clear()
            return levels, []
        side = SELL if p > 0 else BUY
        touch = ask if side == SELL else bid

        def good(price: int) -> bool:
            profitable = price > entry if side == SELL else price < entry
            posts = price > bid if side == SELL else price < ask
            near = abs(price - mid) <= limits.slippage * mid
            return profitable and posts and near

        if not good(touch):
            self.held.pop(side, None)
            return levels, []
        held = self.held.get(side)
        if held is None or not good(held) or abs(held - touch) > limits.close_reprice_ticks:
            held = touch
        self.held[side] = held
        out, events, done = [], [], False
        for level in inner_first(levels):
            if not done and level.side == side:
                done = True
                if level.price != held:
                    events.append(RiskEvent(self.name, "reduce_only", (
                        f"{level.tag} {level.side} {engine.spec.price_str(level.price)} -> "
                        f"{engine.spec.price_str(held)}: closing at a profit (entry "
                        f"{engine.price_text(entry)}), held at the touch until it moves "
                        f"> {limits.close_reprice_ticks} ticks"), now_ms))
                    level = replace(level, price=held)
            out.append(level)
        return out, events


class VwapGuard(LevelGuard):
    """Orders that grow the position may not buy more than `vwap_deviation` above, or sell
    more than it below, the reference: the VWAP of our fills in `vwap_window_ms`, or the mean
    mid over that window when we have no fills in it."""

    name = "vwap"

    def check(self, levels, engine, now_ms):
        ref, source = engine.vwap_reference(now_ms)
        if ref is None:
            return levels, []
        dev = engine.limits.vwap_deviation
        high, low = ref * (1 + dev), ref * (1 - dev)
        out, events = [], []
        for level in levels:
            if not reducing(level, engine.position) and (
                    (level.side == BUY and level.price > high)
                    or (level.side == SELL and level.price < low)):
                events.append(RiskEvent(self.name, "drop", (
                    f"{level.tag} {level.side} {engine.spec.price_str(level.price)}: beyond "
                    f"{source} VWAP {engine.price_text(ref)} ± {_bps(dev)} bps"), now_ms))
                continue
            out.append(level)
        return out, events


class OrderSizeGuard(LevelGuard):
    """No order above `max_order_qty` steps or `max_order_notional` of the quote asset."""

    name = "order_size"

    def check(self, levels, engine, now_ms):
        limits, spec = engine.limits, engine.spec
        out, events = [], []
        for level in levels:
            by_notional = math.floor(Fraction(limits.max_order_notional)
                                     / Fraction(spec.notional(level.price, 1)))
            cap = min(limits.max_order_qty, by_notional)
            why = (f"max order {spec.qty_str(limits.max_order_qty)} / "
                   f"{limits.max_order_notional} {spec.quote_asset}")
            kept = self._shrunk(engine, level, min(level.qty, cap), why, now_ms, events)
            if kept is not None:
                out.append(kept)
        return out, events


class DailyNotionalGuard(LevelGuard):
    """The notional filled in the current UTC day may not exceed `daily_notional`
    (dailyMax × accountEquity): the part of each side's orders that would grow the position is
    capped by what is left of the day's budget; the reducing part always passes."""

    name = "daily_notional"

    def check(self, levels, engine, now_ms):
        limits, spec = engine.limits, engine.spec
        left = limits.daily_notional - engine.daily_notional
        why = (f"traded {engine.daily_notional:.2f} of {limits.daily_notional} "
               f"{spec.quote_asset} today")
        out, events = [], []
        budget = {BUY: left, SELL: left}
        reducible = {BUY: max(0, -engine.position), SELL: max(0, engine.position)}
        for level in inner_first(levels):
            free = min(level.qty, reducible[level.side])
            grow = level.qty - free
            per_step = spec.notional(level.price, 1)
            allowed = max(0, math.floor(Fraction(budget[level.side]) / Fraction(per_step)))
            kept = self._shrunk(engine, level, free + min(grow, allowed), why, now_ms, events)
            if kept is None:
                continue
            used_free = min(kept.qty, reducible[level.side])
            reducible[level.side] -= used_free
            budget[level.side] -= per_step * (kept.qty - used_free)
            out.append(kept)
        return out, events


class MaxPositionGuard(LevelGuard):
    """Position plus the resting orders of one side never exceed `max_position`:
    position + bids ≤ max and −position + asks ≤ max; inner levels keep their size first."""

    name = "max_position"

    def check(self, levels, engine, now_ms):
        limits, p = engine.limits, engine.position
        room = {BUY: limits.max_position - p, SELL: limits.max_position + p}
        why = (f"position {engine.qty_text(p)} of max "
               f"{engine.spec.qty_str(limits.max_position)}")
        out, events = [], []
        for level in inner_first(levels):
            kept = self._shrunk(engine, level, min(level.qty, room[level.side]), why, now_ms,
                                events)
            if kept is not None:
                room[level.side] -= kept.qty
                out.append(kept)
        return out, events


class OpenOrdersGuard(LevelGuard):
    """At most `max_open_orders` levels: the ones nearest the mid stay."""

    name = "max_open_orders"

    def check(self, levels, engine, now_ms):
        limit = engine.limits.max_open_orders
        if len(levels) <= limit:
            return levels, []
        mid = engine.mid
        ranked = sorted(levels, key=lambda lv: abs(lv.price - mid)) if mid is not None \
            else list(levels)
        dropped = ranked[limit:]
        keep = {id(lv) for lv in ranked[:limit]}
        events = [RiskEvent(self.name, "drop", f"{lv.tag} {lv.side} "
                            f"{engine.spec.price_str(lv.price)}: more than {limit} orders",
                            now_ms) for lv in dropped]
        return [lv for lv in levels if id(lv) in keep], events


def default_level_guards() -> list[LevelGuard]:
    """The level guards in the order they run: what the mode allows first, then prices, then
    sizes, then the total on each side."""
    return [ReduceOnlyGuard(), ProfitableCloseGuard(), VwapGuard(), OrderSizeGuard(),
            DailyNotionalGuard(), MaxPositionGuard(), OpenOrdersGuard()]


def _bps(fraction: Fraction) -> str:
    return f"{float(fraction * 10_000):g}"


# --- the engine -----------------------------------------------------------------------------------

class _Window:
    """(ts, value, weight) samples in a time window with running sums: a weighted mean. Values
    are integers in units of 1/`scale` tick (exact, and much cheaper than Fractions)."""

    def __init__(self, span_ms: int, scale: int = 1):
        self.span = span_ms
        self.scale = scale
        self.items: deque[tuple[int, int, int]] = deque()
        self.sum = 0
        self.weight = 0

    def add(self, ts: int, value: int, weight: int = 1) -> None:
        self.items.append((ts, value, weight))
        self.sum += value * weight
        self.weight += weight

    def prune(self, now: int) -> None:
        while self.items and self.items[0][0] <= now - self.span:
            _, value, weight = self.items.popleft()
            self.sum -= value * weight
            self.weight -= weight

    def mean(self) -> Fraction | None:
        return Fraction(self.sum, self.weight * self.scale) if self.weight else None


class _Range:
    """The highest and lowest value seen in a time window (monotonic deques)."""

    def __init__(self, span_ms: int):
        self.span = span_ms
        self.high: deque[tuple[int, int]] = deque()
        self.low: deque[tuple[int, int]] = deque()

    def add(self, ts: int, value: int) -> tuple[int, int]:
        while self.high and self.high[-1][1] <= value:
            self.high.pop()
        while self.low and self.low[-1][1] >= value:
            self.low.pop()
        self.high.append((ts, value))
        self.low.append((ts, value))
        for dq in (self.high, self.low):
            while dq[0][0] < ts - self.span:
                dq.popleft()
        return self.low[0][1], self.high[0][1]

    def clear(self) -> None:
        self.high.clear()
        self.low.clear()


class RiskEngine:
    """Feeds the guards and keeps the mode. `mode` is normal | reduce_only | halted | cooldown.

    The shell calls `on_book`, `on_fill`, `on_position` and `on_order_sent` as things happen,
    `apply` on every quote, and — while `mode == "halted"` — cancels everything and sends
    `emergency_orders`. Methods that return events also return those raised by earlier calls
    that could not (`on_position`, `emergency_orders`)."""

    def __init__(self, spec: SymbolSpec, limits: Limits,
                 guards: Sequence[LevelGuard] | None = None):
        self.spec = spec
        self.limits = limits
        self.guards = list(default_level_guards() if guards is None else guards)
        self.mode = NORMAL
        self.halt_reason: str | None = None
        self.ledger = Ledger(Fraction(spec.tick_size) * Fraction(spec.step_size))
        self.book: BookTop | None = None
        self.mid: Fraction | None = None
        self.day: int | None = None
        self.daily_notional = Decimal(0)
        self._day_start_pnl = Fraction(0)
        # today's fills from before this process (`seed_day`): trade id → (notional, PnL)
        self._seeded: dict[int, tuple[Decimal, Fraction]] = {}
        self._sticky = False  # a kill-switch halt lasts until the next UTC day
        self._cooldown_until: int | None = None
        self._last_emergency: int | None = None
        self._orders: deque[tuple[int, int]] = deque()
        self._fills = _Window(limits.vwap_window_ms)
        self._mids = _Window(limits.vwap_window_ms, scale=2)  # mids in half ticks
        self._range = _Range(limits.shock_window_ms)
        self._pending: list[RiskEvent] = []
        self._last_acts: set[tuple[str, str, str]] = set()
        self._quote_assets = (spec.quote_asset, spec.margin_asset)

    # -- views ------------------------------------------------------------------------------

    @property
    def position(self) -> int:
        return self.ledger.position

    @property
    def avg_entry(self) -> Decimal | None:
        """The average entry price (Decimal, quote asset), None when flat."""
        entry = self.ledger.entry
        return None if entry is None else _frac_to_dec(entry) * self.spec.tick_size

    @property
    def realized_pnl(self) -> Decimal:
        return _frac_to_dec(self.ledger.realized)

    @property
    def fees(self) -> Decimal:
        return self.ledger.fees

    @property
    def unrealized_pnl(self) -> Decimal:
        return _frac_to_dec(self.ledger.unrealized(self.mid))

    @property
    def daily_pnl(self) -> Decimal:
        """Realized + unrealized − fees since 00:00 UTC, at the last mid: since start, plus
        the realized PnL − fees of the day's earlier fills given to `seed_day`."""
        return _frac_to_dec(self._daily_pnl())

    @property
    def best_bid(self) -> int | None:
        return self.book.best_bid if self.book else None

    @property
    def best_ask(self) -> int | None:
        return self.book.best_ask if self.book else None

    def qty_text(self, steps: int) -> str:
        return ("-" if steps < 0 else "") + self.spec.qty_str(abs(steps))

    def price_text(self, ticks: Fraction) -> str:
        value = _frac_to_dec(Fraction(ticks)) * self.spec.tick_size
        return f"{value:.{self.spec.price_decimals + 2}f}"

    def tradable(self, price: int, qty: int, reduce_only: bool) -> bool:
        """At least the minimum quantity, and the minimum notional unless reduce-only."""
        if qty < max(1, self.spec.to_steps(self.spec.min_qty) if self.spec.min_qty else 1):
            return False
        return reduce_only or self.spec.notional(price, qty) >= self.spec.min_notional

    def vwap_reference(self, now_ms: int) -> tuple[Fraction | None, str]:
        """The VWAP of our fills in the window (ticks), else the mean mid; and which it is."""
        self._fills.prune(now_ms)
        vwap = self._fills.mean()
        if vwap is not None:
            return vwap, "fill"
        self._mids.prune(now_ms)
        return self._mids.mean(), "market"

    def _daily_pnl(self) -> Fraction:
        return self.ledger.total(self.mid) - self._day_start_pnl

    # -- events in --------------------------------------------------------------------------

    def on_book(self, book: BookTop) -> list[RiskEvent]:
        """Mark the position at the mid; feed the staleness, shock and VWAP references."""
        events = self._take_pending() + self._roll_day(book.ts)
        self.book = book
        if book.stale or book.best_bid is None or book.best_ask is None:
            return events
        mid2 = book.best_bid + book.best_ask  # half ticks: exact integer arithmetic
        self.mid = Fraction(mid2, 2)
        if self.ledger.position and self.ledger.entry is None:
            self.ledger.entry = self.mid  # an adopted position, valued when first seen
        self._mids.add(book.ts, mid2)
        self._mids.prune(book.ts)
        low2, high2 = self._range.add(book.ts, mid2)
        if self.mode != HALTED and high2 - low2 > self.limits.shock * low2:
            low, high = Fraction(low2, 2), Fraction(high2, 2)
            events += self._halt("shock", (
                f"mid moved {_bps((high - low) / low)} bps ({self.price_text(low)} .. "
                f"{self.price_text(high)}) within {self.limits.shock_window_ms} ms, max "
                f"{_bps(self.limits.shock)}"), book.ts)
            self._range.clear()
        events += self._check_losses(book.ts)
        return events + self._refresh_mode(book.ts)

    def on_fill(self, fill: OwnFill) -> list[RiskEvent]:
        """Position, average entry, realized PnL, fees, the day's notional and the fill VWAP."""
        events = self._take_pending() + self._roll_day(fill.ts)
        seeded = self._seeded.pop(fill.trade_id, None)
        if seeded is not None:  # seeded at start and now delivered: counted once, here
            self.daily_notional -= seeded[0]
            self._day_start_pnl += seeded[1]
        self.ledger.fill(fill.side, fill.price, fill.qty)
        self.ledger.fee(fill.commission, fill.commission_asset, self._quote_assets)
        self.daily_notional += self.spec.notional(fill.price, fill.qty)
        self._fills.add(fill.ts, fill.price, fill.qty)
        events += self._check_losses(fill.ts)
        return events + self._refresh_mode(fill.ts)

    def on_position(self, qty: int, ts: int) -> None:
        """The venue's position (signed steps) wins over ours; see `Ledger.adopt`."""
        self._pending += self._roll_day(ts)
        self.ledger.adopt(qty, self.mid)
        self._pending += self._refresh_mode(ts)

    def on_order_sent(self, ts: int, count: int = 1) -> None:
        """Orders placed or modified at `ts` (cancels are not counted)."""
        self._orders.append((ts, count))

    def seed_day(self, fills: Iterable[OwnFill], now_ms: int) -> list[RiskEvent]:
        """Today's fills from before this process started (GET /fapi/v1/userTrades since
        00:00 UTC of `now_ms`), so a restart does not reset the daily budgets: their notional
        counts against dailyMax, their realized PnL (the venue's `realizedPnl`) minus
        commissions in the quote or margin asset against the kill switch. Fills of another
        UTC day or symbol, and trade ids already seeded, are left out. Position, entry and
        the VWAP are not touched (the venue's position comes through `on_position`). A seeded
        trade that later reaches `on_fill` is counted once, there. Returns the events it
        causes: a day already past killSwitchLoss halts again, until 00:00 UTC."""
        events = self._take_pending() + self._roll_day(now_ms)
        for fill in fills:
            if (fill.symbol != self.spec.symbol or fill.ts // DAY_MS != self.day
                    or fill.trade_id in self._seeded):
                continue
            pnl = Fraction(fill.realized_pnl)
            if fill.commission_asset in self._quote_assets or not fill.commission_asset:
                pnl -= Fraction(fill.commission)
            notional = self.spec.notional(fill.price, fill.qty)
            self._seeded[fill.trade_id] = (notional, pnl)
            self.daily_notional += notional
            self._day_start_pnl -= pnl
        events += self._check_losses(now_ms)
        return events + self._refresh_mode(now_ms)

    def new_day(self, ts: int) -> list[RiskEvent]:
        """Reset the daily counters (notional traded, PnL baseline) at 00:00 UTC of `ts`; a
        kill-switch halt becomes an ordinary one (flatten, cool down, resume)."""
        self.day = ts // DAY_MS
        self.daily_notional = Decimal(0)
        self._day_start_pnl = self.ledger.total(self.mid)
        self._seeded.clear()
        if not self._sticky:
            return []
        self._sticky = False
        return self._refresh_mode(ts)

    def halt(self, reason: str, ts: int) -> list[RiskEvent]:
        """An operator's halt (a signal, a failed check in the shell): like a stop-loss halt,
        it cancels, flattens, cools down and resumes."""
        return self._halt("manual", reason, ts)

    # -- decisions --------------------------------------------------------------------------

    def apply(self, quote: Quote, now_ms: int) -> tuple[Quote, list[RiskEvent]]:
        """The quote the guards allow, and what they did. Events of a guard that acts the same
        way on consecutive quotes are reported once."""
        events = self._take_pending() + self._roll_day(now_ms)
        events += self._check_losses(now_ms)
        events += self._refresh_mode(now_ms)
        if self.mode in (HALTED, COOLDOWN):
            self._last_acts = set()
            return self._empty(quote, f"risk {self.mode}: {self.halt_reason}"), events
        acts: list[RiskEvent] = []
        paused = None
        blocked = self._latency(now_ms) or self._rate(now_ms)
        if blocked:
            acts.append(blocked)
            paused = f"risk: {blocked.guard}"
            levels: list[QuoteLevel] = []
        else:
            levels = list(quote.levels)
            for guard in self.guards:
                levels, acted = guard.check(levels, self, now_ms)
                acts += acted
        keys = {(e.guard, e.action, e.detail) for e in acts}
        events += [e for e in acts if (e.guard, e.action, e.detail) not in self._last_acts]
        self._last_acts = keys
        if paused:
            return self._empty(quote, paused), events
        return Quote(quote.symbol, quote.ts, levels, quote.reasons, quote.paused), events

    def emergency_orders(self, book: BookTop, now_ms: int) -> list[QuoteLevel]:
        """While halted with a position: one reduce-only IOC limit order that takes the
        visible depth on the far side, walking the levels from the touch and stopping at the
        slippage bound (reduceOnlyMaxSlippagePct of the mid); when that depth is not enough,
        the whole position at the bound itself; at most once per emergencyRetryMs. Nothing on
        a stale or old book: the bound could not be trusted."""
        self._pending += self._roll_day(now_ms) + self._refresh_mode(now_ms)
        p = self.position
        if self.mode != HALTED or not p or book.stale:
            return []
        if now_ms - book.recv_ts > self.limits.max_book_age_ms:
            return []
        if self._last_emergency is not None and \
                now_ms - self._last_emergency < self.limits.emergency_retry_ms:
            return []
        side = SELL if p > 0 else BUY
        depth = book.bids if side == SELL else book.asks
        if book.best_bid is not None and book.best_ask is not None:
            ref = Fraction(book.best_bid + book.best_ask, 2)
        elif depth:
            ref = Fraction(depth[0][0])
        elif self.mid is not None:  # no depth on our side: the last mid we saw
            ref = Fraction(self.mid)
        else:
            return []
        if side == SELL:
            bound = math.ceil(ref * (1 - self.limits.slippage))
        else:
            bound = math.floor(ref * (1 + self.limits.slippage))
        left, qty, worst = abs(p), 0, None
        for price, size in depth:
            if (side == SELL and price < bound) or (side == BUY and price > bound):
                break
            take = min(size, left)
            if take > 0:
                qty, left, worst = qty + take, left - take, price
            if not left:
                break
        if left:
            # Not enough visible depth (or none): the rest goes as an IOC at the slippage
            # bound itself, mid ± reduceOnlyMaxSlippagePct; it takes whatever rests up to
            # the bound, visible or not, and never worse.
            qty, worst = abs(p), bound
        self._last_emergency = now_ms
        return [QuoteLevel(side, worst, qty, EMERGENCY_TAG, "IOC", True)]

    # -- mode machine -------------------------------------------------------------------------

    def _halt(self, guard: str, detail: str, ts: int, sticky: bool = False) -> list[RiskEvent]:
        if self.mode == HALTED and (self._sticky or not sticky):
            return []
        self.mode = HALTED
        self.halt_reason = guard
        self._sticky = self._sticky or sticky
        self._cooldown_until = None
        self._last_emergency = None
        then = "until the next UTC day" if self._sticky else \
            f"then cool down {self.limits.cooldown_ms} ms once flat"
        return [RiskEvent(guard, "halt", (
            f"{detail}: cancel all, then reduce-only IOC orders within "
            f"{_frac_to_dec(self.limits.slippage * 100).normalize():f}% of the mid; halted "
            f"{then}"), ts)]

    def _check_losses(self, ts: int) -> list[RiskEvent]:
        events = []
        pnl = self._daily_pnl()
        if pnl <= -self.limits.kill_switch_loss:
            events += self._halt("kill_switch", (
                f"daily PnL {_frac_to_dec(pnl):.4f} <= -{self.limits.kill_switch_loss} "
                f"{self.spec.quote_asset} (realized {self.realized_pnl:.4f}, unrealized "
                f"{self.unrealized_pnl:.4f}, fees {self.fees})"), ts, sticky=True)
        entry, p, mid = self.ledger.entry, self.position, self.mid
        if self.mode != HALTED and p and entry is not None and mid is not None:
            adverse = (entry - mid) / entry if p > 0 else (mid - entry) / entry
            if adverse >= self.limits.stop_loss:
                events += self._halt("stop_loss", (
                    f"mid {self.price_text(mid)} is {float(adverse * 100):.3f}% against the "
                    f"entry {self.price_text(entry)} of {self.qty_text(p)}, stop at "
                    f"{_frac_to_dec(self.limits.stop_loss * 100).normalize():f}%"), ts)
        return events

    def _refresh_mode(self, ts: int) -> list[RiskEvent]:
        events = []
        if self.mode == HALTED and not self.position and not self._sticky:
            self.mode = COOLDOWN
            self._cooldown_until = ts + self.limits.cooldown_ms
            events.append(RiskEvent("cooldown", "halt", (
                f"flat after the {self.halt_reason} halt: no orders until "
                f"{self._cooldown_until} ({self.limits.cooldown_ms} ms)"), ts))
        if self.mode == COOLDOWN and ts >= (self._cooldown_until or 0):
            self.mode = NORMAL
            events.append(RiskEvent("cooldown", "resume",
                                    f"cooldown after the {self.halt_reason} halt over", ts))
            self.halt_reason = None
            self._range.clear()
        if self.mode in (NORMAL, REDUCE_ONLY):
            p, limits = self.position, self.limits
            heavy = p != 0 and abs(p) >= limits.reduce_only_threshold * limits.max_position
            if heavy and self.mode == NORMAL:
                self.mode = REDUCE_ONLY
                events.append(RiskEvent("reduce_only", "reduce_only", (
                    f"{self._reduce_only_detail()}: only reducing orders, reduceOnly=true; the "
                    "order manager cancels the resting orders first, then places"), ts))
            elif not heavy and self.mode == REDUCE_ONLY:
                self.mode = NORMAL
                events.append(RiskEvent("reduce_only", "resume",
                                        f"{self._reduce_only_detail()}: both sides", ts))
        if self.mode != REDUCE_ONLY:
            for guard in self.guards:
                if isinstance(guard, ProfitableCloseGuard):
                    guard.reset()
        return events

    def _reduce_only_detail(self) -> str:
        limits = self.limits
        return (f"position {self.qty_text(self.position)}, threshold "
                f"{_frac_to_dec(limits.reduce_only_threshold).normalize():f} × max "
                f"{self.spec.qty_str(limits.max_position)}")

    def _roll_day(self, ts: int) -> list[RiskEvent]:
        if self.day is None:
            self.day = ts // DAY_MS
            return []
        if ts // DAY_MS > self.day:
            return self.new_day(ts)
        return []

    def _take_pending(self) -> list[RiskEvent]:
        events, self._pending = self._pending, []
        return events

    # -- blocking guards -----------------------------------------------------------------------

    def _latency(self, now_ms: int) -> RiskEvent | None:
        book, limit = self.book, self.limits.max_book_age_ms
        if book is None:
            why = "no book yet"
        elif book.stale:
            why = "the book is stale"
        elif now_ms - book.recv_ts > limit:
            why = f"the book was received {now_ms - book.recv_ts} ms ago (max {limit})"
        elif book.recv_ts - book.ts > limit:
            why = f"the book arrived {book.recv_ts - book.ts} ms after its event (max {limit})"
        else:
            return None
        return RiskEvent("data_latency", "cancel_all", f"{why}: cancel all, no new orders",
                         now_ms)

    def _rate(self, now_ms: int) -> RiskEvent | None:
        limits = self.limits
        while self._orders and self._orders[0][0] <= now_ms - limits.order_rate_window_ms:
            self._orders.popleft()
        sent = sum(count for _, count in self._orders)
        if sent < limits.max_orders_per_window:
            return None
        return RiskEvent("order_rate", "drop", (
            f"{sent} orders in the last {limits.order_rate_window_ms} ms (max "
            f"{limits.max_orders_per_window}): quotes pulled until the window frees up"),
            now_ms)

    @staticmethod
    def _empty(quote: Quote, paused: str) -> Quote:
        return Quote(quote.symbol, quote.ts, [], quote.reasons, paused)


def build_guards(spec: SymbolSpec, risk: RiskConfig,
                 inventory: InventoryConfig) -> RiskEngine:
    """The engine with the default guards for one symbol (`risk`: `mmkit.config.RiskConfig`,
    `inventory`: `mmkit.config.InventoryConfig`)."""
    return RiskEngine(spec, Limits.from_config(spec, risk, inventory))
