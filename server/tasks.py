"""Stopping background tasks: redis-py can swallow a cancel inside a read (seen with 8.1 on
3.11), so one cancel and an await could hold a node's stop for ever."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)


async def cancel_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel and await tasks, cancelling again if a cancel was swallowed."""
    for _ in range(10):
        pending = [t for t in tasks if not t.done()]
        if not pending:
            return
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=1.0)
    log.warning("some background tasks would not stop")
