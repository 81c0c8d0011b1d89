"""A notice is applied, and its flush written, in the turn of the event loop that read it.

In a connect storm a turn of the loop is tens of milliseconds; a queue between the pub/sub
reader and the fan-out, and a timer for a flush already due, each put one more turn between a
staff call and the watchers who see it (docs/architecture.md, "A storm must not hold the loop").
The fan-out runs in process here, on the real embedded Redis and its pub/sub.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import pytest

from protocol.codec import Codec
from protocol.connection import Connection
from server.embedded import EmbeddedRedis
from server.fanout import Fanout, Watcher
from server.store import Resubscribed, Store
from server.store.notices import SINGLE, Item
from tests.server.frames import Frames

pytestmark = pytest.mark.timeout(60)


async def until(done: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _fanout(store: Store) -> AsyncIterator[Fanout]:
    fanout = Fanout(store, flush_ms=50, stuck_close_s=10, check_s=0)
    await fanout.start()
    try:
        yield fanout
    finally:
        await fanout.stop()
        await store.close()


async def _watching(store: Store, fanout: Fanout, behind: int) -> tuple[Watcher, Frames]:
    """A watcher of a ticket with `behind` tickets ahead of it, shown its place and settled."""
    await store.upsert_queue("q", "v", "Q")
    for _ in range(behind):
        await store.join("q", None, None)
    mine = await store.join("q", None, None)
    outbox = Frames()
    watcher = Watcher("q", mine["number"], Connection(Codec.JSON), outbox, lambda: None)
    assert await fanout.add(watcher, mine["nonce"]) is not None
    await until(lambda: outbox.positions()[-1:] == [behind + 1])
    await asyncio.sleep(0.2)  # the first snapshot is in and flushed: the queue is quiet
    return watcher, outbox


def _held(fanout: Fanout) -> tuple[list[Item], Callable[[], None]]:
    """Hold what the pub/sub reader hands over; the function returned hands the held items to
    the fan-out all at once, as if they had come in one read."""
    deliver = fanout._notices._deliver
    held: list[Item] = []

    def release() -> None:
        for item in held:
            deliver(item)
        held.clear()

    fanout._notices._deliver = held.append
    return held, release


async def test_a_call_after_a_quiet_spell_is_flushed_before_the_reader_reads_on(
    redis_server: EmbeddedRedis,
) -> None:
    store = Store(redis_server.url, "turns-quiet")
    async with _fanout(store) as fanout:
        _, outbox = await _watching(store, fanout, behind=2)
        deliver = fanout._notices._deliver
        when_delivered: list[list[int]] = []

        def spy(item: Item) -> None:
            deliver(item)
            when_delivered.append(outbox.positions())

        fanout._notices._deliver = spy
        await store.call_next("q", None, None)
        await until(lambda: bool(when_delivered))
        # Written while the notice was being handed over, not at a timer in a later turn.
        assert when_delivered[0][-1] == 2


async def test_notices_read_right_after_a_long_flush_go_out_in_one_flush(
    redis_server: EmbeddedRedis,
) -> None:
    """A flush that took longer than the interval leaves the next one due at once; the notices
    read in one go after it must still share one flush, not take one each."""
    store = Store(redis_server.url, "turns-batch")
    async with _fanout(store) as fanout:
        _, outbox = await _watching(store, fanout, behind=3)
        held, release = _held(fanout)
        for _ in range(3):
            await store.call_next("q", None, None)
        await until(lambda: len(held) == 3)
        first, rest = held[:1], held[1:]
        held[:] = first
        outbox.delay_s = 0.08  # this flush takes longer than the 50 ms interval
        release()
        assert outbox.positions()[-1] == 3
        outbox.delay_s = 0.0
        held[:] = rest
        release()  # read together, right after that flush
        await until(lambda: outbox.positions()[-1] == 1)
        assert outbox.positions()[-2:] == [3, 1]  # position 2 was never written: one flush


async def test_a_notice_that_fails_to_apply_resyncs_its_queue_and_the_reader_goes_on(
    redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(redis_server.url, "turns-fail")
    async with _fanout(store) as fanout:
        _, outbox = await _watching(store, fanout, behind=2)
        watch = fanout.queues["q"].watch
        apply = watch.receive_notice
        failures = [RuntimeError("a bug in applying a notice")]

        def failing(*args: object, **kwargs: object) -> object:
            if failures:
                raise failures.pop()
            return apply(*args, **kwargs)  # type: ignore[arg-type]

        watch.receive_notice = failing  # type: ignore[method-assign]
        reader = fanout._notices._shards[SINGLE].reader
        await store.call_next("q", None, None)
        await until(lambda: outbox.positions()[-1] == 2)  # the resync's snapshot put it right
        assert fanout.resyncs["reader_restart"] == 1
        assert "applying a notice of queue q failed" in caplog.text
        await store.call_next("q", None, None)  # and the notices go on being applied
        await until(lambda: outbox.positions()[-1] == 1)
        assert fanout._notices._shards[SINGLE].reader is reader  # the same reader: not replaced
        assert fanout.resyncs["resubscribe"] == 0


async def test_the_reader_hands_each_notice_over_itself(redis_server: EmbeddedRedis) -> None:
    store = Store(redis_server.url, "turns-reader")
    tasks: list[asyncio.Task[object] | None] = []
    items: list[Item] = []

    def deliver(item: Item) -> None:
        tasks.append(asyncio.current_task())
        items.append(item)

    notices = store.notices(deliver)
    try:
        await store.upsert_queue("q", "v", "Q")
        await notices.subscribe("q")
        await store.join("q", None, None)
        await until(lambda: len(items) == 2)
        assert isinstance(items[0], Resubscribed)
        reader = notices._shards[SINGLE].reader
        assert reader is not None and tasks == [reader, reader]  # no queue, no other task
    finally:
        await notices.close()
        await store.close()


async def test_a_reader_whose_delivery_raises_is_replaced_and_its_queues_resubscribed(
    redis_server: EmbeddedRedis,
) -> None:
    """`deliver` must not raise; if it does, the shard is placed again and its queues are told
    (`Resubscribed`), so a watch that missed the notice reloads instead of going silent."""
    store = Store(redis_server.url, "turns-raise")
    items: list[Item] = []
    failures = [RuntimeError("deliver raised")]

    def deliver(item: Item) -> None:
        items.append(item)
        if not isinstance(item, Resubscribed) and failures:
            raise failures.pop()

    notices = store.notices(deliver)
    try:
        await store.upsert_queue("q", "v", "Q")
        await notices.subscribe("q")
        await until(lambda: len(items) == 1)
        first_reader = notices._shards[SINGLE].reader
        await store.join("q", None, None)
        await until(lambda: len(items) == 3, timeout_s=15)
        assert isinstance(items[2], Resubscribed) and items[2].queue == "q"
        assert notices._shards[SINGLE].reader is not first_reader
        await store.join("q", None, None)  # the new reader delivers
        await until(lambda: len(items) == 4)
        assert not isinstance(items[3], Resubscribed)
    finally:
        await notices.close()
        await store.close()
