"""One queue's ticket reads for new watchers, gathered into as few Redis calls as possible.

In a connect storm (a node restarted and every customer reconnects) each watch needs its ticket
read from Redis; one script call per watch cost more of the node's time than anything else on
the watch path but the handshake. Here a read starts at once when none is under way; the watches
that arrive while it is under way wait for it to finish and are then read together, in one call
(`Store.tickets`). The read of a quiet queue costs what it did; a storm costs one call per batch.
Every ticket of a batch is read at the same moment (one seq), which is what `QueueWatch.start`
settles against the mirror.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from protocol.ticket import TicketView
from server.errors import Unavailable

MAX_BATCH = 500  # tickets per Redis call: the script stays well under a millisecond

ReadMany = Callable[[list[int]], Awaitable[list[TicketView | None]]]


class TicketReads:
    def __init__(self, read_many: ReadMany) -> None:
        self._read_many = read_many
        self._wanted: dict[int, list[asyncio.Future[TicketView | None]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def read(self, number: int) -> TicketView | None:
        """The ticket as Redis has it now, or None; raises Unavailable when Redis is away."""
        future: asyncio.Future[TicketView | None] = asyncio.get_running_loop().create_future()
        self._wanted.setdefault(number, []).append(future)
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self._wanted:
                batch = dict(list(self._wanted.items())[:MAX_BATCH])
                for number in batch:
                    del self._wanted[number]
                await self._read(batch)
        finally:
            self._reader = None
            for futures in self._wanted.values():  # cancelled: whoever still waits must not hang
                _settle(futures, exc=Unavailable("the ticket read was cancelled"))
            self._wanted.clear()

    async def _read(self, batch: dict[int, list[asyncio.Future[TicketView | None]]]) -> None:
        try:
            views = await self._read_many(list(batch))
        except Unavailable as exc:
            for futures in batch.values():
                _settle(futures, exc=exc)
            return
        except BaseException as exc:  # a bug or a cancel: fail this batch's watches, not hang them
            for futures in batch.values():
                _settle(futures, exc=Unavailable(f"the ticket read failed: {exc!r}"))
            raise
        for futures, view in zip(batch.values(), views, strict=True):
            _settle(futures, view=view)


def _settle(
    futures: list[asyncio.Future[TicketView | None]],
    view: TicketView | None = None,
    exc: BaseException | None = None,
) -> None:
    for future in futures:
        if future.done():  # its watcher went away meanwhile
            continue
        if exc is None:
            future.set_result(view)
        else:
            future.set_exception(exc)
