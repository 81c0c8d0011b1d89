"""Stopping background tasks: redis-py can swallow a cancel inside a read (seen with 8.1 on
3.11), so one cancel and an await could hold a node's stop for ever."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)


async def cancel_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel and await tasks, cancelling again if a cancel was swallowed. One that had already
    failed is logged (its error is retrieved, so asyncio does not report it at collection)."""
    for _ in range(10):
        pending = [t for t in tasks if not t.done()]
        if not pending:
            break
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=1.0)
    else:
        log.warning("some background tasks would not stop")
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.info("%s had ended with %r", task.get_name(), task.exception())
