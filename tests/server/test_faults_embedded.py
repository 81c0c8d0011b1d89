"""A small venue's node (`vqueue serve`, nothing configured) whose embedded Redis or PostgreSQL
is killed with SIGKILL: the supervisor reaps the child, restarts it from its data folder within
5 s, and the node answers again with nothing acknowledged lost.

The node runs with the drift check off (VQ_RESYNC_CHECK_S=0), so watchers can only be put right
by the notice path's resubscribe; the tests assert that no drift resync happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import redis

from tests.conftest import ServerProcess
from tests.server.faults import (
    RESTART_LIMIT_S,
    EmbeddedNode,
    JoinLoad,
    assert_log_complete,
    call_next,
    embedded_env,
    lost_tickets,
    new_pid,
    outside_tmp,
    process_state,
    ready,
    running,
    settle_after_restart,
    wait_for,
    wait_persisted,
    zombie_children,
)
from tests.server.watchers import RecordingWatcher

__all__ = ["outside_tmp"]  # a fixture
QUEUE = "demo"
WATCHED = 60
# (kills, seconds of load before each): one in make test; in make soak, ~60 s of kills
ROUNDS = [(1, 2.0), pytest.param(6, 10.0, marks=pytest.mark.soak)]


@pytest.fixture
def node(tmp_path: Path, outside_tmp: Path) -> Iterator[EmbeddedNode]:
    server = ServerProcess(embedded_env(outside_tmp / "data"))
    server.log_path = tmp_path / "server.log"
    embedded = EmbeddedNode(server, outside_tmp / "data")
    embedded.start()
    wait_for(lambda: ready(server.url), 60, "the node never became ready")
    yield embedded
    children = [embedded.redis_pid(), embedded.postgres_pid()]  # restarted ones, by now
    server.stop()
    # Stopped with the node, restarted children included: none is left running.
    wait_for(lambda: all(process_state(pid) in (None, "Z") for pid in children), 30, "orphans")
    for name in ("redis", "postgres"):  # their logs, kept with the test's files for diagnosis
        with contextlib.suppress(OSError):
            shutil.copy(outside_tmp / "data" / name / f"{name}.log", tmp_path)
    log = server.log_text()
    assert "Traceback" not in log, log[-4000:]


@pytest_asyncio.fixture
async def http(node: EmbeddedNode) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=node.server.url, timeout=20) as client:
        yield client


def _kill_and_wait_restart(node: EmbeddedNode, pid: int, read_pid: Any) -> tuple[float, float]:
    """SIGKILL `pid`; (seconds until a new child runs, seconds until /readyz is 200)."""
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(new_pid(read_pid, pid), 30, "the child was not restarted")
    restarted = time.monotonic() - killed
    wait_for(lambda: ready(node.server.url), 30, "the node did not answer again")
    # Reaped by the supervisor: neither the old pid nor any other child is left a zombie.
    assert process_state(pid) is None, f"pid {pid} is {process_state(pid)}"
    assert zombie_children(node.pid) == []
    return restarted, time.monotonic() - killed


async def _resyncs(http: httpx.AsyncClient) -> dict[str, int]:
    """The node's resync counters, which an operator's /readyz carries with a 503 too. Readiness
    after the restart is `_kill_and_wait_restart`'s check; here the probe's one-second Redis PING
    once missed in CI at the end of a run that had passed every other check (not reproduced in
    30 runs here; an embedded Redis stalled on its AOF's fsync would do it)."""
    r = await http.get("/readyz")
    assert r.status_code in (200, 503), r.text
    counts: dict[str, int] = r.json()["resyncs"]
    return counts


async def _watched_line(http: httpx.AsyncClient, node: EmbeddedNode) -> list[RecordingWatcher]:
    watchers = []
    for i in range(WATCHED):
        r = await http.post(f"/v1/queues/{QUEUE}/tickets", json={"name": f"w{i}"})
        assert r.status_code == 201, r.text
        t = r.json()
        watcher = RecordingWatcher(t["ticket_id"], t["token"], node.server.ws_url)
        await watcher.start()
        watchers.append(watcher)
    return watchers


async def _acked_more(load: JoinLoad, more: int, for_s: float = 0.0) -> None:
    """Let the load run until `more` joins more are acknowledged, over `for_s` at least."""
    target, until = len(load.acked) + more, time.monotonic() + for_s
    await asyncio.to_thread(
        wait_for,
        lambda: len(load.acked) >= target and time.monotonic() >= until,
        30,
        "joins stalled",
    )


@pytest.mark.parametrize(("rounds", "gap_s"), ROUNDS)
@pytest.mark.timeout(300)
async def test_embedded_redis_killed(
    node: EmbeddedNode, http: httpx.AsyncClient, rounds: int, gap_s: float
) -> None:
    with redis.Redis.from_url(node.redis_url, decode_responses=True) as client:
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
    watchers = await _watched_line(http, node)
    async with running(JoinLoad(http, QUEUE)) as load:
        kills: list[float] = []
        figures = []
        before = (await _resyncs(http))["resubscribe"]
        for _ in range(rounds):
            await _acked_more(load, 40, for_s=gap_s)  # joins older than the AOF's 1 s window
            await call_next(http, QUEUE, node.staff_key, 3)
            pid = node.redis_pid()
            killed_at = time.monotonic()
            restart_s, ready_s = await asyncio.to_thread(
                _kill_and_wait_restart, node, pid, node.redis_pid
            )
            assert restart_s <= RESTART_LIMIT_S, f"redis back after {restart_s:.2f} s"
            kills.append(killed_at)
            await call_next(http, QUEUE, node.staff_key, 2)  # the live path after the restart
            wrong = await settle_after_restart(watchers, http, QUEUE, node.staff_key)
            assert wrong == [], f"{len(wrong)} watchers off: {wrong[:10]}"
            exact_s = time.monotonic() - killed_at
            figures.append((round(restart_s, 2), round(ready_s, 2), round(exact_s, 2)))
            await _acked_more(load, 20)  # and joins are acknowledged again
    wrong = await settle_after_restart(watchers, http, QUEUE, node.staff_key)
    assert wrong == [], f"{len(wrong)} watchers off: {wrong[:10]}"
    must_survive = load.must_survive(kills)
    assert await lost_tickets(http, must_survive) == []
    counts = await _resyncs(http)
    assert counts["drift"] == 0, counts
    assert counts["resubscribe"] >= before + rounds, counts  # how the watchers were put right
    assert node.server.log_text().count("redis died (exit status -9); restarted") == rounds
    print(
        f"\nFIGURES redis x{rounds}: (restart s, ready s, watchers exact s) {figures}; joins "
        f"acked {len(load.acked)}, acked >1 s before a kill {len(must_survive)}, lost 0; "
        f"resyncs {counts}"
    )
    for watcher in watchers:
        await watcher.stop()


@pytest.mark.parametrize(("rounds", "gap_s"), ROUNDS)
@pytest.mark.timeout(300)
async def test_embedded_postgres_killed(
    node: EmbeddedNode, http: httpx.AsyncClient, rounds: int, gap_s: float
) -> None:
    async with running(JoinLoad(http, QUEUE)) as load:
        figures = []
        for _ in range(rounds):
            await _acked_more(load, 40, for_s=gap_s)
            await call_next(http, QUEUE, node.staff_key, 3)
            pid = node.postgres_pid()
            restart_s, ready_s = await asyncio.to_thread(
                _kill_and_wait_restart, node, pid, node.postgres_pid
            )
            assert restart_s <= RESTART_LIMIT_S, f"postgres back after {restart_s:.2f} s"
            figures.append((round(restart_s, 2), round(ready_s, 2)))
            await call_next(http, QUEUE, node.staff_key, 2)
            await _acked_more(load, 20)
    seq = node.queue_seq(QUEUE)
    events = await wait_persisted(http, QUEUE, node.staff_key, seq, timeout_s=30)
    assert_log_complete(events, seq, [t["ticket_id"] for _, t in load.acked])
    assert node.server.log_text().count("postgres died (exit status -9); restarted") == rounds
    print(
        f"\nFIGURES postgres x{rounds}: (restart s, ready s) {figures}; joins acked "
        f"{len(load.acked)}; events 1..{seq} each logged once"
    )


async def _join(http: httpx.AsyncClient, name: str) -> httpx.Response:
    return await http.post(f"/v1/queues/{QUEUE}/tickets", json={"name": name})


@pytest.mark.timeout(120)
async def test_embedded_redis_back_without_its_last_writes_is_rebuilt_before_any_change(
    node: EmbeddedNode, http: httpx.AsyncClient
) -> None:
    kept = [(await _join(http, f"k{i}")).json() for i in range(5)]
    with redis.Redis.from_url(node.redis_url) as client:
        # For certain what a slow disk does to everysec's last second or two: written to Redis,
        # copied to PostgreSQL by the persister, never to the append-only file.
        client.config_set("appendonly", "no")
    unwritten = [(await _join(http, f"u{i}")).json() for i in range(10)]
    await wait_persisted(http, QUEUE, node.staff_key, node.queue_seq(QUEUE), timeout_s=30)
    os.kill(node.redis_pid(), signal.SIGKILL)
    # Customers join again at once: the first changes the restarted Redis takes.
    after: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(after) < 5 and time.monotonic() < deadline:
        r = await _join(http, f"a{len(after)}")
        if r.status_code == 201:
            after.append(r.json())
        else:
            assert r.status_code == 503, r.text  # Redis down or still loading: try again
            await asyncio.sleep(0.01)
    assert len(after) == 5, "joins were not taken again"
    # The unwritten joins came back from the log before any new one: none lost, none reused.
    tickets = kept + unwritten + after
    assert await lost_tickets(http, tickets) == []
    numbers = [t["number"] for t in tickets]
    assert len(set(numbers)) == len(numbers), numbers
    assert min(t["number"] for t in after) > max(t["number"] for t in unwritten)
    assert "checked against the event log" in node.server.log_text()
