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
