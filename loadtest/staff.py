"""The staff side: call-next (or priority joins) at a set rate, and the true line from the staff
list endpoint.

It runs in the main process, whose loop has little else to do, so the moment a call-next
response is read (the anchor of update latency) is stamped without waiting behind the thousands
of frames the worker processes are busy receiving.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from loadtest.httpc import HttpClient, HttpError, error_kind

STAFF_COUNTER = "loadtest"
TOP_PRIORITY = 9  # a priority join ahead of every customer: it moves every watcher
EVENTS_PAGE = 1000


@dataclass(frozen=True, slots=True)
class CallRecord:
    sent_at: float  # time.time() just before the request was written
    answered_at: float  # time.time() when the whole response had been read
    status: int
    ticket_id: str | None


@dataclass
class Staff:
    base_url: str
    queue: str
    key: str
    local_addr: str | None = None
    calls: list[CallRecord] = field(default_factory=list)  # or priority joins (status 201)
    errors: Counter[str] = field(default_factory=Counter)
    # ticket id -> seq of the harness's call of it (or of its priority join), from the events API
    seqs: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.http = HttpClient(self.base_url, 2, self.local_addr)

    async def call_next(self, record: bool = True) -> CallRecord | None:
        path = f"/v1/queues/{self.queue}/call-next"
        sent = time.time()
        try:
            reply = await self.http.request("POST", path, {"counter": STAFF_COUNTER}, self.key)
        except HttpError as exc:
            self.errors[f"call_{exc.kind}"] += 1
            return None
        if reply.status not in (200, 204):
            self.errors[f"call_{error_kind(reply)}"] += 1
            return None
        tid = reply.body.get("ticket_id") if reply.status == 200 else None
        call = CallRecord(sent, reply.done_at, reply.status, tid)
        if record:
            self.calls.append(call)
        return call

    async def priority_join(self) -> CallRecord | None:
        """A staff join at the top priority: it goes ahead of everyone, moving every watcher."""
        path = f"/v1/queues/{self.queue}/tickets"
        body = {"name": "priority", "priority": TOP_PRIORITY}
        sent = time.time()
        try:
            reply = await self.http.request("POST", path, body, self.key)
        except HttpError as exc:
            self.errors[f"join_{exc.kind}"] += 1
            return None
        if reply.status != 201:
            self.errors[f"join_{error_kind(reply)}"] += 1
            return None
        call = CallRecord(sent, reply.done_at, reply.status, reply.body["ticket_id"])
        self.calls.append(call)
        return call

    async def read_seqs(self, after: int = 0, timeout_s: float = 30.0) -> None:
        """Each call's (and priority join's) seq, from the events API, reading from `after`.

        A watcher's `called` frame carries its call's seq only if it was connected then: one
        reconnecting at the time is told the current seq, later, with its state. The log knows
        (it may lag the line a little). It may also fill in out of order: what a killed node's
        persister had read but not written is written by another node once idle
        (`server.persister`), after later seqs. So at its end, with some seqs still missing,
        the log is read again from `after`.
        """
        kinds = {200: "called", 201: "joined"}
        wanted = {c.ticket_id: kinds[c.status] for c in self.calls if c.ticket_id}
        start = after
        deadline = time.monotonic() + timeout_s
        while wanted.keys() - self.seqs.keys() and time.monotonic() < deadline:
            path = f"/v1/queues/{self.queue}/events?after_seq={after}&limit={EVENTS_PAGE}"
            try:
                reply = await self.http.request("GET", path, None, self.key)
            except HttpError as exc:
                self.errors[f"events_{exc.kind}"] += 1
                return
            if reply.status != 200:  # the watchers' own seqs stand in (the report says so)
                self.errors[f"events_{error_kind(reply)}"] += 1
                return
            for event in reply.body["events"]:
                if wanted.get(event["ticket_id"]) == event["type"]:
                    self.seqs.setdefault(event["ticket_id"], int(event["seq"]))
            if reply.body["events"]:
                after = int(reply.body["next_after_seq"])
            else:
                after = start
                await asyncio.sleep(0.2)

    async def drain(self, limit: int) -> int:
        """Call next until the line is empty (at most `limit` times); returns how many."""
        for count in range(limit):
            call = await self.call_next(record=False)
            if call is None or call.status == 204:
                return count
        return limit

    async def call_at_rate(self, rate: float, duration_s: float, priority: bool = False) -> None:
        """Call next (or, with `priority`, join at the top priority) every 1/rate seconds on a
        fixed schedule (late ones do not pile up)."""
        if rate <= 0:
            await asyncio.sleep(duration_s)
            return
        interval = 1.0 / rate
        start = time.monotonic()
        k = 0
        while True:
            due = start + k * interval
            if due - start >= duration_s:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await (self.priority_join() if priority else self.call_next())
            k = max(k + 1, int((time.monotonic() - start) / interval))

    async def queue_state(self) -> dict[str, Any]:
        reply = await self.http.request("GET", f"/v1/queues/{self.queue}")
        if reply.status != 200:
            raise RuntimeError(f"GET /v1/queues/{self.queue}: {error_kind(reply)}")
        assert isinstance(reply.body, dict)
        return reply.body

    async def truth(self) -> tuple[dict[str, int], int]:
        """ticket id -> true position, from `GET /v1/queues/{q}/tickets`; and the line's length.

        The server may list only the head of a long line: positions past the list's end are
        then unknown, and the caller must not count them as mismatches.
        """
        reply = await self.http.request("GET", f"/v1/queues/{self.queue}/tickets", None, self.key)
        if reply.status != 200:
            raise RuntimeError(f"the staff list answered {error_kind(reply)}")
        waiting = reply.body["waiting"]
        total = int((await self.queue_state()).get("waiting") or 0)
        return {row["ticket_id"]: index + 1 for index, row in enumerate(waiting)}, total

    async def close(self) -> None:
        await self.http.close()
