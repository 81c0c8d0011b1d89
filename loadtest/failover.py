"""A worker's side of the failover scenario: who was watching when the node was killed, and
how long each took to hold its state again on a surviving node."""

from __future__ import annotations

from typing import Any

from loadtest.customer import Customer, Fleet


class Failover:
    def __init__(self, fleet: Fleet, customers: list[Customer]) -> None:
        self.fleet = fleet
        self.customers = customers  # the worker's own list: it grows as customers join
        self._noted: dict[Customer, int] = {}  # watching at the kill -> its drops before it

    async def arm(self) -> int:
        """Before the node is killed: note who watches, and that their drops are expected."""
        self.fleet.expect_drops = self.fleet.node_killed = True
        watching = [c for c in self.customers if c.ws and not c.finished and not c.slow]
        self._noted = {c: c.drops for c in watching}
        return len(watching)

    async def wait(self, wait_s: float = 60.0) -> dict[str, Any]:
        """Wait until each watcher noted has lost its socket and has a first frame again;
        the time from loss to that frame (its exact state, read at registration) each."""
        before = len(self.fleet.reconnect_s)
        noted = self._noted

        def back(c: Customer) -> bool:
            return c.finished or (c.drops > noted[c] and c.dropped_at is None)

        await self.fleet.until(lambda: all(back(c) for c in noted), wait_s)
        self.fleet.expect_drops = False
        return {
            "watching": len(noted),
            "not_recovered": sum(1 for c in noted if not back(c)),
            "recovery_s": self.fleet.reconnect_s[before:],
        }
