"""Bad input to `run`, `exchange serve`, `depth --record` and `config check` as a user types
it: one `Error: ...` naming what is wrong, exit 2, no traceback, nothing started; API keys
that cannot work are refused without printing them; runs into one journal never overlap."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

KEY = "apikeyNEVERPRINTED0123456789"
SECRET = "secretNEVERPRINTED0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mmkit(cwd: Path, *args: str, env: dict[str, str] | None = None,
          timeout: float = 30) -> subprocess.CompletedProcess:
    """The CLI in `cwd`, without the caller's MM_/MMKIT_ settings (plus `env`)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
    return subprocess.run([sys.executable, "-m", "mmkit", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env={**clean, **(env or {})})


def assert_usage_error(done: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2, an `Error: ` line holding `words`, no traceback, nothing on stdout."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, done.stderr
    for word in words:
        assert word in errors[0], done.stderr
    assert done.stdout == ""
    return errors[0]


# --- A, B, C: `mmkit run` arguments ---------------------------------------------------------------

def test_run_unknown_symbol_names_the_simulators_symbols(tmp_path):
    done = mmkit(tmp_path, "run", "--symbol", "FOOBAR", "--duration", "1s", "--metrics", "off")
    line = assert_usage_error(done, "--symbol", "FOOBAR", "ETHUSDC", "ETHUSDT", "BTCUSDT")
    assert done.stderr.strip() == line  # one line, before anything starts
    assert not (tmp_path / "journal").exists()


@pytest.mark.parametrize("args, words", [
    (["--speed", "0"], ["--speed", "0"]),
    (["--speed", "-3"], ["--speed", "-3"]),
    (["--speed", "nan"], ["--speed", "nan"]),
    (["--duration", "0"], ["--duration", "> 0"]),
    (["--duration", "0s"], ["--duration", "> 0"]),
    (["--duration", "soon"], ["--duration", "soon"]),
    (["--metrics", "nonsense"], ["--metrics", "HOST:PORT", "nonsense"]),
    (["--metrics", "127.0.0.1:99999"], ["--metrics", "65535", "99999"]),
    (["--metrics", "127.0.0.1:"], ["--metrics", "HOST:PORT"]),
], ids=["speed-0", "speed-negative", "speed-nan", "duration-0", "duration-0s", "duration-word",
        "metrics-word", "metrics-port-too-big", "metrics-no-port"])
def test_run_bad_arguments_exit_2_before_starting(tmp_path, args, words):
    done = mmkit(tmp_path, "run", *(["--duration", "1s"] if "--duration" not in args else []),
                 *args)
    assert_usage_error(done, *words)
    assert not (tmp_path / "journal").exists()


def test_run_help_says_duration_and_speed_must_be_positive(tmp_path):
    text = " ".join(mmkit(tmp_path, "run", "--help").stdout.split())
    assert "must be > 0" in text and "(> 0)" in text


# --- C: `mmkit exchange serve` arguments ---------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--port", "99999"], ["--port", "99999"]),
    (["--port", "-1"], ["--port", "-1"]),
    (["--balance", "-5"], ["--balance", "> 0", "-5"]),
    (["--balance", "0"], ["--balance", "> 0"]),
    (["--balance", "nan"], ["--balance", "nan"]),
], ids=["port-too-big", "port-negative", "balance-negative", "balance-0", "balance-nan"])
def test_exchange_serve_bad_arguments_exit_2(tmp_path, args, words):
    port = [] if "--port" in args else ["--port", str(free_port())]
    done = mmkit(tmp_path, "exchange", "serve", "--host", "127.0.0.1", *port, *args)
    assert_usage_error(done, *words)


# --- D: `depth --record` to a path that cannot be written ----------------------------------------

@pytest.mark.parametrize("record, reason", [
    ("no/such/dir/x.jsonl.gz", "no such directory"),
    ("file.txt/x.jsonl.gz", "not a directory"),
], ids=["missing-dir", "file-as-dir"])
def test_depth_record_to_an_unwritable_path_exits_2_before_connecting(tmp_path, record, reason):
    (tmp_path / "file.txt").write_text("")
    # nothing listens there: connecting first would be a network error (exit 4)
    done = mmkit(tmp_path, "--venue", "sim", "--base-url", f"http://127.0.0.1:{free_port()}",
                 "depth", "ETHUSDC", "--record", record)
    line = assert_usage_error(done, record, reason)
    assert done.stderr.strip() == line


# --- E: credentials on Binance's venues ----------------------------------------------------------

@pytest.mark.parametrize("venue", ["testnet", "live"])
def test_config_check_reports_a_missing_key_on_binance(tmp_path, venue):
    done = mmkit(tmp_path, "--venue", venue, "config", "check")
    assert done.returncode == 2, done.stderr
    assert "gateway.apiKey: an API key is needed on venue " + venue in done.stderr
    assert "config OK" not in done.stderr


def test_config_check_reports_a_key_without_its_secret_on_binance(tmp_path):
    done = mmkit(tmp_path, "--venue", "testnet", "config", "check",
                 env={"MM_GATEWAY_API_KEY": KEY})
    assert done.returncode == 2, done.stderr
    assert "gateway.apiSecret: the API key needs its secret" in done.stderr
    assert KEY not in done.stderr + done.stdout


