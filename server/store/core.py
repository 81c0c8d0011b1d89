"""The Redis store: live queue state, one Lua script per change, and consistent reads.

The `server.store` package is the only one that imports redis. Every change runs as one script from
`server/scripts/` (see each script's header for KEYS, ARGV and why it must be atomic); reads
that must agree with each other run in one MULTI/EXEC.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

import orjson
import redis.asyncio as redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisClusterException, RedisError

from protocol.line import Snapshot
from protocol.ticket import TicketRecord, TicketView, lua_constants
from server.acting import acting_key
from server.errors import ApiError, RateLimited, Unavailable
from server.keys import QueueKeys, join_rate_keys, queue_keys, queues_index
from server.store.fence import Fence
from server.store.lane import ScriptLane, lane_supports
from server.store.lineops import LineOps

if TYPE_CHECKING:
    from server.store.notices import Deliver, NoticeStream

log = logging.getLogger(__name__)

IDEMPOTENCY_TTL_S = 24 * 3600
# What a call can raise when the server is gone: redis-py's errors, and on a cluster failover the
# event loop's "transport is closed" RuntimeError from a connection the dead primary reset.
STORE_DOWN = (RedisError, OSError, RuntimeError)
# redis-py 8.1's cluster client can also fail with an AttributeError on a connection a failover
# closed under it (its writer is None), or with a RedisClusterException (not a RedisError) when
# no node answers: on a cluster both mean "store down", not a bug here.
CLUSTER_DOWN = (*STORE_DOWN, AttributeError, RedisClusterException)
SCRIPT_NAMES = (
    "join",
    "call_next",
    "finish",
    "leave",
    "set_state",
    "upsert_queue",
    "remove",
    "remove_many",
    "recall",
    "requeue",
    "transfer_in",
    "transfer_out",
    "settings",
    "boundary",
    "archive",
)
# Reads that must agree run as scripts too: a MULTI is not usable on redis-py's asyncio cluster.
READ_SCRIPT_NAMES = ("read_meta", "read_ticket", "read_snapshot")


@dataclass(frozen=True, slots=True)
class JoinLimits:
    """The rate limits a join counts against (None: that limit does not apply)."""

    client: str  # the client's address bucket (see server.clientaddr)
    per_client: tuple[int, int] | None  # (joins, window_s)
    per_queue: tuple[int, int] | None


def _limit_args(limit: tuple[int, int] | None) -> list[str | int]:
    return [0, 0] if limit is None else [limit[0], limit[1] * 1000]


def _load_scripts() -> dict[str, str]:
    folder = resources.files("server") / "scripts"
    prelude = lua_constants() + (folder / "common.lua").read_text()
    changes = {name: prelude + "\n" + (folder / f"{name}.lua").read_text() for name in SCRIPT_NAMES}
    reads = {name: (folder / f"{name}.lua").read_text() for name in READ_SCRIPT_NAMES}
    return changes | reads


def _parse(raw: bytes | str) -> dict[str, Any]:
    result = cast(dict[str, Any], orjson.loads(raw))
    code = result.get("error")
    if code == "rate_limited":
        raise RateLimited(int(result["retry_ms"]) / 1000)
    if code is not None:
        raise ApiError.from_code(str(code))
    return result


CLUSTER_CONNECTIONS_PER_NODE = 512  # RedisCluster raises past its cap instead of waiting


class Store(LineOps):
    """The live state. `cluster=True`: `url` names any node of a Redis Cluster.

    Every script, reads included, touches one queue's keys only (one hash slot), so the same code
    runs on one Redis and on a cluster, where redis-py routes each call to the slot's primary and
    follows MOVED replies and failovers.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "vq",
        max_connections: int = 64,
        *,
        cluster: bool = False,
        lane: bool = True,
    ) -> None:
        self.url = url
        self.cluster = cluster
        self.down_errors: tuple[type[Exception], ...] = CLUSTER_DOWN if cluster else STORE_DOWN
        if cluster:
            # Same commands as redis.Redis; typed as one so that callers need no second path.
            self.redis = cast(
                redis.Redis,
                redis.RedisCluster.from_url(
                    url, max_connections=CLUSTER_CONNECTIONS_PER_NODE, health_check_interval=15
                ),
            )
        else:
            # A blocking pool waits for a free connection instead of failing a burst
            # (docs/architecture.md).
            pool = redis.BlockingConnectionPool.from_url(
                url, max_connections=max_connections, timeout=10, health_check_interval=15
            )
            self.redis = redis.Redis(connection_pool=pool)
        self.prefix = prefix
        self.fence: Fence | None = None  # set under an embedded Redis (server/store/fence.py)
        self._scripts: dict[str, AsyncScript] = {
            name: self.redis.register_script(text) for name, text in _load_scripts().items()
        }
        # Scripts go over one multiplexed connection (server/store/lane.py); False: redis-py's pool.
        self.lane = ScriptLane(url) if lane and not cluster and lane_supports(url) else None

    async def close(self) -> None:
        if self.lane is not None:
            await self.lane.close()
        await self.redis.aclose()
        if not self.cluster:
            await self.redis.connection_pool.aclose()

    def keys(self, queue: str) -> QueueKeys:
        return queue_keys(self.prefix, queue)

    async def _run(self, name: str, keys: list[str], args: list[str | int]) -> dict[str, Any]:
        """Run a change script; the acting key goes first (common.lua takes it off ARGV)."""
        fence = self.fence
        if fence is not None and not fence.open():
            await fence.passed()  # the embedded Redis came back: checked against the log first
        try:
            raw = await self._script(name, keys, [acting_key(), *args])
        except self.down_errors as exc:
            log.warning("redis script %s failed: %s", name, exc)
            raise Unavailable("the live queue store is unreachable") from exc
        return _parse(cast(bytes, raw))

    async def _read(self, name: str, keys: list[str], args: list[str | int]) -> Any:
        return await self.guard(self._script(name, keys, args))

    def _script(self, name: str, keys: list[str], args: list[str | int]) -> Awaitable[Any]:
        script = self._scripts[name]
        if self.lane is None:
            return script(keys=keys, args=args)
        return self.lane.evalsha(script.sha, script.script, keys, args)

    async def guard(self, awaitable: Awaitable[Any]) -> Any:
        try:
            return await awaitable
        except self.down_errors as exc:
            log.warning("redis call failed: %s", exc)
            raise Unavailable("the live queue store is unreachable") from exc

    # -- changes (one script each) --------------------------------------------------------------

    async def upsert_queue(self, queue: str, venue_id: str, name: str) -> dict[str, Any]:
        k = self.keys(queue)
        result = await self._run("upsert_queue", [k.meta, k.line], [venue_id, name, _new_epoch()])
        await self.guard(self.redis.sadd(queues_index(self.prefix), queue))
        return result

    async def join(
        self,
        queue: str,
        name: str | None,
        idem_key: str | None,
        fingerprint: str = "",
        limits: JoinLimits | None = None,
        priority: int = 0,
    ) -> dict[str, Any]:
        k = self.keys(queue)
        idem = k.idempotency("join", idem_key or "-")
        per_client, per_queue = join_rate_keys(self.prefix, queue, limits.client if limits else "-")
        args: list[str | int] = [
            k.channel,
            name or "",
            secrets.token_urlsafe(12),
            "1" if idem_key else "0",
            IDEMPOTENCY_TTL_S,
            fingerprint,
            *_limit_args(limits.per_client if limits else None),
            *_limit_args(limits.per_queue if limits else None),
            priority,
        ]
        keys = [k.meta, k.line, k.tickets, k.events, idem, per_client, per_queue]
        return await self._run("join", keys, args)

    async def call_next(
        self, queue: str, counter: str | None, idem_key: str | None, fingerprint: str = ""
    ) -> dict[str, Any]:
        k = self.keys(queue)
        idem = k.idempotency("call", idem_key or "-")
        args: list[str | int] = [
            k.channel,
            counter or "",
            "1" if idem_key else "0",
            IDEMPOTENCY_TTL_S,
            fingerprint,
        ]
        keys = [k.meta, k.line, k.tickets, k.events, k.counters, idem, k.called]
        return await self._run("call_next", keys, args)

    async def finish(self, queue: str, number: int, status: str) -> dict[str, Any]:
        k = self.keys(queue)
        keys = [k.meta, k.line, k.tickets, k.events, k.finished, k.called]
        return await self._run("finish", keys, [k.channel, number, status])

    async def leave(self, queue: str, number: int, nonce: str) -> dict[str, Any]:
        k = self.keys(queue)
        keys = [k.meta, k.line, k.tickets, k.events, k.finished, k.called]
        return await self._run("leave", keys, [k.channel, number, nonce])

    async def set_state(self, queue: str, action: str) -> dict[str, Any]:
        k = self.keys(queue)
        return await self._run("set_state", [k.meta, k.line, k.events], [k.channel, action])

    async def archive(self, queue: str, force: bool) -> dict[str, Any]:
        """Archive the queue (archive.lua); `force` removes its waiting tickets first."""
        k = self.keys(queue)
        keys = [k.meta, k.line, k.tickets, k.events, k.finished, k.called]
        return await self._run("archive", keys, [k.channel, "1" if force else "0"])

    async def remembered(self, name: str) -> bytes | None:
        """A stored first answer for an idempotency key (see server.idempotency)."""
        found: bytes | None = await self.guard(self.redis.get(f"{self.prefix}:idem:{name}"))
        return found

    async def remember(self, name: str, answer: bytes, ttl_s: int) -> None:
        """Store a first answer; a concurrent first answer already stored wins."""
        await self.guard(self.redis.set(f"{self.prefix}:idem:{name}", answer, ex=ttl_s, nx=True))

    # -- reads ----------------------------------------------------------------------------------

    async def queue_meta(self, queue: str) -> dict[str, str] | None:
        """The queue's live summary fields plus `waiting`, or None when Redis has no such queue."""
        k = self.keys(queue)
        flat, waiting = await self._read("read_meta", [k.meta, k.line], [])
        if not flat:
            return None
        fields = {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}
        fields["waiting"] = str(waiting)
        return fields

    async def ticket(self, queue: str, number: int) -> TicketView | None:
        return (await self.tickets(queue, [number]))[0]

    async def tickets(self, queue: str, numbers: list[int]) -> list[TicketView | None]:
        """Several tickets of one queue as of one moment (one seq), in the order asked."""
        k = self.keys(queue)
        reply = await self._read("read_ticket", [k.meta, k.line, k.tickets], list(numbers))
        raws, ranks, waiting, (seq, epoch, state) = reply
        if seq is None:
            return [None] * len(numbers)
        return [
            None
            if raw is None
            else TicketView.of(
                number,
                TicketRecord.decode(raw),
                None if rank is None else int(rank),
                int(waiting),
                int(seq),
                epoch.decode(),
                state.decode(),
            )
            for number, raw, rank in zip(numbers, raws, ranks, strict=True)
        ]

    async def waiting_list(
        self, queue: str, limit: int | None = None
    ) -> list[tuple[int, str | None]]:
        """The waiting tickets in order (all of them, or the first `limit`), as (number, name)."""
        return [(n, name) for n, name, _ in await self.waiting_entries(queue, limit)]

    async def called_list(self, queue: str, limit: int = 1000) -> list[tuple[int, TicketRecord]]:
        """Called tickets not yet finished, oldest call first, as (number, ticket fields)."""
        k = self.keys(queue)
        numbers = await self.guard(self.redis.zrange(k.called, 0, limit - 1))
        if not numbers:
            return []
        raws = await self.guard(self.redis.hmget(k.tickets, numbers))
        return [(int(n), TicketRecord.decode(r)) for n, r in zip(numbers, raws, strict=True) if r]

    async def counters(self, queue: str) -> dict[str, int]:
        raw = await self.guard(self.redis.hgetall(self.keys(queue).counters))
        return {key.decode(): int(value) for key, value in raw.items()}

    async def snapshot(
        self, queue: str, numbers: list[int]
    ) -> tuple[Snapshot | None, dict[int, TicketView]]:
        """The queue's line and the given tickets, read by one script so they agree."""
        k = self.keys(queue)
        args: list[str | int] = [str(n) for n in numbers]
        meta, flat_line, raws = await self._read("read_snapshot", [k.meta, k.line, k.tickets], args)
        epoch, seq, state = meta
        line = list(zip(flat_line[0::2], flat_line[1::2], strict=True))  # (number, score)
        if epoch is None:
            return None, {}
        snap = Snapshot(
            epoch.decode(),
            int(seq),
            state.decode(),
            tuple(int(n) for n, _ in line),
            tuple(float(score) for _, score in line),
        )
        views: dict[int, TicketView] = {}
        if numbers:
            rank = {n: i for i, n in enumerate(snap.numbers)}
            for number, raw in zip(numbers, raws, strict=True):
                if raw is not None:
                    record = TicketRecord.decode(raw)
                    views[number] = TicketView.of(
                        number,
                        record,
                        rank.get(number),
                        len(line),
                        snap.seq,
                        snap.epoch,
                        snap.state,
                    )
        return snap, views

    async def seqs(self, queues: list[str]) -> list[tuple[str | None, int | None]]:
        """(epoch, seq) of each queue in one round trip, for the periodic drift check."""
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.hmget(self.keys(queue).meta, ["epoch", "seq"])
        rows = await self.guard(pipe.execute())
        return [(None if e is None else e.decode(), None if s is None else int(s)) for e, s in rows]

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.redis.ping(), timeout=1.0))
        except (RedisError, OSError, TimeoutError):
            return False

    # -- notices --------------------------------------------------------------------------------

    def notices(self, deliver: Deliver) -> NoticeStream:
        """The notices of the queues subscribed to, each handed to `deliver` as it arrives."""
        from server.store.notices import NoticeStream

        return NoticeStream(self, deliver)


def _new_epoch() -> str:
    return secrets.token_hex(6)
