"""Change notices over sharded pub/sub: one SSUBSCRIBE connection per shard with watched queues.

Scripts publish each queue's notices with SPUBLISH on a channel in the queue's hash slot, so on a
Redis Cluster a notice reaches only the primary (and replicas) owning that slot, not every node.
A node keeps one connection per primary that owns one of its watched queues; on a single Redis
there is one "shard", the server itself. Each shard has a client of its own: a subscription never
waits behind the store's pool.

Pub/sub is at-most-once. Every (re)confirmed subscription is reported as `Resubscribed`, so the
fan-out reloads that queue: whatever was published while a connection was down is lost, and only
a snapshot can say what changed (docs/architecture.md, invariant 3). When a shard's connection fails
for good (its primary died) or the server moves a channel away (`sunsubscribe` we did not ask
for: a failover or a slot migration), the topology is re-read and each of that shard's channels
is subscribed again at the primary that owns its slot now, which confirms it as `Resubscribed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import redis.asyncio as redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import parse_url
from redis.exceptions import RedisClusterException, RedisError

from server.errors import Unavailable
from server.tasks import cancel_all

if TYPE_CHECKING:
    from server.store.core import Store

log = logging.getLogger(__name__)

SINGLE = "single"  # the one shard of a plain Redis
GET_TIMEOUT_S = 1.0
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 2.0


class Resubscribed:
    """Delivered when a channel's subscription was (re)confirmed: messages may have been lost."""

    __slots__ = ("queue",)

    def __init__(self, queue: str) -> None:
        self.queue = queue


# What a node's fan-out is handed: (queue, notice) or a confirmed subscription.
Item = tuple[str, bytes] | Resubscribed
Deliver = Callable[[Item], None]


class _Shard:
    """One SSUBSCRIBE connection to one server, and the channels it carries."""

    def __init__(self, address: str, client: redis.Redis) -> None:
        self.address = address
        self.client = client
        self.pubsub: PubSub = client.pubsub()
        self.channels: set[bytes] = set()
        self.leaving: set[bytes] = set()  # unsubscribed by us: their sunsubscribe is expected
        self.reader: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self.reader is not None:
            await cancel_all([self.reader])
        with contextlib.suppress(RedisError, OSError, RuntimeError):
            await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(RedisError, OSError, RuntimeError):
            await self.client.aclose()


