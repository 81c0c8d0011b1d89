"""Retries backlogged outboxes and aborts the ones stuck too long (architecture.md inv. 5)."""

from __future__ import annotations

import asyncio
import logging
import time

from server.outbox import Outbox

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 0.2


class Sweeper:
    def __init__(self, stuck_close_s: float) -> None:
        self.stuck_close_s = stuck_close_s
        self.aborted = 0
        self._backlogged: set[Outbox] = set()

    def backlogged(self, outbox: Outbox) -> None:
        """An outbox's socket stopped taking frames: watch it from now on."""
        self._backlogged.add(outbox)

    def discard(self, outbox: Outbox) -> None:
        self._backlogged.discard(outbox)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> None:
        for outbox in list(self._backlogged):
            if outbox.closed or outbox.retry():
                self._backlogged.discard(outbox)
            elif outbox.stuck_since is not None and now - outbox.stuck_since > self.stuck_close_s:
                log.info("aborting a connection stuck for %.1f s", now - outbox.stuck_since)
                outbox.abort("stuck_outbox")
                self.aborted += 1
                self._backlogged.discard(outbox)
