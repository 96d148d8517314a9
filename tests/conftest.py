"""Shared fixtures. `shared_data` is the one way tests and benchmarks reach ../shared/data:
absent, the test is skipped with the reason, except under CI (MMKIT_REQUIRE_DATA=1), where the
absence is an error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA_DIR = Path(os.environ.get("MMKIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if (DATA_DIR / "README.md").exists():
        return DATA_DIR
    reason = f"shared data not found at {DATA_DIR} (set MMKIT_DATA)"
    if os.environ.get("MMKIT_REQUIRE_DATA") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server():
    """A module's own simulator (tests.simkit's static book) on an ephemeral loopback port."""
    from tests.simkit import serve

    with serve() as running:
        yield running


@pytest.fixture
def http(server):
    """A signed client for `server`, whose venue is reset before each test."""
    from tests.simkit import SignedHttp

    client = SignedHttp(server.base_url)
    server.venue.reset()
    yield client
    client.http.close()
