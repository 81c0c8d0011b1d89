"""A queue's first watchers on a node: the ones that arrive while the node is still subscribing
to its notices wait for that subscription, and fail with it, rather than register in a watch
that no notice, resync or drift check would ever reach (docs/architecture.md, invariant 3).

The node's Redis is stopped between a second watcher's arrival and the failing subscription;
the fan-out runs in process so that the opening can be held at its seeding step.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from protocol.codec import Codec
from protocol.connection import Connection
from server.embedded import EmbeddedRedis
from server.errors import Unavailable
from server.fanout import Fanout, Watcher
from tests.server.frames import Frames


def watcher(queue: str, number: int) -> Watcher:
    return Watcher(queue, number, Connection(Codec.JSON), Frames(), lambda: None)


@pytest.mark.timeout(60)
async def test_watchers_that_arrive_while_the_subscription_fails_fail_with_it(
    tmp_path: Path,
) -> None:
    from server.store import Store

    redis = EmbeddedRedis(tmp_path / "redis")
    store = Store(redis.start(), "open")
    fanout = Fanout(store, flush_ms=50, stuck_close_s=10, check_s=0)
    gate = asyncio.Event()

    async def seed(queue: str, eta: object) -> None:
        await gate.wait()  # the opening holds here, before it subscribes

    fanout.seed_eta = seed
    try:
        await store.upsert_queue("q", "v", "Q")
        first = await store.join("q", None, None)
        second = await store.join("q", None, None)
        opener = asyncio.create_task(fanout.add(watcher("q", first["number"]), first["nonce"]))
        await asyncio.sleep(0.1)
        late = asyncio.create_task(fanout.add(watcher("q", second["number"]), second["nonce"]))
        await asyncio.sleep(0.5)  # the late watcher's own ticket read would be done by now
        redis.stop()
        # Its connections learn of the stop as they would on their next use: the subscription
        # needs a new one, which is refused.
        await store.redis.connection_pool.disconnect()
        gate.set()
        with pytest.raises(Unavailable):
            await opener
        with pytest.raises(Unavailable):  # not a view: it was never registered
            await late
        assert fanout.queues == {}
        assert fanout.watcher_count == 0
    finally:
        gate.set()
        await fanout.stop()
        await store.close()
        redis.stop()
