"""Staff's changes to the line (remove, recall, requeue, transfer, settings, the hours'
boundaries): one Lua script each, like the customer's changes in `server/store/core.py`.

A transfer touches two queues that may live in different hash slots, so it is two idempotent
scripts sharing a transfer id (`transfer_in` on the target, then `transfer_out` on the source).
Before the first, the intent is written to one node-independent hash (`transfers_index`), and
removed after the second: the recovery check (`server/transfers.py`) completes what a crash
left half-done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from protocol.ticket import TicketRecord
from server.keys import scheduled_index, transfer_key, transfers_index

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from server.keys import QueueKeys

TRANSFER_TTL_S = 24 * 3600


class LineOps:
    """Mixed into `Store`; relies on its `keys`, `_run`, `guard`, `redis` and `prefix`."""

    if TYPE_CHECKING:
        redis: Redis
        prefix: str

        def keys(self, queue: str) -> QueueKeys: ...

        async def _run(
            self, name: str, keys: list[str], args: list[str | int]
        ) -> dict[str, Any]: ...

        async def guard(self, awaitable: Any) -> Any: ...

    def _finish_keys(self, queue: str) -> list[str]:
        k = self.keys(queue)
        return [k.meta, k.line, k.tickets, k.events, k.finished, k.called]

    async def remove(self, queue: str, number: int, reason: str | None) -> dict[str, Any]:
        keys = self._finish_keys(queue)
        return await self._run("remove", keys, [self.keys(queue).channel, number, reason or ""])

    async def remove_many(
        self, queue: str, numbers: list[int] | None, reason: str | None
    ) -> dict[str, Any]:
        """Remove the listed tickets, or (numbers None) the whole line, in one script."""
        args: list[str | int] = [self.keys(queue).channel, reason or ""]
        args += ["all"] if numbers is None else ["list", *numbers]
        return await self._run("remove_many", self._finish_keys(queue), args)

    async def recall(self, queue: str, number: int, counter: str | None) -> dict[str, Any]:
        k = self.keys(queue)
        keys = [k.meta, k.line, k.tickets, k.events, k.counters]
        return await self._run("recall", keys, [k.channel, number, counter or ""])

    async def requeue(self, queue: str, number: int, position: int) -> dict[str, Any]:
        keys = self._finish_keys(queue)
        return await self._run("requeue", keys, [self.keys(queue).channel, number, position])

    async def transfer_in(self, intent: dict[str, Any]) -> dict[str, Any]:
        """The target's half of a transfer (idempotent on `intent["id"]`)."""
        k = self.keys(intent["to_queue"])
        keys = [k.meta, k.line, k.tickets, k.events, transfer_key(k, intent["id"])]
        position = intent.get("position")
        args: list[str | int] = [
            k.channel,
            intent["id"],
            intent["venue"],
            intent["from_queue"],
            intent["from_number"],
            intent.get("name") or "",
            intent["nonce"],
            intent["priority"],
            "" if position is None else position,
            TRANSFER_TTL_S,
        ]
        return await self._run("transfer_in", keys, args)

    async def transfer_out(self, intent: dict[str, Any], to_number: int) -> dict[str, Any]:
        """The source's half of a transfer (idempotent on `intent["id"]`)."""
        queue = intent["from_queue"]
        args: list[str | int] = [
            self.keys(queue).channel,
            intent["from_number"],
            intent["id"],
            intent["to_queue"],
            to_number,
            intent["nonce"],
        ]
        return await self._run("transfer_out", self._finish_keys(queue), args)

    async def save_transfer(self, intent: dict[str, Any]) -> None:
        index = transfers_index(self.prefix)
        await self.guard(self.redis.hset(index, intent["id"], orjson.dumps(intent)))

    async def drop_transfer(self, transfer_id: str) -> None:
        await self.guard(self.redis.hdel(transfers_index(self.prefix), transfer_id))

    async def pending_transfers(self) -> list[dict[str, Any]]:
        raw = await self.guard(self.redis.hgetall(transfers_index(self.prefix)))
        return [orjson.loads(value) for value in raw.values()]

    async def change_settings(
        self, queue: str, change: dict[str, Any], fields: dict[str, str], now_ms: int
    ) -> dict[str, Any]:
        """Store settings fields (value '' clears one) and log `change` as the event."""
        k = self.keys(queue)
        args: list[str | int] = [k.channel, orjson.dumps(change).decode(), now_ms]
        for name, value in fields.items():
            args += [name, value]
        return await self._run("settings", [k.meta, k.line, k.events], args)

    async def boundary(self, queue: str, at_ms: int, action: str, clear: bool) -> dict[str, Any]:
        keys = self._finish_keys(queue)
        args: list[str | int] = [self.keys(queue).channel, at_ms, action, "1" if clear else "0"]
        return await self._run("boundary", keys, args)

    async def waiting_entries(
        self, queue: str, limit: int | None = None
    ) -> list[tuple[int, str | None, int]]:
        """The waiting tickets in order as (number, name, priority)."""
        k = self.keys(queue)
        end = -1 if limit is None else limit - 1
        numbers = await self.guard(self.redis.zrange(k.line, 0, end))
        if not numbers:
            return []
        raws = await self.guard(self.redis.hmget(k.tickets, numbers))
        out: list[tuple[int, str | None, int]] = []
        for number, raw in zip(numbers, raws, strict=True):
            record = TicketRecord.decode(raw) if raw else None
            name, priority = (record.name, record.priority) if record else (None, 0)
            out.append((int(number), name, priority))
        return out

    async def schedule(self, queue: str, has_hours: bool) -> None:
        """Add a queue to (or drop it from) the set the hours schedulers walk."""
        index = scheduled_index(self.prefix)
        if has_hours:
            await self.guard(self.redis.sadd(index, queue))
        else:
            await self.guard(self.redis.srem(index, queue))

    async def scheduled(self) -> list[tuple[str, bytes | None]]:
        """Each queue with hours, with its `hours` JSON (None when the queue is gone)."""
        queues = sorted(
            q.decode() for q in await self.guard(self.redis.smembers(scheduled_index(self.prefix)))
        )
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.hget(self.keys(queue).meta, "hours")
        rows = await self.guard(pipe.execute())
        return list(zip(queues, rows, strict=True))