def test_config_check_accepts_a_key_on_binance_and_none_on_the_simulator(tmp_path):
    done = mmkit(tmp_path, "--venue", "testnet", "config", "check",
                 env={"MM_GATEWAY_API_KEY": KEY, "MM_GATEWAY_API_SECRET": SECRET})
    assert done.returncode == 0 and "config OK" in done.stderr, done.stderr
    done = mmkit(tmp_path, "--venue", "sim", "config", "check")
    assert done.returncode == 0 and "config OK" in done.stderr, done.stderr


@pytest.mark.parametrize("venue", [["--venue", "testnet"], ["--venue", "live"]],
                         ids=["testnet", "live"])
def test_run_without_a_key_on_binance_starts_nothing(tmp_path, venue):
    done = mmkit(tmp_path, *venue, "run", "--live", "--duration", "1s", "--metrics", "off")
    line = assert_usage_error(done, "gateway.apiKey", "API key is needed")
    assert done.stderr.strip() == line  # no summary, no "paper trading" banner
    assert not (tmp_path / "journal").exists()


def test_send_without_a_key_on_binance_reads_no_input(tmp_path):
    done = mmkit(tmp_path, "--venue", "testnet", "send", "--dry-run", "--symbol", "ETHUSDC")
    line = assert_usage_error(done, "gateway.apiKey", "API key is needed")
    assert done.stderr.strip() == line


# --- F: keys and secrets that cannot go into a request -------------------------------------------

BAD_VALUES = {
    "crlf": ("\r\n", "whitespace or a line break"),
    "lf": ("\n", "whitespace or a line break"),
    "space": (" x", "whitespace or a line break"),
    "non-ascii": ("é", "non-ASCII"),
    "control": ("\x01", "control characters"),
}


@pytest.mark.parametrize("name", list(BAD_VALUES))
@pytest.mark.parametrize("env_name, key", [("MM_GATEWAY_API_KEY", "gateway.apiKey"),
                                           ("MM_GATEWAY_API_SECRET", "gateway.apiSecret")],
                         ids=["key", "secret"])
def test_config_check_refuses_a_bad_key_or_secret_without_printing_it(tmp_path, name,
                                                                        env_name, key):
    tail, reason = BAD_VALUES[name]
    env = {"MM_GATEWAY_API_KEY": KEY, "MM_GATEWAY_API_SECRET": SECRET}
    env[env_name] += tail
    done = mmkit(tmp_path, "--venue", "testnet", "config", "check", env=env)
    assert done.returncode == 2, done.stderr
    assert f"{key}: contains {reason}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    shown = done.stderr + done.stdout
    assert KEY not in shown and SECRET not in shown and KEY[:8] not in shown


def test_a_bad_key_in_the_config_file_is_refused_too(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f'gateway:\n  apiKey: "{KEY}\\r"\n  apiSecret: {SECRET}\n')
    config.chmod(0o600)
    done = mmkit(tmp_path, "--config", str(config), "config", "check")
    assert done.returncode == 2 and "gateway.apiKey: contains whitespace" in done.stderr
    assert KEY not in done.stderr


@pytest.mark.parametrize("args", [
    ["run", "--duration", "1s", "--metrics", "off"],
    ["depth", "ETHUSDC"],
    ["account"],
], ids=["run", "depth", "account"])
def test_every_command_refuses_a_bad_key_before_connecting(tmp_path, args):
    env = {"MM_GATEWAY_API_KEY": KEY + "\r\n", "MM_GATEWAY_API_SECRET": SECRET}
    done = mmkit(tmp_path, "--venue", "sim", "--base-url", f"http://127.0.0.1:{free_port()}",
                 *args, env=env)
    assert_usage_error(done, "gateway.apiKey: contains whitespace or a line break")
    assert KEY not in done.stderr
    assert not (tmp_path / "journal").exists()


# --- G: runs into one journal follow each other in venue time ------------------------------------

def _marks(journal: Path) -> dict[str, list[int]]:
    """run id -> its mark times."""
    import orjson

    runs: dict[str, list[int]] = {}
    for part in journal.glob("marks/date=*/symbol=ETHUSDC/*.jsonl"):
        runs[part.stem] = [orjson.loads(line)["ts"] for line in part.read_bytes().splitlines()]
    return runs


def test_two_lockstep_runs_in_one_directory_do_not_overlap(tmp_path):
    for _ in range(2):
        done = mmkit(tmp_path, "run", "--lockstep", "--duration", "3s", "--lines",
                     "--metrics", "off")
        assert done.returncode == 0, done.stderr
    runs = sorted(_marks(tmp_path / "journal").values(), key=min)
    assert len(runs) == 2 and all(runs), runs
    assert min(runs[1]) > max(runs[0]), runs


@pytest.mark.parametrize("speed, lockstep", [(1.0, False), (20.0, False), (1.0, True)],
                         ids=["speed-1", "speed-20", "lockstep"])
def test_an_embedded_simulator_starts_after_the_journals_newest_row(speed, lockstep):
    """A journal whose newest row is an hour ahead of the wall (a sped-up run's): the next
    run's venue clock starts after it, whatever its pace."""
    import time

    import httpx

    from mmkit.cli.run_cmd import _start_simulator
    from mmkit.sim.market import DEFAULT_START_MS

    newest = max(DEFAULT_START_MS, int(time.time() * 1000)) + 3_600_000
    server = _start_simulator("ETHUSDC", speed, 0, lockstep, newest)
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            if lockstep:  # the venue takes the market's time at its first step
                http.post("/_sim/step", params={"events": 1}).raise_for_status()
            now = http.get("/fapi/v1/time").json()["serverTime"]
        assert newest < now < newest + 60_000
    finally:
        server.stop()
