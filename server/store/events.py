"""The queues' event streams: the outbox every node's persister reads (architecture.md inv. 6).

Each queue has its own stream in its own hash slot, read through one consumer group
(`PERSISTER_GROUP`) shared by every node: an entry goes to one node, stays pending until that
node has committed it to PostgreSQL and acknowledged it, and is claimed by another node if the
first one dies holding it. The notifier reads the same streams through its own group
(`NOTIFIER_GROUP`), the same way. A stream is trimmed only below its oldest entry that some
group has not acknowledged, so an entry leaves Redis only once PostgreSQL has it and the
notifier has handled it.

Streams live in different hash slots, so nothing here puts two queues in one script. On one
Redis a read names many streams; on a Redis Cluster no command may name keys of two slots, so
each stream is read by its own XREADGROUP, pipelined by redis-py to the primary owning it: the
group and its pending entries live in the stream's shard, and follow it through a failover.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

import orjson
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from protocol.ticket import lua_constants
from server.errors import Unavailable
from server.events import StreamEvent
from server.keys import PERSISTER_GROUP, STREAM_GROUPS, queues_index, scheduled_index
from server.store.core import Store

log = logging.getLogger(__name__)

# The fields of a stream entry, as Redis returns them (bytes): the event's own, and those of
# `data` that are integers.
CORE_FIELDS = frozenset({b"seq", b"type", b"at", b"epoch", b"ticket"})
INT_FIELDS = frozenset({b"waiting", b"waited_ms", b"service_ms", b"priority"})
HELD_LOOK = 1000  # pending entries read to tell whether another consumer holds older ones
STREAMS_PER_READ = 500  # keys per XREADGROUP: bounds one command's size on a node with many queues


@dataclass(frozen=True, slots=True)
class Backlog:
    """Entries still in the streams (not yet trimmed) and the age of the oldest, for the lag."""

    entries: int
    oldest_ms: int | None


def parse_entry(queue: str, entry_id: bytes, fields: dict[bytes, bytes]) -> StreamEvent | None:
    """The event of a stream entry, or None when the entry is not one of ours.

    Every node's persister and notifier parse every event, on the cores that serve joins: one
    pass over the fields, decoding only what goes into `data`.
    """
    try:
        data: dict[str, str | int] = {}
        for key, value in fields.items():
            if key not in CORE_FIELDS:
                data[key.decode()] = int(value) if key in INT_FIELDS else value.decode()
        ticket = fields.get(b"ticket")
        return StreamEvent(
            queue=queue,
            entry_id=entry_id.decode(),
            seq=int(fields[b"seq"]),
            kind=fields[b"type"].decode(),
            ticket=None if ticket is None else int(ticket),
            at_ms=int(fields[b"at"]),
            epoch=fields[b"epoch"].decode(),
            data=data,
        )
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


def entry_ms(entry_id: bytes | str) -> int:
    """The millisecond time part of a stream id."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def _after(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _trim_bound(groups: list[dict[str, Any]], pendings: list[Any]) -> str | None:
    """The lowest entry id some known group of the stream still needs; None: no known group."""
    by_name = {g["name"].decode(): g for g in groups}
    bounds: list[tuple[int, int]] = []
    for group, pending in zip(STREAM_GROUPS, pendings, strict=True):
        if group not in by_name or isinstance(pending, Exception):
            continue
        bound = _after(by_name[group]["last-delivered-id"].decode())
        if pending["pending"]:
            bound = pending["min"].decode()
        ms_part, _, seq_part = bound.partition("-")
        bounds.append((int(ms_part), int(seq_part or 0)))
    if not bounds:
        return None
    ms, seq = min(bounds)
    return f"{ms}-{seq}"


def _load_restore() -> str:
    folder = resources.files("server") / "scripts"
    common = lua_constants() + (folder / "common.lua").read_text()
    return common + "\n" + (folder / "restore.lua").read_text()


