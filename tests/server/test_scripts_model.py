"""The Lua scripts against a plain Python model of two queues, driven by hypothesis, on real Redis.

Every change script is a rule: join (with priorities), call-next, served / no-show, leave,
pause / resume / close / open, remove, bulk remove, recall, requeue at a position, transfer
(whole, or crashed between its two scripts and completed by the recovery check), `max_waiting`
and the opening-hours boundary (open, close, close with `clear`; every node runs it for the same
boundary, and it acts once). After every step Redis must equal the model, and a line mirror fed
only by the published notices (no Redis reads) must equal it too: positions are exact for every
watcher without a Redis call per watcher.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from protocol.line import LineMirror, Notice, Outcome
from protocol.score import priority_of
from server import transfers
from server.embedded import EmbeddedRedis
from server.errors import ApiError
from server.store import Store

QUEUES = ("model", "other")
VENUE = "venue-1"
FINAL = ("served", "no_show", "left", "removed", "transferred")


@dataclass
class QueueModel:
    state: str = "open"
    line: list[int] = field(default_factory=list)
    priority: dict[int, int] = field(default_factory=dict)
    status: dict[int, str] = field(default_factory=dict)
    nonce: dict[int, str] = field(default_factory=dict)
    next: int = 0
    seq: int = 0
    max_waiting: int | None = None
    called_once: set[int] = field(default_factory=set)
    hours_ms: int = 0  # the last opening-hours boundary acted on

    def place(self, number: int, priority: int) -> int:
        """Insert at the tail of `priority` (higher first, FIFO within); the 1-based position."""
        index = sum(1 for n in self.line if self.priority[n] >= priority)
        self.line.insert(index, number)
        self.priority[number] = priority
        self.status[number] = "waiting"
        return index + 1

    def insert_at(self, number: int, k: int, tail_priority: int) -> int:
        """Before the ticket at k, taking its priority; past the end, the tail of tail_priority."""
        if k > len(self.line):
            return self.place(number, tail_priority)
        self.priority[number] = self.priority[self.line[k - 1]]
        self.line.insert(k - 1, number)
        self.status[number] = "waiting"
        return k

    def finish(self, number: int, status: str) -> None:
        if number in self.line:
            self.line.remove(number)
        self.status[number] = status


def refused_unless_called(status: str, error: str | None) -> bool:
    """Whether a change that needs a called ticket was refused, as it must be, for `status`."""
    if status == "waiting":
        assert error == "ticket_not_called"
    elif status != "called":
        assert error == "ticket_finished"
    else:
        assert error is None
        return False
    return True


class ScriptsMachine(RuleBasedStateMachine):
    redis_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store = Store(self.redis_url, prefix=f"m{secrets.token_hex(4)}")
        self.models = {q: QueueModel() for q in QUEUES}
        self.pending: list[dict[str, Any]] = []  # transfers crashed between their two scripts
        self.pubsub = self.store.redis.pubsub()
        self.mirrors: dict[str, LineMirror] = {}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def attempt(self, coro: Any) -> tuple[dict[str, Any] | None, str | None]:
        try:
            return self.run(coro), None
        except ApiError as exc:
            return None, exc.code

    def teardown(self) -> None:
        self.run(self.pubsub.aclose())
        self.run(self.store.close())
        self.loop.close()

    @initialize()
    def create(self) -> None:
        for q in QUEUES:
            result = self.run(self.store.upsert_queue(q, VENUE, q))
            assert result["created"] is True
            self.run(self.pubsub.ssubscribe(self.store.keys(q).channel))  # notices use SPUBLISH
            snapshot, _ = self.run(self.store.snapshot(q, []))
            self.mirrors[q] = LineMirror(snapshot)

    def pick(self, data: st.DataObject, q: str, statuses: tuple[str, ...] = ()) -> int | None:
        m = self.models[q]
        numbers = sorted(n for n, s in m.status.items() if not statuses or s in statuses)
        return data.draw(st.sampled_from(numbers)) if numbers else None

    # -- the v1 scripts -------------------------------------------------------------------------

    @rule(
        q=st.sampled_from(QUEUES),
        name=st.one_of(st.none(), st.text(min_size=1, max_size=10)),
        priority=st.integers(0, 9),
    )
    def join(self, q: str, name: str | None, priority: int) -> None:
        m = self.models[q]
        result, error = self.attempt(self.store.join(q, name, None, priority=priority))
        if m.state == "closed":
            assert error == "queue_closed"
            return
        if m.max_waiting is not None and len(m.line) >= m.max_waiting:
            assert error == "queue_full"
            return
        assert result is not None and error is None
        m.next += 1
        m.seq += 1
        assert result["number"] == m.next
        assert result["position"] == m.place(m.next, priority)
        assert result["seq"] == m.seq
        m.nonce[m.next] = result["nonce"]

    @rule(q=st.sampled_from(QUEUES), counter=st.sampled_from(["", "desk 1", "desk 2"]))
    def call_next(self, q: str, counter: str) -> None:
        m = self.models[q]
        result, error = self.attempt(self.store.call_next(q, counter or None, None))
        if m.state == "paused":
            assert error == "queue_paused"
            return
        assert result is not None and error is None
        if not m.line:
            assert result == {"empty": True}
            return
        first = m.line.pop(0)
        assert result["number"] == first, "call-next must follow priority, then FIFO"
        assert first not in m.called_once, "a ticket was called twice"
        m.called_once.add(first)
        m.status[first] = "called"
        m.seq += 1

    @rule(q=st.sampled_from(QUEUES), data=st.data(), status=st.sampled_from(["served", "no_show"]))
    def finish(self, q: str, data: st.DataObject, status: str) -> None:
        m = self.models[q]
        number = self.pick(data, q)
        if number is None:
            return
        result, error = self.attempt(self.store.finish(q, number, status))
        if not refused_unless_called(m.status[number], error):
            assert result is not None
            m.finish(number, status)
            m.seq += 1

    @rule(q=st.sampled_from(QUEUES), data=st.data(), forged=st.booleans())
    def leave(self, q: str, data: st.DataObject, forged: bool) -> None:
        m = self.models[q]
        number = self.pick(data, q)
        if number is None:
            return
        nonce = "forged" if forged else m.nonce[number]
        _, error = self.attempt(self.store.leave(q, number, nonce))
        if forged:
            assert error == "unauthorized"
        elif m.status[number] not in ("waiting", "called"):
            assert error == "ticket_finished"
        else:
            assert error is None
            m.finish(number, "left")
            m.seq += 1

    @rule(q=st.sampled_from(QUEUES), action=st.sampled_from(["pause", "resume", "close", "open"]))
    def set_state(self, q: str, action: str) -> None:
        m = self.models[q]
        result, error = self.attempt(self.store.set_state(q, action))
        if action in ("pause", "resume") and m.state == "closed":
            assert error == "queue_closed"
            return
        target = {"pause": "paused", "resume": "open", "close": "closed", "open": "open"}[action]
        assert result is not None and result["state"] == target
        if target != m.state:
            m.seq += 1
        m.state = target

    # -- staff shaping the line -----------------------------------------------------------------

    @rule(q=st.sampled_from(QUEUES), data=st.data())
    def remove(self, q: str, data: st.DataObject) -> None:
        m = self.models[q]
        number = self.pick(data, q)
        if number is None:
            return
        _, error = self.attempt(self.store.remove(q, number, "prank"))
        if m.status[number] not in ("waiting", "called"):
            assert error == "ticket_finished"
        else:
            assert error is None
            m.finish(number, "removed")
            m.seq += 1

    @rule(q=st.sampled_from(QUEUES), data=st.data(), everyone=st.booleans())
    def remove_many(self, q: str, data: st.DataObject, everyone: bool) -> None:
        m = self.models[q]
        numbers = None
        if not everyone:
            known = [*sorted(m.status), m.next + 5]  # one unknown number is skipped
            numbers = data.draw(st.lists(st.sampled_from(known), max_size=6))
        result, error = self.attempt(self.store.remove_many(q, numbers, None))
        assert error is None and result is not None
        doomed = list(m.line) if numbers is None else numbers
        gone = {n for n in doomed if m.status.get(n) in ("waiting", "called")}
        assert result["removed"] == len(gone)
        for n in gone:
            m.finish(n, "removed")
        if gone:
            m.seq += 1

    @rule(q=st.sampled_from(QUEUES), data=st.data(), counter=st.sampled_from(["", "desk 9"]))
    def recall(self, q: str, data: st.DataObject, counter: str) -> None:
        m = self.models[q]
        number = self.pick(data, q)
        if number is None:
            return
        result, error = self.attempt(self.store.recall(q, number, counter or None))
        if not refused_unless_called(m.status[number], error):
            assert result is not None and result["status"] == "called"
            m.seq += 1

    @rule(q=st.sampled_from(QUEUES), data=st.data(), k=st.integers(1, 8))
    def requeue(self, q: str, data: st.DataObject, k: int) -> None:
        m = self.models[q]
        number = self.pick(data, q)
        if number is None:
            return
        result, error = self.attempt(self.store.requeue(q, number, k))
        current = m.status[number]
        if current == "waiting":
            assert error == "ticket_waiting"
        elif current not in ("called", "no_show"):
            assert error == "ticket_finished"
        else:
            assert error is None and result is not None
            assert result["position"] == m.insert_at(number, k, 0)
            assert result["priority"] == m.priority[number]
            m.called_once.discard(number)  # back in line: it may be called once more
            m.seq += 1

    def _intent(self, src: str, number: int, k: int | None) -> dict[str, Any]:
        m = self.models[src]
        ticket = {"name": None, "priority": m.priority.get(number, 0)}
        dst = QUEUES[1 - QUEUES.index(src)]
        return transfers.new_intent(VENUE, src, number, dst, ticket, k)

    def _arrive(self, intent: dict[str, Any], number: int) -> None:
        """The model of transfer_in: a new ticket in the target, like a join or an insertion."""
        t = self.models[intent["to_queue"]]
        t.next += 1
        t.seq += 1
        assert number == t.next
        k = intent["position"]
        if k is None:
            t.place(number, intent["priority"])
        else:
            t.insert_at(number, k, intent["priority"])
        t.nonce[number] = intent["nonce"]

    def _arrival_refused(self, intent: dict[str, Any]) -> str | None:
        t = self.models[intent["to_queue"]]
        if t.state == "closed":
            return "queue_closed"
        if t.max_waiting is not None and len(t.line) >= t.max_waiting:
            return "queue_full"
        return None

    @rule(src=st.sampled_from(QUEUES), data=st.data(), k=st.one_of(st.none(), st.integers(1, 6)))
    def transfer(self, src: str, data: st.DataObject, k: int | None) -> None:
        number = self.pick(data, src, ("waiting", "called"))
        if number is None:
            return
        intent = self._intent(src, number, k)
        result, error = self.attempt(transfers.transfer(self.store, intent))
        refused = self._arrival_refused(intent)
        if refused:
            assert error == refused
            return
        assert error is None and result is not None
        self._arrive(intent, result.number)
        self.models[src].finish(number, "transferred")
        self.models[src].seq += 1

    @rule(src=st.sampled_from(QUEUES), data=st.data())
    def transfer_crashes_half_way(self, src: str, data: st.DataObject) -> None:
        """The node dies after transfer_in: the intent stays behind for the recovery check."""
        number = self.pick(data, src, ("waiting", "called"))
        if number is None or self._arrival_refused(self._intent(src, number, None)):
            return
        if any(i["from_queue"] == src and i["from_number"] == number for i in self.pending):
            return  # which of two half-done transfers of one ticket wins is not the point here
        intent = self._intent(src, number, None)
        self.run(self.store.save_transfer(intent))
        arrived = self.run(self.store.transfer_in(intent))
        self._arrive(intent, int(arrived["number"]))
        intent["arrived"] = int(arrived["number"])
        self.pending.append(intent)

    @rule()
    def recovery_check(self) -> None:
        done = self.run(transfers.complete_pending(self.store, older_than_ms=0))
        assert done == len(self.pending)
        for intent in self.pending:
            s, t = self.models[intent["from_queue"]], self.models[intent["to_queue"]]
            if s.status[intent["from_number"]] in ("waiting", "called"):
                s.finish(intent["from_number"], "transferred")
                s.seq += 1
            elif t.status[intent["arrived"]] in ("waiting", "called"):
                # the customer finished meanwhile: the arrival is taken back out
                t.finish(intent["arrived"], "removed")
                t.seq += 1
        self.pending = []
        assert self.run(self.store.pending_transfers()) == []

    @rule(q=st.sampled_from(QUEUES), limit=st.one_of(st.none(), st.integers(1, 4)))
    def max_waiting(self, q: str, limit: int | None) -> None:
        fields = {"max_waiting": "" if limit is None else str(limit)}
        change = {"max_waiting": limit}
        now_ms = int(time.time() * 1000)
        assert self.run(self.store.change_settings(q, change, fields, now_ms))["changed"]
        self.models[q].max_waiting = limit
        self.models[q].seq += 1

    @rule(
        q=st.sampled_from(QUEUES),
        at_ms=st.integers(1, 12),
        action=st.sampled_from(["open", "close"]),
        clear=st.booleans(),
    )
    def boundary(self, q: str, at_ms: int, action: str, clear: bool) -> None:
        """Two nodes' schedulers run the same boundary at once: one acts, and only on a boundary
        newer than the last one acted on."""
        m = self.models[q]

        async def two_nodes() -> list[dict[str, Any]]:
            runs = (self.store.boundary(q, at_ms, action, clear) for _ in range(2))
            return list(await asyncio.gather(*runs))

        both = self.run(two_nodes())
        acted = [r for r in both if r["acted"]]
        if at_ms <= m.hours_ms:
            assert acted == []
            return
        assert len(acted) == 1
        m.hours_ms = at_ms
        target = "open" if action == "open" else "closed"
        removed = list(m.line) if action == "close" and clear else []  # called ones stay
        for number in removed:
            m.finish(number, "removed")
        assert acted[0]["removed"] == len(removed)
        m.seq += bool(removed) + (m.state != target)
        m.state = target

    # -- what must hold after every step --------------------------------------------------------

    @invariant()
    def redis_matches_model(self) -> None:
        for q, m in self.models.items():
            k = self.store.keys(q)
            rows = self.run(self.store.redis.zrange(k.line, 0, -1, withscores=True))
            assert [int(n) for n, _ in rows] == m.line
            assert [priority_of(s) for _, s in rows] == [m.priority[n] for n in m.line]
            meta = self.run(self.store.queue_meta(q))
            assert meta is not None
            assert (meta["state"], int(meta["seq"]), int(meta["waiting"])) == (
                m.state,
                m.seq,
                len(m.line),
            )
            assert self.run(self.store.redis.xlen(k.events)) == m.seq
            called = {int(n) for n in self.run(self.store.redis.zrange(k.called, 0, -1))}
            assert called == {n for n, s in m.status.items() if s == "called"}
            for number, status in m.status.items():
                view = self.run(self.store.ticket(q, number))
                assert view is not None and view.status == status
                expected = m.line.index(number) + 1 if status == "waiting" else None
                assert view.position == expected

    @invariant()
    def notices_alone_keep_a_mirror_exact(self) -> None:
        if not self.mirrors:
            return
        channels = {self.store.keys(q).channel.encode(): q for q in QUEUES}
        deadline = time.monotonic() + 5
        while any(self.mirrors[q].seq < m.seq for q, m in self.models.items()):
            assert time.monotonic() < deadline, "notices did not arrive"
            message = self.run(self.pubsub.get_message(timeout=0.2))
            if message is None or message["type"] != "smessage":
                continue
            q = channels[message["channel"]]
            outcome, _ = self.mirrors[q].apply(Notice.from_wire(message["data"]))
            if outcome is Outcome.GAP:  # a re-spaced band: only a snapshot can follow it
                snapshot, _ = self.run(self.store.snapshot(q, []))
                self.mirrors[q].reset(snapshot)
        for q, m in self.models.items():
            mirror = self.mirrors[q]
            assert list(mirror.numbers) == m.line
            assert [mirror.position(n) for n in m.line] == list(range(1, len(m.line) + 1))


@pytest.mark.timeout(600)
def test_scripts_follow_the_model(redis_server: EmbeddedRedis) -> None:
    ScriptsMachine.redis_url = redis_server.url
    runner = ScriptsMachine.TestCase()
    runner.settings = settings(
        max_examples=50,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    runner.runTest()
