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


class SignedHttp:
    """A bare signed HTTP client for wire tests (the product's client is mmkit.binance.rest;
    this one lets a test send exactly the bytes it wants)."""

    def __init__(self, base_url: str, api_key: str | None = None, secret: str | None = None):
        import httpx

        from mmkit.sim.venue import SIM_API_KEY, SIM_API_SECRET

        self.api_key = api_key or SIM_API_KEY
        self.secret = secret or SIM_API_SECRET
        self.http = httpx.Client(base_url=base_url, headers={"X-MBX-APIKEY": self.api_key})

    def signed(self, method: str, path: str, *, timestamp: int | None = None, **params):
        import time
        from urllib.parse import urlencode

        from mmkit.binance.signing import hmac_signature

        params["timestamp"] = timestamp if timestamp is not None else int(time.time() * 1000)
        query = urlencode(params)
        query += "&signature=" + hmac_signature(self.secret, query)
        return self.http.request(method, f"{path}?{query}")

    def get(self, path: str, **params):
        return self.http.get(path, params=params)

    def post(self, path: str, **params):
        return self.http.post(path, params=params)


def finish(proc, timeout: float = 30) -> tuple[bytes, bytes]:
    """SIGTERM a command (if it still runs) and return the rest of its stdout and its stderr.

    Unlike `communicate()`, which reads the raw pipes, this keeps the lines a test's
    `proc.stdout.readline()` had already read ahead into the file's buffer."""
    import signal
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    with ThreadPoolExecutor(2) as pool:  # both pipes at once: neither fills up and blocks it
        out, err = pool.submit(proc.stdout.read), pool.submit(proc.stderr.read)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        return out.result(), err.result()


def until_streaming(venue: Venue, proc, *, user: bool = False, timeout: float = 30) -> None:
    """Until the command `proc` has a stream open on `venue` (a user-data stream with `user`):
    past its start-up, so a signal or an order sent now meets a running command, however
    slowly the machine started it."""
    import time

    before = {id(s) for s in list(venue.subscribers)}
    deadline = time.monotonic() + timeout
    while not any(id(s) not in before and (s.listen_keys if user else s.streams)
                  for s in list(venue.subscribers)):
        assert proc.poll() is None, "the command ended before it streamed"
        assert time.monotonic() < deadline, f"no stream opened in {timeout} s"
        time.sleep(0.05)