class EventStreams:
    """Every Redis call the persister, the notifier and recovery make on the event streams.

    `group` is the consumer group read, claimed and acknowledged; `ensure_groups` also creates
    the `companions` (the other readers' groups), at once, so that no reader starts after the
    others have trimmed events it never saw.
    """

    def __init__(
        self, store: Store, group: str = PERSISTER_GROUP, companions: Sequence[str] = ()
    ) -> None:
        self.store = store
        self.group = group
        self.groups = (group, *(g for g in companions if g != group))
        self.redis = store.redis
        self._restore: AsyncScript = store.redis.register_script(_load_restore())
        self._streams: dict[bytes, str] = {}  # stream key -> queue, for the replies
        self._grouped: set[str] = set()  # queues whose groups this object has made sure of
        self._malformed: list[tuple[str, str]] = []

    def stream(self, queue: str) -> str:
        key = self.store.keys(queue).events
        self._streams.setdefault(key.encode(), queue)
        return key

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except self.store.down_errors as exc:
            raise Unavailable(f"redis: {exc}") from exc

    async def _execute(self, pipe: Pipeline) -> list[Any]:
        try:
            results: list[Any] = await pipe.execute(raise_on_error=False)
            return results
        except self.store.down_errors as exc:
            raise Unavailable(f"redis: {exc}") from exc

    async def queues(self) -> list[str]:
        """Every queue slug with live state (the `{prefix}:queues` set)."""
        raw = await self._call(self.redis.smembers(queues_index(self.store.prefix)))
        return sorted(member.decode() for member in raw)

    async def live_queues(self) -> list[str]:
        """`queues()`, with the groups made on the streams of those seen for the first time."""
        queues = await self.queues()
        new = [q for q in queues if q not in self._grouped]
        if new:
            await self.ensure_groups(new)
            self._grouped.update(new)
        return queues

    async def index(self, queues: Sequence[str]) -> None:
        """Make sure live queues are in `{prefix}:queues`, the set the persisters read."""
        if queues:
            await self._call(self.redis.sadd(queues_index(self.store.prefix), *queues))

    async def ensure_groups(self, queues: Iterable[str]) -> None:
        """Create the groups on each stream (and the stream), reading from its start."""
        pipe = self.redis.pipeline(transaction=False)
        names = [queue for queue in queues for _ in self.groups]
        for queue in queues:
            for group in self.groups:
                pipe.xgroup_create(self.stream(queue), group, id="0", mkstream=True)
        for queue, result in zip(names, await self._execute(pipe), strict=True):
            if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                raise Unavailable(f"redis: cannot create the group of {queue}: {result}")

    async def read(
        self, consumer: str, queues: Sequence[str], count: int, block_ms: int
    ) -> list[StreamEvent]:
        """New entries for `consumer`, up to `count` per stream; blocks only on a small node.

        With more streams than one command takes, each chunk is read without blocking and the
        caller idles when nothing came back.
        """
        if self.store.cluster:
            return await self._read_each(consumer, queues, count, block_ms)
        out: list[StreamEvent] = []
        chunks = [queues[i : i + STREAMS_PER_READ] for i in range(0, len(queues), STREAMS_PER_READ)]
        block = block_ms if len(chunks) == 1 else None
        for chunk in chunks:
            streams: dict[Any, Any] = {self.stream(queue): ">" for queue in chunk}
            call = self.redis.xreadgroup(self.group, consumer, streams, count, block)
            try:
                reply: Any = await call
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise Unavailable(f"redis: {exc}") from exc
                log.info("a persister group is missing (Redis lost its data?); recreating")
                await self.ensure_groups(chunk)
                continue
            except self.store.down_errors as exc:
                raise Unavailable(f"redis: {exc}") from exc
            out.extend(self._parse_reply(reply or []))
        return out

    async def _read_each(
        self, consumer: str, queues: Sequence[str], count: int, block_ms: int
    ) -> list[StreamEvent]:
        """One non-blocking XREADGROUP per stream; waits `block_ms` when every one was empty."""
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.xreadgroup(self.group, consumer, {self.stream(queue): ">"}, count)
        out: list[StreamEvent] = []
        missing: list[str] = []
        for queue, reply in zip(queues, await self._execute(pipe), strict=True):
            if isinstance(reply, ResponseError) and "NOGROUP" in str(reply):
                missing.append(queue)
            elif isinstance(reply, Exception):
                raise Unavailable(f"redis: {reply}")
            else:
                out.extend(self._parse_reply(reply or []))
        if missing:
            log.info("%d persister groups are missing (a shard lost its data?)", len(missing))
            await self.ensure_groups(missing)
        if not out:
            await asyncio.sleep(block_ms / 1000)
        return out

    def _parse_reply(self, reply: list[Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for key, entries in reply:
            queue = self._streams[key]
            for entry_id, fields in entries:
                if entry_id is None:
                    continue
                event = parse_entry(queue, entry_id, fields)
                if event is None:
                    log.error("dropping malformed entry %s of queue %s", entry_id, queue)
                    self._malformed.append((queue, entry_id.decode()))
                else:
                    out.append(event)
        return out

    def take_malformed(self) -> list[tuple[str, str]]:
        """(queue, entry id) of entries that cannot be events: the caller acknowledges them."""
        taken, self._malformed = self._malformed, []
        return taken

    async def claim(
        self, consumer: str, queues: Sequence[str], min_idle_ms: int, count: int
    ) -> list[StreamEvent]:
        """Take over entries pending longer than `min_idle_ms` (their consumer died); their order
        is kept within each queue."""
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.xautoclaim(self.stream(queue), self.group, consumer, min_idle_ms, "0-0", count)
        out: list[StreamEvent] = []
        ghosts: list[str] = []
        for queue, result in zip(queues, await self._execute(pipe), strict=True):
            if isinstance(result, Exception):
                continue  # no group yet: nothing can be pending there
            entries = result[1]
            if any(entry_id is None for entry_id, _ in entries):
                ghosts.append(queue)
            out.extend(self._parse_reply([(self.stream(queue).encode(), entries)]))
        for queue in ghosts:
            await self._ack_deleted(queue)
        return out

    async def _ack_deleted(self, queue: str) -> None:
        """Acknowledge pending ids whose entry is gone (Redis 6.2 claims them as nil forever)."""
        key = self.stream(queue)
        pending = await self._call(self.redis.xpending_range(key, self.group, "-", "+", 1000))
        ids = [row["message_id"] for row in pending]
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xrange(key, entry_id, entry_id)
        gone = [i for i, rows in zip(ids, await self._execute(pipe), strict=True) if rows == []]
        if gone:
            log.warning("acknowledging %d deleted pending entries of queue %s", len(gone), queue)
            await self._call(self.redis.xack(key, self.group, *gone))

    async def held_by_others(self, below: dict[str, str], consumer: str) -> set[str]:
        """The queues of `below` (queue: entry id) where a consumer of this group other than
        `consumer` holds a pending entry older than the given id (a node that died mid-batch,
        or one still at work on it). Unsure (more pending than one look shows): held."""
        queues = list(below)
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            upper = f"({below[queue]}"  # exclusive
            pipe.xpending_range(self.stream(queue), self.group, "-", upper, HELD_LOOK)
        held: set[str] = set()
        for queue, rows in zip(queues, await self._execute(pipe), strict=True):
            if isinstance(rows, Exception):
                if "NOGROUP" in str(rows):
                    continue
                raise Unavailable(f"redis: {rows}")
            if len(rows) >= HELD_LOOK or any(row["consumer"].decode() != consumer for row in rows):
                held.add(queue)
        return held

    async def ack(self, entries: Iterable[tuple[str, str]], trim: bool = True) -> None:
        """XACK (queue, entry id) pairs, then (unless told not to) trim their streams."""
        by_queue: dict[str, list[str]] = {}
        for queue, entry_id in entries:
            by_queue.setdefault(queue, []).append(entry_id)
        pipe = self.redis.pipeline(transaction=False)
        for queue, ids in by_queue.items():
            pipe.xack(self.stream(queue), self.group, *ids)
        for result in await self._execute(pipe):
            if isinstance(result, Exception) and "NOGROUP" not in str(result):
                raise Unavailable(f"redis: {result}")
        if trim:
            await self.trim(list(by_queue))

    async def trim(self, queues: Sequence[str]) -> None:
        """Drop the entries every group has acknowledged: below the oldest one any group has not.

        For each group, below min(its oldest pending id, just after its last delivered id) every
        entry was delivered to it and is not pending, so it was acknowledged (for the persister:
        committed first). The groups are read before the pending lists: an entry delivered in
        between is then above the bound. A stream is trimmed below the lowest group's bound.
        """
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            key = self.stream(queue)
            pipe.xinfo_groups(key)
            for group in STREAM_GROUPS:
                pipe.xpending(key, group)
        results = await self._execute(pipe)
        pipe = self.redis.pipeline(transaction=False)
        trims = 0
        step = 1 + len(STREAM_GROUPS)
        for i, queue in enumerate(queues):
            groups, pendings = results[step * i], results[step * i + 1 : step * (i + 1)]
            bound = None if isinstance(groups, Exception) else _trim_bound(groups, pendings)
            if bound is not None:
                pipe.xtrim(self.stream(queue), minid=bound, approximate=False)
                trims += 1
        if trims:
            await self._execute(pipe)

    async def backlog(self, queues: Sequence[str]) -> Backlog:
        """This group's entries not yet acknowledged (delivered or not), and the oldest one's
        time. Not the streams' lengths: another group (the notifier's) may hold entries this
        one is done with."""
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            key = self.stream(queue)
            pipe.xinfo_groups(key)
            pipe.xpending(key, self.group)
            pipe.xlen(key)
        results = await self._execute(pipe)
        total, oldest = 0, None
        undelivered: list[tuple[str, str]] = []  # (queue, last delivered id) to look after
        for i, queue in enumerate(queues):
            groups, pending, length = results[3 * i : 3 * i + 3]
            if any(isinstance(r, Exception) for r in (groups, pending, length)):
                continue
            mine = [g for g in groups if g["name"] == self.group.encode()]
            if not mine:
                continue
            # Redis leaves `lag` unknown (nil) after some deletions: the stream's length, less
            # what is pending, is then an upper bound.
            known = mine[0].get("lag")
            lag = int(known) if known is not None else max(0, int(length) - int(pending["pending"]))
            total += lag + int(pending["pending"])
            if pending["pending"]:
                at = entry_ms(pending["min"])
                oldest = at if oldest is None else min(oldest, at)
            elif lag:
                undelivered.append((queue, mine[0]["last-delivered-id"].decode()))
        if undelivered:
            pipe = self.redis.pipeline(transaction=False)
            for queue, last in undelivered:
                pipe.xrange(self.stream(queue), _after(last), "+", 1)
            for first in await self._execute(pipe):
                if isinstance(first, Exception) or not first:
                    continue
                at = entry_ms(first[0][0])
                oldest = at if oldest is None else min(oldest, at)
        return Backlog(total, oldest)

    async def lag(self, queues: Sequence[str]) -> int:
        """Entries of the streams this group has not acknowledged yet (read or not)."""
        return (await self.backlog(queues)).entries

    async def prune_consumers(self, queues: Sequence[str], idle_ms: int) -> int:
        """Delete consumers idle for `idle_ms` with nothing pending (nodes gone for good)."""
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.xinfo_consumers(self.stream(queue), self.group)
        results = await self._execute(pipe)
        pipe = self.redis.pipeline(transaction=False)
        dropped = 0
        for queue, consumers in zip(queues, results, strict=True):
            if isinstance(consumers, Exception):
                continue
            for c in consumers:
                if int(c["pending"]) == 0 and int(c["idle"]) > idle_ms:
                    pipe.xgroup_delconsumer(self.stream(queue), self.group, c["name"])
                    dropped += 1
        if dropped:
            await self._execute(pipe)
        return dropped

    async def entries(self, queue: str) -> list[StreamEvent]:
        """Every event still in the queue's stream, oldest first (for a rebuild)."""
        raw = await self._call(self.redis.xrange(self.stream(queue), "-", "+"))
        events = (parse_entry(queue, entry_id, fields) for entry_id, fields in raw)
        return [e for e in events if e is not None]

    async def restore(self, queue: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Run restore.lua: replace the queue's live state if it is still as `payload` expects."""
        k = self.store.keys(queue)
        keys = [k.meta, k.line, k.tickets, k.called, k.counters, k.finished]
        # '' first: no acting key (common.lua takes it off ARGV; a rebuild is nobody's action).
        args = ["", k.channel, orjson.dumps(payload).decode()]
        raw = await self._call(self._restore(keys=keys, args=args))
        result = cast(dict[str, Any], orjson.loads(raw))
        if "error" in result:
            raise ValueError(f"restore of {queue} refused: {result['error']}")
        if result["restored"]:
            await self._call(self.redis.sadd(queues_index(self.store.prefix), queue))
            if any(name == "hours" for name, _ in payload.get("settings", ())):
                await self._call(self.redis.sadd(scheduled_index(self.store.prefix), queue))
        return result