class NoticeStream:
    """The notices of every queue this node watches, from whichever shards own them.

    Each is handed to `deliver` by the shard's reader as soon as it is parsed, in the same turn
    of the event loop that read it: a queue between the reader and the fan-out cost a notice one
    more turn, and in a connect storm a turn is tens of milliseconds (docs/architecture.md). So
    `deliver` must not block and must not raise; it gets messages in the order the shard sent
    them.
    """

    def __init__(self, store: Store, deliver: Deliver) -> None:
        self._store = store
        self._deliver = deliver
        self._queues: dict[bytes, str] = {}  # channel -> queue, for every watched queue
        self._shards: dict[str, _Shard] = {}  # address -> shard
        self._home: dict[bytes, _Shard] = {}  # channel -> the shard it is subscribed on
        self._lock = asyncio.Lock()  # placements change one at a time
        self._rehoming: set[asyncio.Task[None]] = set()

    def _channel(self, queue: str) -> bytes:
        return self._store.keys(queue).channel.encode()

    @property
    def shard_count(self) -> int:
        """Connections held now: one per shard with watched queues."""
        return len(self._shards)

    async def subscribe(self, queue: str) -> None:
        """Watch a queue; its `Resubscribed` comes once its shard confirms.

        Raises Unavailable when its shard cannot be reached now: the caller gives the queue up
        (and its watcher retries). Other queues of a shard that failed are placed again later.
        """
        channel = self._channel(queue)
        self._queues[channel] = queue
        async with self._lock:
            failed = await self._place([channel])
        if channel in failed:
            self._queues.pop(channel, None)
            failed.discard(channel)
        self._rehome_later(failed)
        if channel not in self._queues:
            raise Unavailable("the live queue is not available right now")

    async def unsubscribe(self, queue: str) -> None:
        channel = self._channel(queue)
        self._queues.pop(channel, None)
        async with self._lock:
            shard = self._home.pop(channel, None)
            if shard is None:
                return
            shard.channels.discard(channel)
            if not shard.channels:
                self._shards.pop(shard.address, None)
                await shard.close()
                return
            shard.leaving.add(channel)
            with contextlib.suppress(RedisError, OSError):
                await shard.pubsub.sunsubscribe(channel)

    async def close(self) -> None:
        for task in list(self._rehoming):
            task.cancel()
        for shard in list(self._shards.values()):
            await shard.close()
        self._shards.clear()
        self._home.clear()

    # -- placement --------------------------------------------------------------------------------

    async def _place(self, channels: list[bytes]) -> set[bytes]:
        """Subscribe each channel at its slot's primary; returns the channels left homeless.

        Called with the lock held. A channel is homed before its SSUBSCRIBE goes out, so that
        the reader, which may see the confirmation before the call returns, accepts it.
        """
        wanted = [c for c in channels if c in self._queues and c not in self._home]
        by_address: dict[str, list[bytes]] = {}
        failed: set[bytes] = set()
        for channel in wanted:
            try:
                by_address.setdefault(self._owner(channel), []).append(channel)
            except (RedisError, RedisClusterException, OSError):
                failed.add(channel)  # the slot has no primary right now (failover under way)
        for address, group in by_address.items():
            shard = self._shards.get(address) or self._open(address)
            try:
                for channel in group:  # one per command: a cluster refuses cross-slot SSUBSCRIBE
                    shard.leaving.discard(channel)
                    shard.channels.add(channel)
                    self._home[channel] = shard
                    await shard.pubsub.ssubscribe(channel)
            except (RedisError, OSError) as exc:
                log.warning("cannot subscribe to notices at %s: %s", address, exc)
                failed |= shard.channels
                self._drop(shard)
                await shard.close()
                continue
            if shard.reader is None or shard.reader.done():
                shard.reader = asyncio.get_running_loop().create_task(
                    self._read(shard), name=f"notices-{address}"
                )
        return failed

    def _owner(self, channel: bytes) -> str:
        if not self._store.cluster:
            return SINGLE
        node = self._store.redis.get_node_from_key(channel)  # type: ignore[attr-defined]
        return f"{node.host}:{node.port}"

    def _open(self, address: str) -> _Shard:
        """A shard with a client of its own: its subscription never waits for a connection of
        the store's pool, which a connect storm's ticket reads can keep busy for seconds."""
        options: dict[str, Any] = {**parse_url(self._store.url)}
        if address != SINGLE:
            host, _, port = address.rpartition(":")
            options = {**options, "host": host, "port": int(port)}
        shard = self._shards[address] = _Shard(address, redis.Redis(**options))
        return shard

    def _drop(self, shard: _Shard) -> None:
        """Forget a failed shard (lock held): its channels are subscribed nowhere now."""
        if self._shards.get(shard.address) is shard:
            del self._shards[shard.address]
        for channel in shard.channels:
            if self._home.get(channel) is shard:
                del self._home[channel]

    def _rehome_later(self, channels: set[bytes]) -> None:
        if channels:
            self._spawn(self._rehome(channels))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._rehoming.add(task)  # close() cancels it
        task.add_done_callback(self._rehoming.discard)

    async def _replace(self, shard: _Shard) -> None:
        """A shard's reader failed: forget the shard, close it, and place its channels again."""
        channels = set(shard.channels)
        async with self._lock:
            self._drop(shard)
        await shard.close()
        self._rehome_later(channels)

    async def _rehome(self, channels: set[bytes]) -> None:
        """Re-read the topology and subscribe again until every channel has a shard."""
        delay_s = RETRY_FIRST_S
        while channels:
            await asyncio.sleep(delay_s)  # a failover takes a moment to promote a replica
            delay_s = min(delay_s * 2, RETRY_MAX_S)
            if self._store.cluster:
                try:
                    await self._store.redis.nodes_manager.initialize()  # type: ignore[attr-defined]
                except (RedisError, OSError) as exc:
                    log.warning("cannot read the cluster's topology yet: %s", exc)
                    continue
            async with self._lock:
                channels = await self._place(sorted(channels & set(self._queues)))
        log.info("notice subscriptions placed again")

    # -- reading ----------------------------------------------------------------------------------

    async def _read(self, shard: _Shard) -> None:
        """Hand one shard's messages over; replace the shard when it fails."""
        while True:
            try:
                message = await shard.pubsub.get_message(timeout=GET_TIMEOUT_S)
                if message is not None:
                    self._route(shard, message)
            except (RedisError, OSError, RuntimeError) as exc:
                log.warning("notices from %s lost (%s); placing them again", shard.address, exc)
                self._spawn(self._replace(shard))
                return
            except Exception:  # never a reader that stops in silence: its queues would too
                log.exception("notice reader of %s failed; placing again", shard.address)
                self._spawn(self._replace(shard))
                return

    def _route(self, shard: _Shard, message: dict[str, Any]) -> None:
        channel = message["channel"]
        queue = self._queues.get(channel)
        kind = message["type"]
        if queue is None or self._home.get(channel) is not shard:
            return
        if kind == "smessage":
            self._deliver((queue, message["data"]))
        elif kind == "ssubscribe":
            self._deliver(Resubscribed(queue))
        elif kind == "sunsubscribe" and channel not in shard.leaving:
            # The server dropped it: its slot moved to another primary (failover, migration).
            shard.channels.discard(channel)
            del self._home[channel]
            self._rehome_later({channel})
