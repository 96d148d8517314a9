"""The Prometheus metrics `mmkit run` exports (names and meanings: docs/operations.md).

Counters come from the run's own output lines (`on_line`: every order, fill and risk line
passes through here) and from the REST client's per-request hook (`on_request`); gauges are
read from the live objects at scrape time (`RunCollector`), so the hot path pays for nothing
it does not need. Each run has its own registry, served on 127.0.0.1 by default.

Registering the run's `RunCollector` in `RunMetrics.registry` also tells `RunMetrics` which
runner it watches: the depth-fill metrics read the risk engine's book when an emergency
order's line passes (the mid and the visible depth the order was priced on).
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from fractions import Fraction
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# bps from the mid; the emergency orders' bound is reduceOnlyMaxSlippagePct (0.5 % = 50 bps)
SLIPPAGE_BUCKETS = (0, 1, 2, 5, 10, 20, 30, 40, 50, 75, 100, 200, 500)
RISK_MODES = ("normal", "reduce_only", "halted", "cooldown")
STREAMS = ("depth", "trades", "user")
TRACKED_EMERGENCY_ORDERS = 256  # emergency orders whose fills are still awaited, at most


class _RunRegistry(CollectorRegistry):
    """The run's registry: registering the RunCollector binds its runner to RunMetrics."""

    def __init__(self, metrics: RunMetrics):
        super().__init__()
        self._metrics = metrics

    def register(self, collector) -> None:
        super().register(collector)
        if isinstance(collector, RunCollector):
            self._metrics.runner = collector.runner


