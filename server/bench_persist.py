"""Persistence benchmark: how fast the persister writes events, and how far behind it runs.

    python -m server.bench_persist [--rate 2000] [--seconds 15] [--backlog 50000] [--out F]

It lives in `server/`, not `loadtest/` (which talks to a server over the network and imports
only `protocol`), because it benchmarks the persister itself, in process, against real Redis
and PostgreSQL (embedded ones in a temporary folder unless REDIS_URL and DATABASE_URL are set).
`make bench` runs it as its own step; `loadtest.bench` puts its JSON into BENCHMARKS.md. Two
phases:

- drain: a backlog of joins made with no persister running, then the time one persister takes
  to write them all: events written per second.
- steady: joins and calls at a steady offered rate with the persister running: the lag from
  each event (its time in Redis) to the commit of its row, p50 / p99 / max.

Events are made by the real Lua scripts through `server.store.Store`; the steady load runs in a
process of its own, so the lag is the persister's and not the producer's event loop. The
result, with the command that made it, is printed and written as JSON (default
`bench-results/persist.json`).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import secrets
import shlex
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from server.auth import new_staff_key
from server.config import Settings
from server.db import Database
from server.embedded import EmbeddedPostgres, EmbeddedRedis
from server.persister import Persister
from server.store import Store

CONCURRENCY = 64


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m server.bench_persist", description=__doc__)
    p.add_argument("--rate", type=float, default=2000.0, help="steady events/s offered")
    p.add_argument("--seconds", type=float, default=15.0, help="length of the steady phase")
    p.add_argument("--backlog", type=int, default=50_000, help="events in the drain phase")
    p.add_argument("--queues", type=int, default=20, help="queues the events spread over")
    p.add_argument("--batch", type=int, default=500, help="persister batch (VQ_PERSIST_BATCH)")
    p.add_argument("--out", type=Path, default=Path("bench-results/persist.json"))
    return p


def _percentile(values: Sequence[int], q: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _until(done: Callable[[], bool], timeout_s: float = 600.0) -> None:
    deadline = time.perf_counter() + timeout_s
    while not done():
        if time.perf_counter() > deadline:
            raise TimeoutError("the persister did not catch up")
        await asyncio.sleep(0.005)


async def _event(store: Store, queues: list[str], i: int, calls: bool) -> None:
    """Event `i`: a join, or with `calls` every third one a call (a join if none waits)."""
    queue = queues[i % len(queues)]
    if calls and i % 3 == 0:
        result = await store.call_next(queue, "bench", None)
        if not result.get("empty"):
            return
    await store.join(queue, None, None)


async def _steady_load(store: Store, queues: list[str], rate: float, seconds: float) -> int:
    """Events at `rate` per second for `seconds`, never waiting on one to start the next."""
    start, made = time.perf_counter(), 0
    pending: set[asyncio.Task[None]] = set()
    while (now := time.perf_counter()) - start < seconds:
        due = max(0, int((now - start) * rate) - made)
        for i in range(made, made + due):
            task = asyncio.create_task(_event(store, queues, i, calls=True))
            pending.add(task)
            task.add_done_callback(pending.discard)
        made += due
        await asyncio.sleep(0.01)
    await asyncio.gather(*pending)
    return made


def _produce(redis_url: str, prefix: str, queues: list[str], rate: float, seconds: float) -> int:
    """The steady load, in a process of its own: the persister's loop is not the producer's."""

    async def run() -> int:
        store = Store(redis_url, prefix, max_connections=CONCURRENCY)
        try:
            return await _steady_load(store, queues, rate, seconds)
        finally:
            await store.close()

    return asyncio.run(run())


class Bench:
    def __init__(self, store: Store, db: Database, queues: list[str], batch: int) -> None:
        self.store = store
        self.db = db
        self.queues = queues
        self.batch = batch

    def _persister(self) -> Persister:
        return Persister(self.store, self.db, batch=self.batch, refresh_s=0.2)

    async def drain(self, count: int) -> dict[str, Any]:
        """A backlog made with no persister running, then the time one takes to write it."""
        next_i = 0

        async def worker() -> None:
            nonlocal next_i
            while next_i < count:
                next_i += 1
                await _event(self.store, self.queues, next_i, calls=False)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        persister = self._persister()
        began = time.perf_counter()
        await persister.start()
        try:
            await _until(lambda: persister.written >= count)
            elapsed = time.perf_counter() - began
        finally:
            await persister.stop()
        return {
            "events": count,
            "seconds": round(elapsed, 3),
            "events_per_s": round(count / elapsed),
        }

    async def steady(self, redis_url: str, rate: float, seconds: float) -> dict[str, Any]:
        persister = self._persister()
        await persister.start()
        await asyncio.sleep(0.5)  # the persister has found every stream
        persister.lags_ms = deque()  # every sample of this phase, not the last 20,000
        loop = asyncio.get_running_loop()
        try:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                args = (redis_url, self.store.prefix, self.queues, rate, seconds)
                made = await loop.run_in_executor(pool, _produce, *args)
            await _until(lambda: persister.written >= made)
            lags = list(persister.lags_ms)
        finally:
            await persister.stop()
        return {
            "offered_events_per_s": rate,
            "made_events": made,
            "made_events_per_s": round(made / seconds),
            "lag_ms": {
                "p50": _percentile(lags, 0.5),
                "p99": _percentile(lags, 0.99),
                "max": max(lags) if lags else None,
                "samples": len(lags),
            },
        }


async def _setup(store: Store, db: Database, count: int) -> list[str]:
    await db.migrate()
    key_id, _, digest = new_staff_key()
    venue = await db.create_venue("Persistence benchmark", key_id, digest)
    tag = secrets.token_hex(3)
    queues = [f"bench-{tag}-{i}" for i in range(count)]
    for queue in queues:
        await db.upsert_queue(queue, venue, queue)
        await store.upsert_queue(queue, venue, queue)
    return queues


async def _cleanup(store: Store, db: Database, queues: list[str]) -> None:
    keys = [k async for k in store.redis.scan_iter(match=f"{store.prefix}:*")]
    for i in range(0, len(keys), 1000):
        await store.redis.delete(*keys[i : i + 1000])
    async with db.connection() as conn:
        await conn.execute("DELETE FROM queue_events WHERE queue = ANY($1::text[])", queues)


async def run(args: argparse.Namespace, redis_url: str, dsn: str) -> dict[str, Any]:
    store = Store(redis_url, f"bench{secrets.token_hex(3)}", max_connections=CONCURRENCY + 8)
    db = await Database.connect(dsn, max_size=4)
    queues = await _setup(store, db, args.queues)
    bench = Bench(store, db, queues, args.batch)
    try:
        drain = await bench.drain(args.backlog)
        steady = await bench.steady(redis_url, args.rate, args.seconds)
    finally:
        await _cleanup(store, db, queues)
        await store.close()
        await db.close()
    return {
        "benchmark": "persist",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "batch": args.batch,
        "queues": args.queues,
        "drain": drain,
        "steady": steady,
    }


def _report(result: dict[str, Any]) -> str:
    d, s = result["drain"], result["steady"]
    lag = s["lag_ms"]
    return (
        f"drain:  {d['events']} events written in {d['seconds']} s = {d['events_per_s']} events/s\n"
        f"steady: {s['made_events_per_s']} events/s for {s['made_events']} events: "
        f"event->commit lag p50 {lag['p50']} ms, p99 {lag['p99']} ms, max {lag['max']} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    settings = Settings.from_environ()
    redis_url = settings.redis_url.reveal() if settings.redis_url else None
    dsn = settings.database_url.reveal() if settings.database_url else None
    with tempfile.TemporaryDirectory(prefix="vq-bench-") as folder:
        own_redis = EmbeddedRedis(Path(folder) / "redis") if not redis_url else None
        own_pg = EmbeddedPostgres(Path(folder) / "postgres") if not dsn else None
        try:
            redis_url = own_redis.start() if own_redis else redis_url
            dsn = own_pg.start() if own_pg else dsn
            assert redis_url is not None and dsn is not None
            result = asyncio.run(run(args, redis_url, dsn))
            result["command"] = " ".join(
                ["python -m server.bench_persist", shlex.join(argv)]
            ).strip()
        finally:
            for service in (own_redis, own_pg):
                if service is not None:
                    service.stop()
    print(_report(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
