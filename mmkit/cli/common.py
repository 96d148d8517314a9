"""What every venue-facing command needs: the effective config and a REST client for it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import click

from mmkit.binance.signing import Credentials
from mmkit.errors import NetworkError, OutcomeUnknown

T = TypeVar("T")
STOP_GRACE_S = 10.0


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
async def rest_client(config, observer=None) -> AsyncIterator[Any]:
    from mmkit.binance.rest import RestClient

    gateway = config.gateway
    async with RestClient(config.rest_url, credentials_for(config),
                          recv_window=gateway.recv_window,
                          connect_timeout=gateway.connect_timeout,
                          read_timeout=gateway.read_timeout, observer=observer) as client:
        try:
            yield client
        except NetworkError as exc:
            if gateway.venue == "sim" and not isinstance(exc, OutcomeUnknown) \
                    and "cannot connect" in str(exc):
                raise NetworkError(f"{exc}; is `mmkit exchange serve` running?") from None
            raise


def run(coro: Awaitable[T]) -> T:
    """Run a command's coroutine. SIGTERM (systemd's stop) cancels it like Ctrl-C does, so its
    `finally` blocks run (recordings closed, orders cancelled) and the command exits 0."""

    async def main() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()

        def stop() -> None:
            # Python 3.11's wait_for can swallow a cancellation that races a result
            # (gh-86296), so cancel again if the task is still running after a grace period
            # long enough for its clean-up (cancelling orders) to finish.
            if not task.done():
                task.cancel()
                loop.call_later(STOP_GRACE_S, stop)

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, stop)
        return await coro

    _use_uvloop()
    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        raise SystemExit(0) from None


def _use_uvloop() -> None:
    """uvloop when installed (`pip install mmkit[fast]`), unless MMKIT_LOOP=asyncio."""
    if os.environ.get("MMKIT_LOOP", "").lower() == "asyncio":
        return
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def quantity_option(ctx: click.Context, param: click.Parameter,
                    value: str | None) -> Decimal | None:
    """A signed base-asset quantity such as 0.05 or -0.010 (a usage error otherwise)."""
    if value is None:
        return None
    try:
        qty = Decimal(value.strip())
    except InvalidOperation:
        qty = None
    if qty is None or not qty.is_finite():
        raise click.BadParameter(f"not a quantity: {value!r}")
    return qty
