"""A storm of watches of one queue reads its tickets in a few Redis calls (server.ticketreads)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from protocol.ticket import TicketView
from server.embedded import EmbeddedRedis
from server.errors import Unavailable
from server.store import Store
from server.ticketreads import TicketReads


class CountingReads:
    """The real `Store.tickets`, counting the calls and the tickets per call."""

    def __init__(self, store: Store, queue: str) -> None:
        self.store, self.queue = store, queue
        self.batches: list[int] = []
        self.fail = False

    async def __call__(self, numbers: list[int]) -> list[TicketView | None]:
        self.batches.append(len(numbers))
        if self.fail:
            raise Unavailable("down for the test")
        return await self.store.tickets(self.queue, numbers)


@pytest_asyncio.fixture
async def store(redis_server: EmbeddedRedis, prefix: str) -> AsyncIterator[Store]:
    """A store with one queue, "q"."""
    store = Store(redis_server.url, prefix)
    try:
        await store.upsert_queue("q", "v", "Q")
        yield store
    finally:
        await store.close()


async def joined(store: Store, count: int) -> list[int]:
    return [(await store.join("q", None, None))["number"] for _ in range(count)]


async def test_a_storm_of_reads_is_a_few_calls_and_each_gets_its_own_ticket(store: Store) -> None:
    numbers = await joined(store, 300)
    counting = CountingReads(store, "q")
    reads = TicketReads(counting)
    wanted = [*numbers, 999_999, numbers[5]]
    views = await asyncio.gather(*(reads.read(n) for n in wanted))
    assert len(counting.batches) <= 2, counting.batches
    for number, view in zip(wanted, views, strict=True):
        alone = await store.ticket("q", number)
        assert view == alone  # nothing happened in between: same seq, same position
    assert views[-2] is None  # no such ticket


async def test_reads_arriving_during_a_read_go_together_in_the_next_one(store: Store) -> None:
    numbers = await joined(store, 20)
    counting = CountingReads(store, "q")
    reads = TicketReads(counting)
    first = asyncio.ensure_future(reads.read(numbers[0]))
    await asyncio.sleep(0)  # the first read is under way
    rest = [asyncio.ensure_future(reads.read(n)) for n in numbers[1:]]
    views = await asyncio.gather(first, *rest)
    assert counting.batches == [1, 19]
    assert [v.number for v in views if v is not None] == numbers


async def test_redis_away_fails_the_waiting_reads_and_the_next_read_works(store: Store) -> None:
    (number,) = await joined(store, 1)
    counting = CountingReads(store, "q")
    reads = TicketReads(counting)
    counting.fail = True
    results = await asyncio.gather(*(reads.read(number) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, Unavailable) for r in results)
    counting.fail = False
    view = await reads.read(number)
    assert view is not None and view.position == 1


async def test_a_watcher_that_goes_away_while_waiting_does_not_hurt_the_others(
    store: Store,
) -> None:
    numbers = await joined(store, 3)
    reads = TicketReads(CountingReads(store, "q"))
    tasks = [asyncio.ensure_future(reads.read(n)) for n in numbers]
    tasks[1].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    views = await asyncio.gather(tasks[0], tasks[2])
    assert [v.position for v in views if v is not None] == [1, 3]
