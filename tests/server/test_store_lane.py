"""The script lane (server/store/lane.py): one multiplexed connection, on real Redis.

It must answer exactly as redis-py does (same types, a missing field included), hand every reply
to its own caller however many are in flight or cancelled, load a script Redis does not know,
and fail the calls in flight when Redis dies, then reconnect.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import os
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError

from server.embedded import EmbeddedRedis
from server.errors import Unavailable
from server.store import Store
from server.store.lane import ScriptLane, pack

ECHO = "return {KEYS[1], ARGV[1], tonumber(ARGV[2])}"
SET = "return redis.call('SET', KEYS[1], ARGV[1])"


@pytest_asyncio.fixture
async def plain(redis_server: EmbeddedRedis, prefix: str) -> AsyncIterator[Store]:
    """The same keys as the `store` fixture, with scripts on redis-py's pool."""
    s = Store(redis_server.url, prefix, lane=False)
    yield s
    await s.close()


class _Name(enum.StrEnum):
    LINE = "line"


class _Count(enum.IntEnum):
    TWO = 2


def _sha(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


@pytest.mark.parametrize(
    ("args", "wire"),
    [
        (("GET", "k"), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
        (("SET", "k", 12), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"),
        (("SET", b"\r\n", -1), b"*3\r\n$3\r\nSET\r\n$2\r\n\r\n\r\n$2\r\n-1\r\n"),
        (("SET", "é", 0.5), b"*3\r\n$3\r\nSET\r\n$2\r\n\xc3\xa9\r\n$3\r\n0.5\r\n"),
        # subclasses of str and int (a StrEnum, an IntEnum) and a memoryview, as their values
        (
            (_Name.LINE, _Count.TWO, memoryview(b"ab")),
            b"*3\r\n$4\r\nline\r\n$1\r\n2\r\n$2\r\nab\r\n",
        ),
    ],
)
def test_commands_are_packed_as_resp_arrays(args: tuple[str, ...], wire: bytes) -> None:
    assert pack(args) == wire


@pytest.mark.parametrize("bad", [True, None, [1]])
def test_an_argument_redis_cannot_take_is_refused(bad: object) -> None:
    with pytest.raises(TypeError):
        pack(("SET", "k", bad))  # type: ignore[arg-type]


async def test_read_scripts_answer_as_redis_py_does(store: Store, plain: Store) -> None:
    assert store.lane is not None and plain.lane is None
    await store.upsert_queue("q", "venue", "Q")
    for name in ("Ann", "Bo", None):
        await store.join("q", name, None)
    await store.call_next("q", None, None)
    k = store.keys("q")
    # Tickets that exist, one called (no rank) and ones that never did (missing fields).
    cases: list[tuple[str, list[str], list[str | int]]] = [
        ("read_meta", [k.meta, k.line], []),
        ("read_ticket", [k.meta, k.line, k.tickets], [1, 2, 3, 99]),
        ("read_snapshot", [k.meta, k.line, k.tickets], ["2", "98"]),
        ("read_snapshot", [store.keys("none").meta, k.line, k.tickets], ["1"]),
    ]
    for name, keys, args in cases:
        via_lane = await store._read(name, keys, args)
        via_pool = await plain._read(name, keys, args)
        assert via_lane == via_pool, name
        assert repr(via_lane) == repr(via_pool), name  # False stays False, not None or 0
    assert await store.tickets("q", [1, 2, 3, 99]) == await plain.tickets("q", [1, 2, 3, 99])


async def test_every_caller_gets_its_own_reply_with_many_in_flight(
    redis_server: EmbeddedRedis,
) -> None:
    lane = ScriptLane(redis_server.url)
    try:
        key = f"lane-{secrets.token_hex(4)}"
        calls = [lane.evalsha(_sha(ECHO), ECHO, [key], [f"v{i}", i]) for i in range(2000)]
        replies = await asyncio.gather(*calls)
        assert replies == [[key.encode(), f"v{i}".encode(), i] for i in range(2000)]
    finally:
        await lane.close()


async def test_a_cancelled_call_does_not_shift_the_replies(redis_server: EmbeddedRedis) -> None:
    lane = ScriptLane(redis_server.url)
    try:
        await lane.evalsha(_sha(ECHO), ECHO, ["k"], ["warm", 0])  # connected, script loaded
        tasks = [
            asyncio.ensure_future(lane.evalsha(_sha(ECHO), ECHO, ["k"], [f"v{i}", i]))
            for i in range(5)
        ]
        await asyncio.sleep(0)  # all five written
        tasks[1].cancel()
        tasks[3].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(done[1], asyncio.CancelledError)
        assert [done[i] for i in (0, 2, 4)] == [[b"k", f"v{i}".encode(), i] for i in (0, 2, 4)]
        assert await lane.evalsha(_sha(ECHO), ECHO, ["k"], ["after", 7]) == [b"k", b"after", 7]
    finally:
        await lane.close()


async def test_a_script_redis_does_not_know_is_loaded_and_run(
    redis_server: EmbeddedRedis,
) -> None:
    source = f"-- {secrets.token_hex(8)}\nreturn ARGV[1]"  # never loaded before
    lane = ScriptLane(redis_server.url)
    try:
        assert await lane.evalsha(_sha(source), source, [], ["fresh"]) == b"fresh"
    finally:
        await lane.close()


async def test_a_script_error_is_raised_to_its_caller_only(redis_server: EmbeddedRedis) -> None:
    failing = "return redis.error_reply('NOPE it failed')"
    lane = ScriptLane(redis_server.url)
    try:
        bad = lane.evalsha(_sha(failing), failing, [], [])
        good = lane.evalsha(_sha(ECHO), ECHO, ["k"], ["ok", 1])
        results = await asyncio.gather(bad, good, return_exceptions=True)
        assert "NOPE it failed" in str(results[0])
        assert results[1] == [b"k", b"ok", 1]
    finally:
        await lane.close()


async def test_the_database_of_the_url_is_selected(redis_server: EmbeddedRedis) -> None:
    url = redis_server.url.rsplit("/", 1)[0] + "/3"
    key = f"lane-db-{secrets.token_hex(4)}"
    lane, check = ScriptLane(url), aioredis.Redis.from_url(url)
    try:
        await lane.evalsha(_sha(SET), SET, [key], ["here"])
        assert await check.get(key) == b"here"
    finally:
        await check.delete(key)
        await check.aclose()
        await lane.close()


async def test_a_wrong_password_is_refused_as_a_connection_error(
    redis_server: EmbeddedRedis,
) -> None:
    url = redis_server.url.replace("://:", "://:wrong", 1)
    lane = ScriptLane(url)
    try:
        with pytest.raises(ConnectionError, match="refused"):
            await lane.evalsha(_sha(ECHO), ECHO, ["k"], ["x", 1])
    finally:
        await lane.close()


@pytest_asyncio.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


async def test_calls_in_flight_fail_when_redis_dies_and_the_next_reconnects(
    own_redis: EmbeddedRedis, prefix: str
) -> None:
    store = Store(own_redis.url, prefix)
    try:
        await store.upsert_queue("q", "venue", "Q")
        assert (await store.join("q", "Ann", None))["number"] == 1
        proc = own_redis._proc
        assert proc is not None
        pid = proc.pid
        os.kill(pid, signal.SIGSTOP)  # the calls below are written but never answered
        try:
            in_flight = [asyncio.ensure_future(store.join("q", "Bo", None)) for _ in range(3)]
            await asyncio.sleep(0.2)
            assert not any(t.done() for t in in_flight)
        finally:
            os.kill(pid, signal.SIGKILL)
            os.kill(pid, signal.SIGCONT)
        for task in in_flight:
            with pytest.raises(Unavailable):
                await asyncio.wait_for(task, 5)
        # Gone before it is started again: reap() does not wait, and start() leaves a server
        # that has not exited yet running (the join below then met its closing port).
        await asyncio.to_thread(proc.wait, 10)
        assert own_redis.reap() is not None
        own_redis.start()  # same port, same AOF; its script cache is empty
        assert (await store.join("q", "Cy", None))["number"] >= 2
    finally:
        await store.close()