class RunMetrics:
    def __init__(self, symbol: str):
        self.symbol = symbol
        self.runner = None  # set when the RunCollector is registered
        self.registry = _RunRegistry(self)
        r = self.registry
        self.rest_requests = Counter("runner_rest_requests", "REST requests by endpoint and "
                                     "HTTP status (0: no response)", ["method", "endpoint",
                                                                       "status"], registry=r)
        self.rest_errors = Counter("runner_rest_errors", "REST requests answered with an error "
                                   "status or not at all", ["endpoint"], registry=r)
        self.rest_latency = Histogram("runner_rest_latency_seconds", "REST round trip by "
                                      "endpoint", ["method", "endpoint"], registry=r,
                                      buckets=LATENCY_BUCKETS)
        self.tick_to_order = Histogram("runner_tick_to_order_seconds", "Book line made (after "
                                       "decoding and applying the update) to the decision's "
                                       "first order request about to be sent",
                                       registry=r, buckets=LATENCY_BUCKETS)
        self.orders = Counter("runner_orders", "Order actions (new, modify, cancel, ack, "
                              "reject); reason: why a cancel, the code of a reject",
                              ["action", "reason"], registry=r)
        self.post_only_rejects = Counter("runner_post_only_rejects", "-5022: a post-only "
                                         "order would have taken (repriced a tick away)",
                                         registry=r)
        self.fills = Counter("runner_fills", "Our fills by liquidity", ["liquidity"],
                             registry=r)
        self.fill_volume = Counter("runner_fill_volume_quote", "Notional of our fills, in "
                                   "the quote asset", registry=r)
        self.fees = Counter("runner_fees_quote", "Commission paid, quote asset", registry=r)
        self.risk_events = Counter("runner_risk_events", "Risk guard actions", ["guard",
                                                                                 "action"],
                                   registry=r)
        # depthFill: the reduce-only IOC orders that flatten a halted position, priced by
        # walking the visible depth up to reduceOnlyMaxSlippagePct from the mid (docs/risk.md)
        self.depth_fill_orders = Counter("runner_depth_fill_orders", "Reduce-only IOC orders "
                                         "sent to flatten a halted position; depth: covered "
                                         "(the visible depth within the slippage bound held "
                                         "the order) or short (sent at the bound)",
                                         ["depth"], registry=r)
        for depth in ("covered", "short"):  # both series exist from the start
            self.depth_fill_orders.labels(depth)
        self.depth_fill_ordered = Counter("runner_depth_fill_ordered_base", "Quantity of "
                                          "those orders, base asset", registry=r)
        self.depth_fill_filled = Counter("runner_depth_fill_filled_base", "Quantity of "
                                         "those orders filled, base asset", registry=r)
        self.depth_fill_slippage = Histogram("runner_depth_fill_slippage_bps", "Each fill of "
                                             "those orders: bps from the mid of the book it "
                                             "was priced on, positive when worse",
                                             registry=r, buckets=SLIPPAGE_BUCKETS)
        # clientOrderId -> (side, the mid it was priced on, in the quote asset)
        self._emergency: OrderedDict[str, tuple[str, Fraction | None]] = OrderedDict()

    # -- hooks --------------------------------------------------------------------------------

    def on_request(self, method: str, path: str, status: int, seconds: float) -> None:
        self.rest_requests.labels(method, path, str(status)).inc()
        self.rest_latency.labels(method, path).observe(seconds)
        if status == 0 or status >= 400:
            self.rest_errors.labels(path).inc()

    def on_line(self, line: dict[str, Any]) -> None:
        kind = line.get("type")
        if kind in ("order_new", "order_modify", "order_cancel", "order_ack"):
            action = kind.removeprefix("order_")
            self.orders.labels(action, line.get("reason") or "").inc()
            if kind == "order_new" and line.get("reduceOnly") and \
                    line.get("timeInForce") == "IOC" and not line.get("dryRun"):
                self._emergency_order(line)
        elif kind == "order_reject":
            reason = "unknown" if line.get("unknown") else str(line.get("code"))
            self.orders.labels("reject", reason).inc()
            if line.get("code") == -5022:
                self.post_only_rejects.inc()
        elif kind == "fill":
            self.fills.labels("maker" if line.get("maker") else "taker").inc()
            self.fill_volume.inc(float(Decimal(line["price"]) * Decimal(line["qty"])))
            self.fees.inc(float(Decimal(line.get("commission") or "0")))
            if line.get("clientOrderId") in self._emergency:
                self._emergency_fill(line)
        elif kind == "risk":
            self.risk_events.labels(line["guard"], line["action"]).inc()

    def _emergency_order(self, line: dict[str, Any]) -> None:
        """An emergency order is sent: was the visible depth within its limit enough, and
        which mid was it priced on (the risk engine's book is the one it was made from)."""
        self.depth_fill_ordered.inc(float(Decimal(line["qty"])))
        risk = getattr(self.runner, "risk", None)
        book = getattr(risk, "book", None)
        mid = None
        covered = False
        if book is not None and risk.mid is not None:
            spec = self.runner.spec
            mid = Fraction(risk.mid) * Fraction(spec.tick_size)
            limit, qty = spec.to_ticks(line["price"]), spec.to_steps(line["qty"])
            if line["side"] == "SELL":
                visible = sum(size for price, size in book.bids if price >= limit)
            else:
                visible = sum(size for price, size in book.asks if price <= limit)
            covered = visible >= qty
        self.depth_fill_orders.labels("covered" if covered else "short").inc()
        self._emergency[line["clientOrderId"]] = (line["side"], mid)
        while len(self._emergency) > TRACKED_EMERGENCY_ORDERS:
            self._emergency.popitem(last=False)

    def _emergency_fill(self, line: dict[str, Any]) -> None:
        side, mid = self._emergency[line["clientOrderId"]]
        self.depth_fill_filled.inc(float(Decimal(line["qty"])))
        if mid:
            price = Fraction(Decimal(line["price"]))
            worse = mid - price if side == "SELL" else price - mid
            self.depth_fill_slippage.observe(float(worse / mid * 10_000))

    def serve(self, listen: str):
        host, _, port = listen.rpartition(":")
        server, thread = start_http_server(int(port), addr=host or "127.0.0.1",
                                           registry=self.registry)
        return server, thread


