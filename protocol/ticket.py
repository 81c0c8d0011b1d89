"""A ticket as Redis keeps it, and the constants the Lua scripts and Python share.

The Lua scripts write each ticket as a small JSON object in the queue's `tickets` hash; every
Python reader goes through `TicketRecord` instead of picking at its keys. The constants below are
also handed to the scripts (`lua_constants()`), so both languages use one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from protocol.score import BAND, GAP, MAX_PRIORITY, MID

# How long a finished ticket stays readable (its token answers with the final status).
FINISHED_KEEP_MS = 24 * 3600 * 1000
# Gaps between calls longer than this are breaks (lunch, closing time), not service speed.
MAX_CALL_INTERVAL_S = 30 * 60
# Finished statuses. A watcher of one is told, and closed, except after `no_show` (staff may
# requeue the ticket within a day, and the watcher should see it) and `transferred` (the
# watcher is sent where the ticket went, then closed).
FINAL_STATUSES = frozenset({"served", "no_show", "left", "removed", "transferred"})
ENDS_WATCH = frozenset({"served", "left", "removed"})
STATUSES = frozenset({"waiting", "called"}) | FINAL_STATUSES


def lua_constants() -> str:
    """The shared constants as Lua locals, prepended to every script."""
    return (
        f"local FINISHED_KEEP_MS = {FINISHED_KEEP_MS}\n"
        f"local BAND, MID, GAP = {BAND:.0f}, {MID:.0f}, {GAP:.0f}\n"
        f"local MAX_PRIORITY = {MAX_PRIORITY}\n"
    )


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """One value of the `tickets` hash: `{"s", "nc", "j", "nm"?, "ct"?, "c"?, "f"?, "p"?,
    "tq"?, "tn"?, "tnc"?, "x"?}` (`p` priority; `tq`/`tn`/`tnc` where a transferred ticket went,
    `x` the id of the transfer that moved it, so that transfer_out.lua can answer a repeat)."""

    status: str
    nonce: str
    joined_ms: int
    name: str | None = None
    counter: str | None = None
    called_ms: int | None = None
    finished_ms: int | None = None
    priority: int = 0
    to_queue: str | None = None
    to_number: int | None = None
    to_nonce: str | None = None
    transfer_id: str | None = None

    @classmethod
    def decode(cls, raw: bytes | str) -> TicketRecord:
        """Parse a stored record; ValueError when it is not one (Redis is ours, so: a bug)."""
        try:
            data = orjson.loads(raw)
            status = data["s"]
            record = cls(
                status=status,
                nonce=str(data["nc"]),
                joined_ms=int(data["j"]),
                name=_opt_str(data.get("nm")),
                counter=_opt_str(data.get("ct")),
                called_ms=_opt_int(data.get("c")),
                finished_ms=_opt_int(data.get("f")),
                priority=int(data.get("p", 0)),
                to_queue=_opt_str(data.get("tq")),
                to_number=_opt_int(data.get("tn")),
                to_nonce=_opt_str(data.get("tnc")),
                transfer_id=_opt_str(data.get("x")),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a ticket record: {exc}") from None
        if status not in STATUSES:
            raise ValueError(f"not a ticket status: {status!r}")
        return record

    def to_map(self) -> dict[str, Any]:
        data: dict[str, Any] = {"s": self.status, "nc": self.nonce, "j": self.joined_ms}
        if self.name is not None:
            data["nm"] = self.name
        if self.counter is not None:
            data["ct"] = self.counter
        if self.called_ms is not None:
            data["c"] = self.called_ms
        if self.finished_ms is not None:
            data["f"] = self.finished_ms
        if self.priority:
            data["p"] = self.priority
        if self.to_queue is not None:
            data.update(tq=self.to_queue, tn=self.to_number, tnc=self.to_nonce)
        if self.transfer_id is not None:
            data["x"] = self.transfer_id
        return data

    def encode(self) -> bytes:
        return orjson.dumps(self.to_map())


@dataclass(frozen=True, slots=True)
class TicketView:
    """A ticket as read from Redis, with the queue's seq at the moment of the read."""

    number: int
    status: str
    name: str | None
    nonce: str
    counter: str | None
    joined_ms: int
    called_ms: int | None
    position: int | None  # only while waiting
    waiting: int
    seq: int
    epoch: str
    queue_state: str
    priority: int = 0
    finished_ms: int | None = None
    to_queue: str | None = None  # a transferred ticket: where it went
    to_number: int | None = None
    to_nonce: str | None = None

    @classmethod
    def of(
        cls,
        number: int,
        record: TicketRecord,
        rank: int | None,
        waiting: int,
        seq: int,
        epoch: str,
        queue_state: str,
    ) -> TicketView:
        """The view of `record`, whose 0-based rank in the line is `rank` (None: not in it)."""
        waiting_now = record.status == "waiting" and rank is not None
        return cls(
            number=number,
            status=record.status,
            name=record.name,
            nonce=record.nonce,
            counter=record.counter,
            joined_ms=record.joined_ms,
            called_ms=record.called_ms,
            position=rank + 1 if waiting_now and rank is not None else None,
            waiting=waiting,
            seq=seq,
            epoch=epoch,
            queue_state=queue_state,
            priority=record.priority,
            finished_ms=record.finished_ms,
            to_queue=record.to_queue,
            to_number=record.to_number,
            to_nonce=record.to_nonce,
        )


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
