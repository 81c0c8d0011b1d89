"""What the nodes share about keys and tokens in Redis: revoked staff keys (a set, and a
pub/sub channel announcing each revocation) and when token signing moved to SHA-256."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from redis.exceptions import RedisError

from server.keys import revoked_keys, sha256_since_key
from server.store.core import Store

log = logging.getLogger(__name__)


class KeyRing:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.redis = store.redis

    async def revoke(self, key_id: str) -> None:
        """Record a revoked key for good (checked while PostgreSQL is down) and tell every node."""
        name = revoked_keys(self.store.prefix)
        # Two calls, not a MULTI (redis-py's asyncio cluster cannot run one): recorded first, so
        # a node that misses the announcement still finds the key in the set.
        await self.store.guard(self.redis.sadd(name, key_id))
        await self.store.guard(self.redis.publish(name, key_id))

    async def revoked(self, key_id: str) -> bool:
        name = revoked_keys(self.store.prefix)
        return bool(await self.store.guard(self.redis.sismember(name, key_id)))

    async def revocations(self) -> AsyncIterator[str | None]:
        """Revoked key ids as announced; None each time the subscription is (re)made, since
        announcements made while it was down are lost. Ends only when cancelled."""
        channel = revoked_keys(self.store.prefix)
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(channel)
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        yield None
                    elif message["type"] == "message":
                        yield bytes(message["data"]).decode()
            except (RedisError, OSError, RuntimeError) as exc:  # RuntimeError: a closed transport
                log.warning("revocation channel lost, resubscribing: %s", exc)
                await asyncio.sleep(1.0)  # a retry delay while Redis is away
            finally:
                # Closing a connection that Redis (or a failover) already cut can fail in turn:
                # that must not replace a cancellation or end the loop.
                with contextlib.suppress(RedisError, OSError, RuntimeError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def sha256_tokens_since_ms(self) -> int:
        """When this deployment began signing tokens with SHA-256: the first node to ask sets it."""
        key = sha256_since_key(self.store.prefix)
        now_ms = int(time.time() * 1000)
        await self.store.guard(self.redis.set(key, now_ms, nx=True))
        found = await self.store.guard(self.redis.get(key))
        return now_ms if found is None else int(found)
