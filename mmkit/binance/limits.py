"""Client-side request limits: fixed windows aligned to venue time, as Binance counts them.

Binance counts request weight per IP in fixed one-minute windows and orders per account in
fixed 10-second and one-minute windows, and reports its own count in response headers
(X-MBX-USED-WEIGHT-1M, X-MBX-ORDER-COUNT-10S, X-MBX-ORDER-COUNT-1M). Each `WindowLimit` keeps
our count for its current window, takes the venue's count whenever a response carries one (the
venue also counts other processes on the same IP), and tells a caller how long to wait so a
request never takes the window past `limit * headroom`. Pure: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

INTERVAL_MS = {"SECOND": 1_000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}

# Binance's published defaults, used until exchangeInfo's rateLimits say otherwise.
DEFAULT_WEIGHT_PER_MINUTE = 2400
DEFAULT_ORDERS_PER_10S = 300
DEFAULT_ORDERS_PER_MINUTE = 1200


@dataclass
class WindowLimit:
    """A fixed window of `interval_ms` starting at multiples of it (venue time)."""

    name: str
    limit: int
    interval_ms: int
    headroom: float = 0.9
    used: int = 0
    window_start: int = field(default=0)

    @property
    def budget(self) -> int:
        """The most we let a window hold: a margin below the venue's limit for other clients
        on the same IP and for requests in flight."""
        return max(1, int(self.limit * self.headroom))

    def _roll(self, now_ms: int) -> None:
        start = now_ms - now_ms % self.interval_ms
        if start != self.window_start:
            self.window_start, self.used = start, 0

    def wait_ms(self, cost: int, now_ms: int) -> int:
        """How long to wait before a request of `cost` fits (0: send now)."""
        self._roll(now_ms)
        if self.used + cost <= self.budget or self.used == 0:
            return 0
        return self.window_start + self.interval_ms - now_ms

    def take(self, cost: int, now_ms: int) -> None:
        self._roll(now_ms)
        self.used += cost

    def observe(self, used: int, now_ms: int) -> None:
        """The venue's own count for the window containing `now_ms`; it wins when higher."""
        self._roll(now_ms)
        self.used = max(self.used, used)


@dataclass
class Limits:
    weight: WindowLimit
    orders: list[WindowLimit]

    @classmethod
    def defaults(cls, headroom: float = 0.9) -> Limits:
        return cls(
            WindowLimit("REQUEST_WEIGHT 1m", DEFAULT_WEIGHT_PER_MINUTE, 60_000, headroom),
            [WindowLimit("ORDERS 10s", DEFAULT_ORDERS_PER_10S, 10_000, headroom),
             WindowLimit("ORDERS 1m", DEFAULT_ORDERS_PER_MINUTE, 60_000, headroom)],
        )

    @classmethod
    def from_rate_limits(cls, rate_limits: list[dict[str, Any]], headroom: float = 0.9) -> Limits:
        """Seed from exchangeInfo's `rateLimits`; anything missing keeps Binance's default."""
        limits = cls.defaults(headroom)
        orders = []
        for entry in rate_limits:
            interval = INTERVAL_MS.get(str(entry.get("interval")), 0) * int(entry.get("intervalNum", 1))
            if not interval:
                continue
            kind = entry.get("rateLimitType")
            if kind == "REQUEST_WEIGHT" and interval == 60_000:
                limits.weight = WindowLimit("REQUEST_WEIGHT 1m", int(entry["limit"]), interval,
                                            headroom)
            elif kind == "ORDERS":
                label = f"ORDERS {interval // 1000}s" if interval < 60_000 else \
                    f"ORDERS {interval // 60_000}m"
                orders.append(WindowLimit(label, int(entry["limit"]), interval, headroom))
        if orders:
            limits.orders = orders
        return limits

    def order_window(self, interval_ms: int) -> WindowLimit | None:
        return next((w for w in self.orders if w.interval_ms == interval_ms), None)

    def wait_ms(self, weight: int, orders: int, now_ms: int) -> int:
        waits = [self.weight.wait_ms(weight, now_ms)]
        if orders:
            waits += [w.wait_ms(orders, now_ms) for w in self.orders]
        return max(waits)

    def take(self, weight: int, orders: int, now_ms: int) -> None:
        self.weight.take(weight, now_ms)
        for window in self.orders if orders else ():
            window.take(orders, now_ms)

    def observe_headers(self, headers: Any, now_ms: int) -> None:
        """Take the venue's counts from a response's X-MBX-* headers (case-insensitive)."""
        used = headers.get("x-mbx-used-weight-1m")
        if used is not None and str(used).isdigit():
            self.weight.observe(int(used), now_ms)
        for suffix, interval in (("10s", 10_000), ("1m", 60_000)):
            count = headers.get(f"x-mbx-order-count-{suffix}")
            window = self.order_window(interval)
            if count is not None and str(count).isdigit() and window is not None:
                window.observe(int(count), now_ms)