class RunCollector:
    """Gauges read from the runner at scrape time."""

    def __init__(self, runner):
        self.runner = runner

    def collect(self):
        runner = self.runner
        status = runner.status
        labels = ["symbol"]
        sym = [runner.symbol]

        def gauge(name: str, doc: str, value) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=labels)
            family.add_metric(sym, float(value))
            return family

        risk = runner.risk
        mode = GaugeMetricFamily("runner_risk_state", "1 for the risk mode the run is in",
                                 labels=["symbol", "mode"])
        for name in RISK_MODES:
            mode.add_metric([runner.symbol, name], 1.0 if risk.mode == name else 0.0)
        yield mode
        yield gauge("runner_position", "Position in the base asset (signed)", status.position)
        yield gauge("runner_inventory_ratio", "Position / maxPosition",
                    _ratio(risk.position, getattr(risk.limits, "max_position", 0)))
        mid = float(status.mid) if status.mid else 0.0
        yield gauge("runner_notional_quote", "|Position| × mid", abs(float(status.position)) * mid)
        yield gauge("runner_realized_pnl_quote", "Realized PnL (average cost), before fees",
                    float(risk.realized_pnl))
        yield gauge("runner_unrealized_pnl_quote", "Unrealized PnL at the mid",
                    float(risk.unrealized_pnl or 0))
        yield gauge("runner_mid_price", "Mid of the local book", mid)
        yield gauge("runner_spread_ticks", "Best ask − best bid, in ticks",
                    status.spread_ticks or 0)
        yield gauge("runner_volatility_ticks", "The strategy's EWMA volatility of the mid",
                    status.vol_ticks)
        yield gauge("runner_open_orders", "Our orders resting or in flight",
                    len(runner.manager.orders))
        age_ms = max(0, runner.wall_ms() - status.fresh_book_ms) if status.fresh_book_ms else 0
        yield gauge("runner_book_age_seconds", "Since the last fresh book update was received "
                    "(the run's clock)", age_ms / 1000)
        yield gauge("runner_book_age_max_seconds", "The largest book age since the start",
                    max(age_ms, status.max_book_age_ms) / 1000)
        yield gauge("runner_book_stale", "1 when the book is stale", 1.0 if status.stale else 0.0)
        counters = [
            ("runner_book_resyncs", "Local book re-syncs (gaps, crossed, reconnects)",
             status.resyncs),
            ("runner_quotes", "Quote decisions", status.quotes),
            ("runner_ws_reconnects", "WebSocket reconnects (depth, trades, user)",
             runner.ws_reconnects()),
        ]
        for name, doc, value in counters:
            family = CounterMetricFamily(name, doc, labels=labels)
            family.add_metric(sym, float(value))
            yield family
        lost = CounterMetricFamily("runner_ws_disconnects", "WebSocket connections lost "
                                   "(closed, failed or silent), by stream",
                                   labels=["symbol", "stream"])
        for stream, count in runner.ws_disconnects().items():
            lost.add_metric([runner.symbol, stream], float(count))
        yield lost
        yield from self._config(runner)

    @staticmethod
    def _config(runner):
        """The key parameters of the run, as the info metric runner_config_info, and the
        limits a dashboard or an alert computes with as numbers."""
        from mmkit.config import SymbolConfig

        cfg = runner.config.symbols.get(runner.symbol) or SymbolConfig()
        strategy, risk, inventory = cfg.strategy, cfg.risk, cfg.inventory
        info = {"symbol": runner.symbol, "venue": runner.config.gateway.venue,
                "model": strategy.model, "baseSize": strategy.base_size,
                "spread": strategy.spread, "spreadTicks": strategy.spread_ticks,
                "levels": strategy.levels, "skew": strategy.skew,
                "maxInventory": strategy.max_inventory, "maxPosition": risk.max_position,
                "dailyMax": risk.daily_max, "killSwitchLoss": risk.kill_switch_loss,
                "stopLossPct": risk.stop_loss_pct, "maxBookAgeMs": risk.max_book_age_ms,
                "reduceOnlyThreshold": inventory.reduce_only_threshold,
                "reduceOnlyMaxSlippagePct": inventory.reduce_only_max_slippage_pct}
        family = GaugeMetricFamily("runner_config_info", "The run's key parameters (labels; "
                                   "docs/strategy.md, docs/risk.md); always 1",
                                   labels=list(info))
        family.add_metric([_text(v) for v in info.values()], 1.0)
        yield family
        limits = GaugeMetricFamily("runner_risk_limit", "Risk limits as numbers: "
                                   "maxPosition (base), killSwitchLoss (quote), stopLossPct, "
                                   "reduceOnlyThreshold (of maxPosition)",
                                   labels=["symbol", "limit"])
        for name, value in (("maxPosition", risk.max_position),
                            ("killSwitchLoss", risk.kill_switch_loss),
                            ("stopLossPct", risk.stop_loss_pct),
                            ("reduceOnlyThreshold", inventory.reduce_only_threshold)):
            limits.add_metric([runner.symbol, name], float(value))
        yield limits
        bound = GaugeMetricFamily("runner_depth_fill_max_slippage_bps", "The emergency "
                                  "orders' bound from the mid: reduceOnlyMaxSlippagePct, bps",
                                  labels=["symbol"])
        bound.add_metric([runner.symbol], float(inventory.reduce_only_max_slippage_pct) * 100)
        yield bound


def _text(value) -> str:
    return format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)


def _ratio(a, b) -> float:
    return float(a) / float(b) if b else 0.0
