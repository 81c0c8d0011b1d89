"""Helpers for the fault tests: a real `vqueue serve` with embedded services, the pids of its
children, zombie checks, a join load that records when each join was acknowledged, and the
persisted event log read back through the API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from server.keys import queue_keys
from tests.conftest import ServerProcess
from tests.server.watchers import RecordingWatcher, settle

STAFF_KEY_LINE = re.compile(r"vqueue: staff key\s+(\S+)")
REDIS_LINE = re.compile(r"embedded Redis at 127\.0\.0\.1:(\d+) \(data in (\S+)\)")
RESTART_LIMIT_S = 5.0  # the supervisor's promise
EXACT_LIMIT_S = 10.0  # watchers back at their true place after a restart


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A data folder outside pytest's: PostgreSQL runs as another user when we are root, and a
    concurrent pytest session resets /tmp/pytest-of-<user> to 0700 under it."""
    path = Path(tempfile.mkdtemp(prefix="vqueue-faults-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a small venue's node: nothing configured but the data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VQ_", "REDIS_", "DATABASE_"))}
    # The load comes from loopback: the abuse limits are not what these tests are about.
    env.update(VQ_DATA_DIR=str(data_dir), VQ_RESYNC_CHECK_S="0", VQ_LOG_LEVEL="INFO")
    env.update(VQ_RATE_EXEMPT="127.0.0.0/8,::1", VQ_DEMO="1")
    env.update(extra)
    return env


@dataclass
class EmbeddedNode:
    """`vqueue serve` with its own Redis and PostgreSQL children, and the demo queue."""

    server: ServerProcess
    data_dir: Path
    staff_key: str = ""
    redis_url: str = ""

    def start(self) -> None:
        self.server.start(timeout_s=120)
        log = self.server.log_text()
        key, redis = STAFF_KEY_LINE.search(log), REDIS_LINE.search(log)
        assert key and redis, log[-3000:]
        # The embedded Redis wants its password, kept for its owner in its data folder.
        password = (Path(redis.group(2)) / "redis.password").read_text().strip()
        self.staff_key = key.group(1)
        self.redis_url = f"redis://:{password}@127.0.0.1:{redis.group(1)}/0"

    @property
    def pid(self) -> int:
        assert self.server.proc is not None
        return self.server.proc.pid

    def redis_pid(self) -> int:
        with redis.Redis.from_url(self.redis_url, socket_timeout=2) as client:
            return int(client.info("server")["process_id"])

    def postgres_pid(self) -> int:
        """The postmaster's pid once it accepts connections (ValueError before)."""
        lines = (self.data_dir / "postgres" / "postgres" / "postmaster.pid").read_text().split("\n")
        if len(lines) < 8 or lines[7].strip() != "ready":
            raise ValueError("postgres is not accepting connections")
        return int(lines[0])

    def queue_seq(self, queue: str) -> int:
        with redis.Redis.from_url(self.redis_url, socket_timeout=2) as client:
            return int(client.hget(queue_keys("vq", queue).meta, "seq") or 0)


def process_state(pid: int) -> str | None:
    """'R', 'S', 'Z' (zombie)... from /proc, or None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def zombie_children(parent: int) -> list[str]:
    """Dead children of `parent` that nobody has reaped, as 'pid (name)'."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat.split(" (", 1)[1].rsplit(")", 1)
        fields = rest.split()
        if fields[0] == "Z" and int(fields[1]) == parent:
            found.append(f"{entry.name} ({name})")
    return found


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str) -> float:
    """Poll `condition` until it holds; the seconds it took. Fails with `what` at the deadline."""
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout_s, f"{what}: not within {timeout_s} s"
        time.sleep(0.02)
    return time.monotonic() - began


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def new_pid(read_pid: Callable[[], int], old: int) -> Callable[[], bool]:
    def changed() -> bool:
        try:
            return read_pid() != old
        except (OSError, ValueError, IndexError, redis.RedisError):
            return False

    return changed


