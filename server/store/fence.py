"""Changes wait after the embedded Redis came back, until it is known not to be behind the log.

A Redis killed and restarted from its append-only file can come back without its last writes:
with `appendfsync everysec` and a slow disk, Redis postpones writing the file for up to 2 s, and
what it had not written is gone. The persister may have copied those events to PostgreSQL by
then. A join let through at once would take the seq (and ticket number) of a lost one, and the
recovery check (server/recovery.py), seeing a seq no longer below the log's, would never bring
the lost tickets back. So every change script first passes this fence: when the supervisor has
launched Redis again since the last pass (server/supervisor.py), the first change to come runs
the recovery check, rebuilding from the log any queue that came back behind it, while the
others wait; then all go through. If the check fails (Redis still loading, PostgreSQL down),
the change answers 503 and the next one tries again.

Only the embedded Redis has a launch count; with REDIS_URL the fence is always open (an
operator's Redis restart is caught by the persister's periodic check, README "Durability").
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

# Set in the task that runs the check: its own change scripts (a rebuild, a transfer completed)
# must pass the fence it is holding.
_CHECKING: contextvars.ContextVar[bool] = contextvars.ContextVar("fence_checking", default=False)


class Fence:
    """`await fence.passed()` before a change; open until `launches()` grows."""

    def __init__(self, launches: Callable[[], int], check: Callable[[], Awaitable[object]]):
        self._launches = launches
        self._check = check
        self._passed = launches()  # the launch the node started with needs no check
        self._lock = asyncio.Lock()

    def open(self) -> bool:
        return self._launches() == self._passed or _CHECKING.get()

    async def passed(self) -> None:
        if self.open():
            return
        async with self._lock:
            seen = self._launches()
            if seen == self._passed:
                return  # another change ran the check while this one waited
            token = _CHECKING.set(True)
            try:
                rebuilt = await self._check()
            finally:
                _CHECKING.reset(token)
            self._passed = seen
        log.warning("redis came back (launch %d); checked against the event log: %s", seen, rebuilt)
