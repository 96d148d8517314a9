"""Helpers shared by tests that run against the simulator: a venue on an ephemeral loopback
port with a static, known book (so tests know exactly what will fill)."""

from __future__ import annotations

from mmkit.model import DepthSnapshot, Timed
from mmkit.sim.engine import EngineConfig
from mmkit.sim.instruments import default_specs
from mmkit.sim.server import ServerThread
from mmkit.sim.venue import Faults, Venue, VenueClock

SYMBOLS = ["ETHUSDC", "ETHUSDT", "BTCUSDT"]


def static_book(symbol: str, spec, bid: str, levels: int = 50, qty: str = "1.000",
                last_update_id: int = 1000) -> Timed:
    """A book with `levels` levels a tick apart each side of a one-tick spread at `bid`."""
    best = spec.to_ticks(bid)
    size = spec.to_steps(qty)
    snap = DepthSnapshot(symbol, 0, last_update_id,
                         [(best - i, size) for i in range(levels)],
                         [(best + 1 + i, size) for i in range(levels)])
    return Timed(0, snap)


def static_venue(*, faults: Faults | None = None, step: bool = False, seed: int = 0,
                 **engine) -> Venue:
    specs = default_specs(SYMBOLS)
    market = [static_book("ETHUSDC", specs["ETHUSDC"], "3000.00"),
              static_book("ETHUSDT", specs["ETHUSDT"], "3000.00"),
              static_book("BTCUSDT", specs["BTCUSDT"], "60000.00")]
    return Venue(specs, iter(market), config=EngineConfig(seed=seed, **engine),
                 clock=VenueClock(step_mode=step), faults=faults, seed=seed)


def serve(venue: Venue | None = None) -> ServerThread:
    """Start a simulator on 127.0.0.1:<free port>; use as a context manager."""
    return ServerThread(venue or static_venue(), "127.0.0.1", 0)
