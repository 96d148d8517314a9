"""`mmkit exchange serve` as a user runs it: a subprocess on a free loopback port."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.simkit import SignedHttp

SYMBOLS = {"ETHUSDC", "ETHUSDT", "BTCUSDT"}
ETH_0808 = "market/binance_usdm_hftbacktest/ethusdt_20240808.gz"
ETH_0808_SNAPSHOT_ID = 5123107856276  # data README: the snapshot's lastUpdateId


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmkit", "exchange", "serve", *args]


@contextlib.contextmanager
def serving(tmp_path: Path, *args: str):
    """Run the venue on a free port; yield (http client, stderr path); always stop it."""
    port = free_port()
    err = tmp_path / f"serve-{port}.err"
    with open(err, "wb") as stderr:
        proc = subprocess.Popen(command("--host", "127.0.0.1", "--port", str(port), *args),
                                stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=2) as http:
            deadline = time.monotonic() + 15
            while True:
                assert proc.poll() is None, err.read_text()
                with contextlib.suppress(httpx.TransportError):
                    # the start line is printed just after the server starts listening
                    if http.get("/fapi/v1/ping").json() == {} and err.read_text():
                        break
                assert time.monotonic() < deadline, "the venue did not answer /fapi/v1/ping"
                time.sleep(0.05)
            yield http, err
        proc.terminate()  # SIGTERM: stops like Ctrl-C, exit 0
        assert proc.wait(timeout=10) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def top(http: httpx.Client, symbol: str) -> dict:
    depth = http.get("/fapi/v1/depth", params={"symbol": symbol, "limit": 5}).json()
    assert depth["bids"] and depth["asks"], depth
    assert float(depth["bids"][0][0]) < float(depth["asks"][0][0]), depth
    return depth


def test_serve_defaults_to_synthetic_three_symbols_and_100_usdc(tmp_path):
    with serving(tmp_path) as (http, err):
        info = http.get("/fapi/v1/exchangeInfo").json()
        assert {s["symbol"] for s in info["symbols"]} == SYMBOLS
        for symbol in SYMBOLS:
            top(http, symbol)
        balances = SignedHttp(str(http.base_url)).signed("GET", "/fapi/v2/balance").json()
        assert {b["asset"]: float(b["balance"]) for b in balances}["USDC"] == 100
        start = err.read_text().splitlines()
    assert len(start) == 1, start
    line = start[0]
    port = http.base_url.port
    assert f"REST http://127.0.0.1:{port}" in line and f"WS ws://127.0.0.1:{port}" in line
    assert "market synthetic" in line and "API key mmkitSimulat" in line


def test_serve_replays_a_recording_and_keeps_serving_after_it_ends(tmp_path, shared_data):
    path = str(shared_data / ETH_0808)
    with serving(tmp_path, "--market", "replay", path, "--speed", "10") as (http, err):
        info = http.get("/fapi/v1/exchangeInfo").json()
        assert {s["symbol"] for s in info["symbols"]} == SYMBOLS
        depth = top(http, "ETHUSDT")
        assert depth["lastUpdateId"] >= ETH_0808_SNAPSHOT_ID
        assert 2000 < float(depth["bids"][0][0]) < 3000
        assert "market replay ethusdt_20240808.gz" in err.read_text()

    # 5.75 minutes of recording at 2000x: over in well under a second
    with serving(tmp_path, "--market", "replay", path, "--speed", "2000") as (http, err):
        deadline = time.monotonic() + 10
        while "replay of ethusdt_20240808.gz ended" not in err.read_text():
            assert time.monotonic() < deadline, err.read_text()
            time.sleep(0.05)
        book = ("lastUpdateId", "bids", "asks")
        last = {k: top(http, "ETHUSDT")[k] for k in book}
        time.sleep(0.3)
        assert {k: top(http, "ETHUSDT")[k] for k in book} == last  # the last book stays
        lines = err.read_text().splitlines()
    # a machine that cannot replay 2000x says so (the market ran late); nothing else is said
    lines = [x for x in lines if "behind the clock: --speed 2000 is more than" not in x]
    assert len(lines) == 2 and "the last book stays" in lines[1], lines


@pytest.mark.parametrize("args", [
    ["--market", "replay", "no/such/ethusdt_20240808.gz"],
    ["--market", "no/such/ethusdt_20240808.gz"],
    ["--market", "replay"],
    ["--fault", "no_such_fault=1"],
    ["--fault", "delay_ms=soon"],
], ids=["replay-missing", "market-missing", "replay-nothing", "fault-unknown", "fault-value"])
def test_bad_arguments_give_one_line_and_exit_2(args):
    done = subprocess.run(command("--port", str(free_port()), *args), capture_output=True,
                          text=True, timeout=20)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    assert done.stdout == ""


def test_no_arguments_means_synthetic_three_symbols_on_loopback_8765_with_100():
    """`mmkit exchange serve` alone: its defaults (the subprocess tests use a free port)."""
    from mmkit.cli.exchange import fed_symbols, market_sources, serve

    defaults = {p.name: p.default for p in serve.params}
    assert defaults["host"] == "127.0.0.1" and defaults["port"] == 8765
    assert defaults["balance"] == "100" and defaults["speed"] == 1.0
    assert set(defaults["symbols"].split(",")) == SYMBOLS
    sources = market_sources((), ())
    assert sources == ["synthetic"]
    assert fed_symbols(sources, dict.fromkeys(SYMBOLS)) == SYMBOLS
    assert market_sources(("replay",), ("a.gz", "b.gz")) == ["a.gz", "b.gz"]
