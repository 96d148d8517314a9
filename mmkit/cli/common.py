"""What every venue-facing command needs: the effective config and a REST client for it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import click

from mmkit.binance.signing import Credentials

T = TypeVar("T")


def load(ctx: click.Context):
    """The effective Config for this invocation (defaults < YAML < env < flags)."""
    from mmkit.config import config_from_ctx

    return config_from_ctx(ctx.find_root().obj)


def credentials_for(config) -> Credentials | None:
    """The configured key; on the simulator, its built-in public test key when none is set."""
    credentials = config.credentials()
    if credentials is None and config.gateway.venue == "sim":
        from mmkit.sim.venue import SIM_API_KEY, SIM_API_SECRET

        credentials = Credentials(SIM_API_KEY, SIM_API_SECRET)
    return credentials


@contextlib.asynccontextmanager
async def rest_client(config) -> AsyncIterator[Any]:
    from mmkit.binance.rest import RestClient

    gateway = config.gateway
    async with RestClient(config.rest_url, credentials_for(config),
                          recv_window=gateway.recv_window,
                          connect_timeout=gateway.connect_timeout,
                          read_timeout=gateway.read_timeout) as client:
        yield client


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)
