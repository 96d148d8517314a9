"""The Prometheus metrics `mmkit run` exports (names and meanings: docs/operations.md).

Counters come from the run's own output lines (`on_line`: every order, fill and risk line
passes through here) and from the REST client's per-request hook (`on_request`); gauges are
read from the live objects at scrape time (`RunCollector`), so the hot path pays for nothing
it does not need. Each run has its own registry, served on 127.0.0.1 by default.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
RISK_MODES = ("normal", "reduce_only", "halted", "cooldown")


class RunMetrics:
    def __init__(self, symbol: str):
        self.symbol = symbol
        self.registry = CollectorRegistry()
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
        elif kind == "order_reject":
            reason = "unknown" if line.get("unknown") else str(line.get("code"))
            self.orders.labels("reject", reason).inc()
            if line.get("code") == -5022:
                self.post_only_rejects.inc()
        elif kind == "fill":
            self.fills.labels("maker" if line.get("maker") else "taker").inc()
            self.fill_volume.inc(float(Decimal(line["price"]) * Decimal(line["qty"])))
            self.fees.inc(float(Decimal(line.get("commission") or "0")))
        elif kind == "risk":
            self.risk_events.labels(line["guard"], line["action"]).inc()

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
        yield gauge("runner_book_age_seconds", "Since the last book update was received",
                    max(0.0, (runner.wall_ms() - status.last_book_ms) / 1000)
                    if status.last_book_ms else 0.0)
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


def _ratio(a, b) -> float:
    return float(a) / float(b) if b else 0.0
