"""End to end: the real `mmkit` CLI, in a subprocess, against the simulator on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import orjson
import pytest

from mmkit.lines import check_line
from mmkit.sim.venue import SIM_API_KEY, SIM_API_SECRET
from tests.simkit import SignedHttp, serve


@pytest.fixture(scope="module")
def sim():
    with serve() as server:
        yield server


def mmkit(sim_url: str | None, *args: str, env: dict | None = None, cwd=None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
    clean.update(env or {})
    base = ["--venue", "sim", "--base-url", sim_url] if sim_url else []
    return subprocess.run([sys.executable, "-m", "mmkit", *base, *args], capture_output=True,
                          text=True, env=clean, cwd=cwd, timeout=60)


def lines(result) -> list[dict]:
    assert result.returncode == 0, result.stderr
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    for row in rows:  # every row is a documented line type (docs/streams.md)
        assert check_line(row) == [], row
    return rows


def test_time_reports_a_small_offset(sim, tmp_path):
    (row,) = lines(mmkit(sim.base_url, "time", cwd=tmp_path))
    assert row["type"] == "time" and abs(row["offsetMs"]) < 1000


def test_balance_shows_the_starting_usdc(sim, tmp_path):
    rows = lines(mmkit(sim.base_url, "balance", cwd=tmp_path))
    usdc = next(r for r in rows if r["asset"] == "USDC")
    assert usdc["walletBalance"] == "100.00000000"
    assert set(usdc) >= {"availableBalance", "crossUnPnl", "marginBalance"}


def test_position_follows_a_fill(sim, tmp_path):
    assert lines(mmkit(sim.base_url, "position", cwd=tmp_path)) == []
    http = SignedHttp(sim.base_url)
    filled = http.signed("POST", "/fapi/v1/order", symbol="ETHUSDC", side="BUY", type="MARKET",
                         quantity="0.010")
    assert filled.status_code == 200, filled.text
    try:
        (row,) = lines(mmkit(sim.base_url, "position", "ETHUSDC", cwd=tmp_path))
        assert row["side"] == "LONG" and row["qty"] == "0.010"
        assert row["entryPrice"] == "3000.01" and row["leverage"] == 20
        assert {"breakEvenPrice", "markPrice", "unrealizedPnl", "liquidationPrice",
                "notional"} <= set(row)
        flat = lines(mmkit(sim.base_url, "position", "--all", cwd=tmp_path))
        assert {r["symbol"] for r in flat} == {"ETHUSDC", "ETHUSDT", "BTCUSDT"}
    finally:
        http.signed("POST", "/fapi/v1/order", symbol="ETHUSDC", side="SELL", type="MARKET",
                    quantity="0.010", reduceOnly="true")


def test_account_totals_and_brackets(sim, tmp_path):
    rows = lines(mmkit(sim.base_url, "account", cwd=tmp_path))
    totals = [r for r in rows if r["type"] == "account"]
    brackets = [r for r in rows if r["type"] == "leverageBracket"]
    assert any(r["asset"] == "USDC" for r in totals)
    assert brackets and {r["symbol"] for r in brackets} == {"ETHUSDC"}
    assert brackets[0]["initialLeverage"] == 125


def test_symbol_constraints(sim, tmp_path):
    (row,) = lines(mmkit(sim.base_url, "symbol", "ethusdc", cwd=tmp_path))
    assert row["tickSize"] == "0.01" and row["stepSize"] == "0.001"
    assert row["minNotional"] == "5" and "GTX" in row["timeInForce"]
    assert {"minQty", "maxQty", "marketMaxQty", "pricePrecision", "quantityPrecision",
            "multiplierUp", "multiplierDown", "orderTypes"} <= set(row)


@pytest.mark.parametrize("command", ["symbol", "position"])
def test_unknown_symbol_is_a_one_line_usage_error(sim, tmp_path, command):
    result = mmkit(sim.base_url, command, "NOPE", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "NOPE" in result.stderr or "-1121" in result.stderr


def test_table_renders_the_same_rows(sim, tmp_path):
    result = mmkit(sim.base_url, "balance", "--table", cwd=tmp_path)
    assert result.returncode == 0 and "USDC" in result.stdout and "100.00000000" in result.stdout


def test_unreachable_venue_exits_4(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = mmkit(url, "balance", cwd=tmp_path)
    assert result.returncode == 4
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_rejected_key_exits_3_and_never_prints_the_secret(sim, tmp_path):
    secret = "S3cr3t" + "x" * 58
    result = mmkit(sim.base_url, "-vv", "balance", cwd=tmp_path,
                   env={"MM_GATEWAY_API_KEY": "K3y" + "y" * 61, "MM_GATEWAY_API_SECRET": secret})
    assert result.returncode == 3 and "-2015" in result.stderr
    assert secret not in result.stdout + result.stderr
    assert "K3y" + "y" * 61 not in result.stdout + result.stderr


@pytest.mark.parametrize("args", [["time"], ["balance", "--all"], ["position", "--all"],
                                  ["account"], ["symbol", "ETHUSDC"], ["config", "show"]])
def test_no_command_prints_the_secret(sim, tmp_path, args):
    env = {"MM_GATEWAY_API_KEY": SIM_API_KEY, "MM_GATEWAY_API_SECRET": SIM_API_SECRET}
    result = mmkit(sim.base_url, "-vv", *args, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert SIM_API_SECRET not in output and SIM_API_KEY not in output


def test_global_options_also_work_after_the_command(sim, tmp_path):
    before = lines(mmkit(sim.base_url, "balance", cwd=tmp_path))
    after = lines(mmkit(None, "balance", "--venue", "sim", "--base-url", sim.base_url,
                        cwd=tmp_path))
    assert after == before
    # the nearer place wins
    wrong = mmkit("http://127.0.0.1:9", "balance", "--base-url", sim.base_url, cwd=tmp_path)
    assert lines(wrong) == before
