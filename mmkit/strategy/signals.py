"""Market statistics the quoting models read: realised volatility of the mid, signed trade flow,
book imbalance and microprice, and the shock detector.

Pure and clock-free: every update carries the event's own time (exchange ms). Prices are in
ticks (a mid may be a half tick); these are statistics, so they are floats.
"""

from __future__ import annotations

import math
from collections import deque

from mmkit.model import Level

LN2 = math.log(2.0)
MIN_WEIGHT_MS = 1000.0  # the volatility estimate treats its first second as a full second


class EwmaVolatility:
    """Exponentially weighted realised volatility of the mid, in ticks per √second.

    `S` is the decayed sum of squared mid changes (ticks²) and `W` the decayed time they took
    (ms), both with time constant half_life / ln 2; the variance rate is S / max(W, 1 s), so a
    steady random walk of σ ticks/√s reads σ whatever the book's update rate.
    """

    def __init__(self, half_life_ms: int) -> None:
        self.tau = half_life_ms / LN2
        self.sum_sq = 0.0
        self.weight = 0.0
        self.last_mid: float | None = None
        self.last_ts: int | None = None

    def update(self, ts: int, mid: float) -> None:
        if self.last_ts is not None and self.last_mid is not None:
            dt = max(0, ts - self.last_ts)
            decay = math.exp(-dt / self.tau)
            change = mid - self.last_mid
            self.sum_sq = self.sum_sq * decay + change * change
            self.weight = self.weight * decay + dt
        if self.last_ts is None or ts >= self.last_ts:
            self.last_ts = ts
        self.last_mid = mid

    @property
    def ticks(self) -> float:
        """σ in ticks per √second."""
        return math.sqrt(self.sum_sq / max(self.weight, MIN_WEIGHT_MS) * 1000.0)


class TradeFlow:
    """Signed taker volume (buys +, sells −), in steps, decayed with a half-life."""

    def __init__(self, half_life_ms: int) -> None:
        self.tau = half_life_ms / LN2
        self.value = 0.0
        self.last_ts: int | None = None

    def _decay_to(self, ts: int) -> None:
        if self.last_ts is not None and ts > self.last_ts:
            self.value *= math.exp(-(ts - self.last_ts) / self.tau)
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    def add(self, ts: int, signed_qty: int) -> None:
        self._decay_to(ts)
        self.value += signed_qty

    def at(self, ts: int) -> float:
        """The decayed flow as of `ts` (no older than the last trade)."""
        self._decay_to(ts)
        return self.value


def microprice(bids: list[Level], asks: list[Level]) -> float:
    """Size-weighted mid of the top level: (bid·askQty + ask·bidQty) / (bidQty + askQty),
    in ticks; it leans towards the side whose queue is thinner (the side likely to go)."""
    (bid, bid_qty), (ask, ask_qty) = bids[0], asks[0]
    total = bid_qty + ask_qty
    if total <= 0:
        return (bid + ask) / 2
    return (bid * ask_qty + ask * bid_qty) / total


def imbalance(bids: list[Level], asks: list[Level], depth: int) -> float:
    """(Σ bid qty − Σ ask qty) / (Σ bid qty + Σ ask qty) over the top `depth` levels, in
    [−1, 1]; positive when buyers rest more size."""
    bid_qty = sum(qty for _, qty in bids[:depth])
    ask_qty = sum(qty for _, qty in asks[:depth])
    total = bid_qty + ask_qty
    return (bid_qty - ask_qty) / total if total > 0 else 0.0


class ShockDetector:
    """The range (max − min) of the mid over the last `window_ms`, in bps of the mid.

    Monotonic deques keep the window's max and min in O(1) amortised per update."""

    def __init__(self, window_ms: int) -> None:
        self.window = window_ms
        self.highs: deque[tuple[int, float]] = deque()
        self.lows: deque[tuple[int, float]] = deque()

    def update(self, ts: int, mid: float) -> float:
        """Record the mid and return the window's range in bps."""
        while self.highs and self.highs[-1][1] <= mid:
            self.highs.pop()
        self.highs.append((ts, mid))
        while self.lows and self.lows[-1][1] >= mid:
            self.lows.pop()
        self.lows.append((ts, mid))
        for side in (self.highs, self.lows):
            while side and ts - side[0][0] > self.window:
                side.popleft()
        high, low = self.highs[0][1], self.lows[0][1]
        return (high - low) / mid * 10_000 if mid > 0 else 0.0
