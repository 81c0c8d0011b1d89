"""Opening hours, acted on: every node runs this loop, and each boundary acts once.

Each tick reads the queues that have hours (one set, one pipelined read), works out each one's
latest boundary with `protocol/hours.py`, and runs `boundary.lua` for a boundary this node has
not seen yet. The script records the last boundary acted on and refuses an older or repeated
one, so however many nodes race, the queue opens or closes once, with one event. A manual open,
close or pause is left alone until the next boundary, because only boundaries act.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import orjson

from protocol.hours import Hours, HoursError
from server.errors import ApiError, Unavailable
from server.store import Store
from server.tasks import cancel_all

log = logging.getLogger(__name__)

TICK_S = 1.0


class Scheduler:
    def __init__(self, store: Store, tick_s: float = TICK_S) -> None:
        self.store = store
        self.tick_s = tick_s
        self.acted = 0  # boundaries this node acted on (the others were another node's)
        self._seen: dict[str, datetime] = {}  # queue -> latest boundary already handled here
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="hours-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_all([self._task])

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick(datetime.now(UTC))
            except Unavailable as exc:
                log.debug("hours check skipped: %s", exc)
            except Exception:
                log.exception("hours check failed")
            await asyncio.sleep(self.tick_s)

    async def tick(self, now: datetime) -> None:
        for queue, raw in await self.store.scheduled():
            if raw is None:
                continue
            try:
                hours = Hours.parse(orjson.loads(raw))
            except (HoursError, ValueError):
                log.warning("queue %s has unreadable hours; skipped", queue)
                continue
            boundary = hours.last_boundary(now)
            seen = self._seen.get(queue)
            if boundary is None or (seen is not None and boundary.at <= seen):
                continue
            clear = boundary.action == "close" and hours.at_close == "clear"
            at_ms = int(boundary.at.timestamp() * 1000)
            try:
                result = await self.store.boundary(queue, at_ms, boundary.action, clear)
            except ApiError as exc:  # the queue is gone from Redis: the recovery check's job
                log.info("hours of %s not applied: %s", queue, exc.code)
                continue
            self._seen[queue] = boundary.at
            if result.get("acted"):
                self.acted += 1
                log.info(
                    "queue %s: %s at %s (%d removed)",
                    queue,
                    boundary.action,
                    boundary.at.isoformat(),
                    int(result.get("removed", 0)),
                )
