"""Ctrl-C ends a command with exit 130 (as shells count SIGINT) and no traceback or
"Aborted."; SIGTERM, systemd's stop, is a clean stop with exit 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.simkit import until_streaming


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_a_stream_stopped_by_a_signal(server, tmp_path, sig, code):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "MMKIT_"))}
    ws = server.base_url.replace("http", "ws")
    proc = subprocess.Popen([sys.executable, "-m", "mmkit", "--venue", "sim", "--base-url",
                             server.base_url, "--ws-url", ws, "trades", "ETHUSDC"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=tmp_path)
    until_streaming(server.venue, proc)  # started, its signal handlers in place
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert b"Traceback" not in err and b"Aborted" not in err