@dataclass
class JoinLoad:
    """Joins sent back to back by a few clients; each acknowledged one with its ack time."""

    http: httpx.AsyncClient
    queue: str
    clients: int = 3
    acked: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    refused: int = 0  # 503s and dropped connections while a service was down
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        await asyncio.gather(*(self._client(i) for i in range(self.clients)))

    def stop(self) -> None:
        self._stop.set()

    async def _client(self, i: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                r = await self.http.post(
                    f"/v1/queues/{self.queue}/tickets", json={"name": f"c{i}-{n}"}
                )
            except httpx.HTTPError:
                self.refused += 1
                await asyncio.sleep(0.05)
                continue
            if r.status_code == 201:
                self.acked.append((time.monotonic(), r.json()))
            else:
                assert r.status_code == 503, r.text  # unavailable, never a 500
                self.refused += 1
                await asyncio.sleep(0.05)

    def before(self, instant: float) -> list[dict[str, Any]]:
        return [ticket for at, ticket in self.acked if at < instant]

    def must_survive(self, kills: list[float], window_s: float = 1.0) -> list[dict[str, Any]]:
        """Joins acknowledged before the last kill and not within `window_s` before any kill."""
        return [
            ticket
            for at, ticket in self.acked
            if at < kills[-1] and not any(k - window_s <= at < k for k in kills)
        ]


async def call_next(http: httpx.AsyncClient, queue: str, key: str, times: int) -> None:
    """Call `times` tickets; a 503 (a pooled connection that died with the service) is the
    contract's answer right after a restart, so it is retried, within a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    done = 0
    while done < times:
        r = await http.post(
            f"/v1/queues/{queue}/call-next", headers={"Authorization": f"Bearer {key}"}
        )
        if r.status_code == 503 and loop.time() < deadline:
            await asyncio.sleep(0.05)
            continue
        assert r.status_code in (200, 204), r.text
        done += 1


@contextlib.asynccontextmanager
async def running(load: JoinLoad) -> AsyncIterator[JoinLoad]:
    """The load runs in the background for the block, and is stopped even if the block fails."""
    task = asyncio.get_running_loop().create_task(load.run())
    try:
        yield load
    finally:
        load.stop()
        await task


async def settle_after_restart(
    watchers: list[RecordingWatcher], http: httpx.AsyncClient, queue: str, key: str
) -> list[tuple[str, int | None, int | None]]:
    """`settle`, where reading the truth may first meet a 503 from a pooled connection that
    died with Redis (the contract's answer, with Retry-After): read again, within the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + EXACT_LIMIT_S
    while True:
        try:
            return await settle(watchers, http, queue, key, max(0.1, deadline - loop.time()))
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 503 or loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def lost_tickets(http: httpx.AsyncClient, tickets: list[dict[str, Any]]) -> list[str]:
    """The acknowledged tickets the server no longer knows (their token no longer works).

    A 503 is asked again: just after a Redis restart a read can meet a pooled connection the
    restart closed, which says nothing of the ticket."""
    lost = []
    for t in tickets:
        for _ in range(20):
            r = await http.get(
                f"/v1/tickets/{t['ticket_id']}", headers={"Authorization": f"Bearer {t['token']}"}
            )
            if r.status_code != 503:
                break
            await asyncio.sleep(0.1)
        if r.status_code != 200:
            lost.append(t["ticket_id"])
    return lost


async def persisted_events(http: httpx.AsyncClient, queue: str, key: str) -> list[dict[str, Any]]:
    """Every event of `queue` in PostgreSQL, paged through the events API."""
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        r = await http.get(
            f"/v1/queues/{queue}/events",
            params={"after_seq": after, "limit": 1000},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 200, r.text
        page = r.json()
        events += page["events"]
        if not page["events"]:
            return events
        after = page["next_after_seq"]


async def wait_persisted(
    http: httpx.AsyncClient, queue: str, key: str, seq: int, timeout_s: float
) -> list[dict[str, Any]]:
    """The event log once it reaches `seq` (the live queue's), within a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        events = await persisted_events(http, queue, key)
        if (events and events[-1]["seq"] >= seq) or loop.time() > deadline:
            return events
        await asyncio.sleep(0.2)


def assert_log_complete(events: list[dict[str, Any]], seq: int, joined: list[str]) -> None:
    """Seqs 1..seq each exactly once, and each acknowledged join logged exactly once."""
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, seq + 1)), f"log has {len(seqs)} events, queue seq {seq}"
    logged = [e["ticket_id"] for e in events if e["type"] == "joined"]
    assert len(logged) == len(set(logged)), "a join logged twice"
    missing = set(joined) - set(logged)
    assert not missing, f"{len(missing)} acknowledged joins missing from the log"
