"""Change notices: one pub/sub connection per node for every queue it watches.

Pub/sub is at-most-once. Every (re)confirmed subscription is reported as `Resubscribed`, so the
fan-out reloads that queue: whatever was published while the connection was down is lost, and
only a snapshot can say what changed (architecture.md inv. 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from server.errors import Unavailable

if TYPE_CHECKING:
    from server.store.core import Store

log = logging.getLogger(__name__)


class Resubscribed:
    """Marker yielded when a channel's subscription was (re)confirmed: messages may be lost."""

    __slots__ = ("queue",)

    def __init__(self, queue: str) -> None:
        self.queue = queue


class NoticeStream:
    """One pub/sub connection carrying the notices of every queue this node watches."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pubsub: PubSub = store.redis.pubsub()
        self._channels: dict[bytes, str] = {}
        self._broken = False  # a (re)subscribe failed: the connection must be made again

    def _channel(self, queue: str) -> str:
        return self._store.keys(queue).channel

    async def subscribe(self, queue: str) -> None:
        channel = self._channel(queue)
        self._channels[channel.encode()] = queue
        try:
            await self._pubsub.subscribe(channel)
        except (RedisError, OSError) as exc:
            # The caller gives this queue up; the connection is made again for the others.
            self._channels.pop(channel.encode(), None)
            self._broken = True
            raise Unavailable("the live queue is not available right now") from exc

    async def unsubscribe(self, queue: str) -> None:
        channel = self._channel(queue)
        self._channels.pop(channel.encode(), None)
        await self._pubsub.unsubscribe(channel)

    async def messages(self) -> AsyncIterator[tuple[str, bytes] | Resubscribed]:
        """Yield (queue, notice) and Resubscribed markers; survive Redis going away."""
        backoff = 0.1
        while True:
            if self._pubsub.connection is None:  # the first subscribe has not connected yet
                if self._broken:  # or it failed, or a reconnect did (Redis was still down)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    await self._reconnect()
                    continue
                await asyncio.sleep(0.02)
                continue
            try:
                message = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.1
            except (RedisError, OSError, RuntimeError) as exc:
                log.warning("pub/sub connection lost (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                await self._reconnect()
                continue
            if message is None:
                continue
            queue = self._channels.get(message["channel"])
            if queue is None:
                continue
            if message["type"] == "subscribe":
                yield Resubscribed(queue)
            elif message["type"] == "message":
                yield queue, message["data"]

    async def _reconnect(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        self._pubsub = self._store.redis.pubsub()
        channels = [ch.decode() for ch in self._channels]
        self._broken = False
        try:
            if channels:
                await self._pubsub.subscribe(*channels)
        except (RedisError, OSError) as exc:
            self._broken = True
            log.warning("pub/sub resubscribe failed: %s", exc)

    async def close(self) -> None:
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
