"""The Lua scripts against a plain Python model of a queue, driven by hypothesis, on real Redis."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from server.embedded import EmbeddedRedis
from server.errors import ApiError
from server.store import Store

QUEUE = "model"


class QueueModel:
    def __init__(self) -> None:
        self.state = "open"
        self.line: list[int] = []
        self.status: dict[int, str] = {}
        self.nonce: dict[int, str] = {}
        self.next = 0
        self.seq = 0
        self.called_once: set[int] = set()


class ScriptsMachine(RuleBasedStateMachine):
    redis_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store = Store(self.redis_url, prefix=f"m{secrets.token_hex(4)}")
        self.model = QueueModel()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def attempt(self, coro: Any) -> tuple[dict[str, Any] | None, str | None]:
        try:
            return self.run(coro), None
        except ApiError as exc:
            return None, exc.code

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()

    @initialize()
    def create(self) -> None:
        result = self.run(self.store.upsert_queue(QUEUE, "venue-1", "Model"))
        assert result["created"] is True

    @rule(name=st.one_of(st.none(), st.text(min_size=1, max_size=10)))
    def join(self, name: str | None) -> None:
        m = self.model
        result, error = self.attempt(self.store.join(QUEUE, name, None))
        if m.state == "closed":
            assert error == "queue_closed"
            return
        assert result is not None and error is None
        m.next += 1
        m.seq += 1
        assert result["number"] == m.next
        assert result["position"] == len(m.line) + 1
        assert result["seq"] == m.seq
        m.line.append(m.next)
        m.status[m.next] = "waiting"
        m.nonce[m.next] = result["nonce"]

    @rule(counter=st.sampled_from(["", "desk 1", "desk 2"]))
    def call_next(self, counter: str) -> None:
        m = self.model
        result, error = self.attempt(self.store.call_next(QUEUE, counter or None, None))
        if m.state == "paused":
            assert error == "queue_paused"
            return
        assert result is not None and error is None
        if not m.line:
            assert result == {"empty": True}
            return
        first = m.line.pop(0)
        assert result["number"] == first, "call-next must take the head of the line"
        assert first not in m.called_once, "a ticket was called twice"
        m.called_once.add(first)
        m.status[first] = "called"
        m.seq += 1

    @rule(data=st.data(), status=st.sampled_from(["served", "no_show"]))
    def finish(self, data: st.DataObject, status: str) -> None:
        m = self.model
        if not m.status:
            return
        number = data.draw(st.sampled_from(sorted(m.status)))
        result, error = self.attempt(self.store.finish(QUEUE, number, status))
        current = m.status[number]
        if current == "waiting":
            assert error == "ticket_not_called"
        elif current != "called":
            assert error == "ticket_finished"
        else:
            assert error is None and result is not None
            m.status[number] = status
            m.seq += 1

    @rule(data=st.data(), forged=st.booleans())
    def leave(self, data: st.DataObject, forged: bool) -> None:
        m = self.model
        if not m.status:
            return
        number = data.draw(st.sampled_from(sorted(m.status)))
        nonce = "forged" if forged else m.nonce[number]
        _, error = self.attempt(self.store.leave(QUEUE, number, nonce))
        current = m.status[number]
        if forged:
            assert error == "unauthorized"
        elif current not in ("waiting", "called"):
            assert error == "ticket_finished"
        else:
            assert error is None
            if current == "waiting":
                m.line.remove(number)
            m.status[number] = "left"
            m.seq += 1

    @rule(action=st.sampled_from(["pause", "resume", "close", "open"]))
    def set_state(self, action: str) -> None:
        m = self.model
        result, error = self.attempt(self.store.set_state(QUEUE, action))
        if action in ("pause", "resume") and m.state == "closed":
            assert error == "queue_closed"
            return
        target = {"pause": "paused", "resume": "open", "close": "closed", "open": "open"}[action]
        assert result is not None and result["state"] == target
        if target != m.state:
            m.seq += 1
        m.state = target

    @invariant()
    def redis_matches_model(self) -> None:
        m = self.model
        k = self.store.keys(QUEUE)
        line = [int(n) for n in self.run(self.store.redis.zrange(k.line, 0, -1))]
        assert line == m.line
        meta = self.run(self.store.queue_meta(QUEUE))
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
            view = self.run(self.store.ticket(QUEUE, number))
            assert view is not None and view.status == status
            expected = m.line.index(number) + 1 if status == "waiting" else None
            assert view.position == expected


@pytest.mark.timeout(300)
def test_scripts_follow_the_model(redis_server: EmbeddedRedis) -> None:
    ScriptsMachine.redis_url = redis_server.url
    runner = ScriptsMachine.TestCase()
    runner.settings = settings(
        max_examples=60,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    runner.runTest()
