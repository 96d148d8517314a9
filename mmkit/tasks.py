"""Stopping asyncio tasks for sure.

Python 3.11's `asyncio.wait_for` (in our code or a library's) can swallow a cancellation that
races its result (gh-86296): the task carries on as if never cancelled, and a single
`cancel()` followed by `gather()` then waits forever. A shutdown must not depend on that
race, so these helpers cancel again until every task has ended.
"""

from __future__ import annotations

import asyncio

RECANCEL_S = 0.5


async def cancel_and_wait(*tasks: asyncio.Future, recancel_s: float = RECANCEL_S) -> None:
    """Cancel `tasks` and wait until all have ended, cancelling again every `recancel_s`
    those that are still running. Their results and exceptions are discarded."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=recancel_s)
    for task in tasks:  # retrieve outcomes so none is reported as never retrieved
        if not task.cancelled():
            task.exception()
