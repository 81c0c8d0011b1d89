"""Notices over sharded pub/sub on one server: the embedded Valkey, and plain Redis 7 (the
machine's `redis-server`, when it is 7.0 or later) as the supported alternative."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from server.embedded import EmbeddedRedis
from server.store import Resubscribed, Store
from server.store.notices import Item


def _redis7() -> Path | None:
    found = shutil.which("redis-server")
    if found is None:
        return None
    version = subprocess.run([found, "--version"], capture_output=True, text=True, check=False)
    major = version.stdout.split("v=", 1)[-1].split(".", 1)[0]
    return Path(found) if major.isdigit() and int(major) >= 7 else None


async def _next(items: asyncio.Queue[Item]) -> Item:
    return await asyncio.wait_for(items.get(), timeout=10)


async def _join_is_noticed(url: str) -> None:
    store = Store(url, "n")
    items: asyncio.Queue[Item] = asyncio.Queue()
    notices = store.notices(items.put_nowait)
    try:
        await store.upsert_queue("q", "v", "Q")
        await notices.subscribe("q")
        first = await _next(items)
        assert isinstance(first, Resubscribed) and first.queue == "q"
        joined = await store.join("q", None, None)
        queue, raw = await _next(items)  # type: ignore[misc]
        assert queue == "q"
        assert orjson.loads(raw)["n"] == joined["number"]
        assert notices.shard_count == 1
    finally:
        await notices.close()
        await store.close()


async def test_a_join_is_noticed_on_the_embedded_valkey(redis_server: EmbeddedRedis) -> None:
    store = Store(redis_server.url)
    try:
        assert int((await store.redis.info("server"))["valkey_version"].split(".")[0]) >= 8
    finally:
        await store.close()
    await _join_is_noticed(redis_server.url)


@pytest.mark.skipif(_redis7() is None, reason="no redis-server 7.0+ on PATH")
async def test_a_join_is_noticed_on_plain_redis_7(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, executable=_redis7())
    server.start()
    try:
        await _join_is_noticed(server.url)
    finally:
        server.stop()


async def test_a_subscription_does_not_wait_for_the_store_pool(
    redis_server: EmbeddedRedis,
) -> None:
    """A connect storm keeps the store's pool busy with ticket reads: the first watcher's
    subscription must not queue behind them (it failed after the pool's wait, and the watchers
    that arrived meanwhile failed with it)."""
    store = Store(redis_server.url, "pool", max_connections=1)
    items: asyncio.Queue[Item] = asyncio.Queue()
    notices = store.notices(items.put_nowait)
    pool = store.redis.connection_pool
    busy = await pool.get_connection()  # the pool's only connection, taken by a ticket read
    try:
        await asyncio.wait_for(notices.subscribe("q"), timeout=2)
        first = await _next(items)
        assert isinstance(first, Resubscribed) and first.queue == "q"
    finally:
        await pool.release(busy)
        await notices.close()
        await store.close()
