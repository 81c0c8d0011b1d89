"""One node's mirror of a queue's line, and which watched tickets an event moves.

A node keeps, per queue with local watchers, the ticket numbers waiting in order (a snapshot
from Redis, then each event applied to it) and the numbers its own watchers hold. A ticket's
position is its rank in the mirror plus one, so no event needs a Redis call per watcher: a
removal ahead of you moves you up one; a join at the tail moves nobody.

Each event carries the queue's `(epoch, seq)`. `apply()` refuses an event that does not follow
the last one (a gap, or another epoch) and the caller resyncs from a fresh snapshot.
"""

from __future__ import annotations

import enum
from array import array
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass
from typing import Any

import orjson


class EventKind(enum.Enum):
    JOINED = "joined"
    LEFT = "left"
    CALLED = "called"
    SERVED = "served"
    NO_SHOW = "no_show"
    PAUSED = "paused"
    RESUMED = "resumed"
    CLOSED = "closed"
    OPENED = "opened"
    REMOVED = "removed"  # by staff or by the closing hour; one ticket (`n`) or many (`ns`)
    RECALLED = "recalled"  # a called ticket called again
    REQUEUED = "requeued"  # a called or no-show ticket put back in the line (a placement)
    TRANSFERRED = "transferred"  # moved out to another queue (`tq`, `tn`)
    TRANSFER_IN = "transfer_in"  # arrived from another queue (a placement)
    SETTINGS = "settings"  # the queue's settings changed


QUEUE_STATE_AFTER = {
    EventKind.PAUSED: "paused",
    EventKind.RESUMED: "open",
    EventKind.CLOSED: "closed",
    EventKind.OPENED: "open",
}
# Events that put a ticket into the line at the score they carry.
PLACEMENTS = frozenset({EventKind.JOINED, EventKind.REQUEUED, EventKind.TRANSFER_IN})
# Events that take a ticket out of the line (if it was waiting).
REMOVALS = frozenset({EventKind.LEFT, EventKind.CALLED, EventKind.REMOVED, EventKind.TRANSFERRED})


def _opt_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return None if value is None else int(value)


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Notice:
    """One queue change as published on the queue's channel."""

    epoch: str
    seq: int
    kind: EventKind
    number: int | None = None  # the ticket's number, for ticket events
    waiting: int = 0  # line length after the change
    counter: str | None = None
    at_ms: int = 0
    score: float | None = None  # where a placed ticket now stands in the line
    priority: int | None = None
    name: str | None = None
    numbers: tuple[int, ...] = ()  # a bulk removal's tickets
    recall: bool = False
    target_queue: str | None = None  # a transfer out: where the ticket went
    target_number: int | None = None
    respaced: bool = False  # the script renumbered the line's scores: only a snapshot can follow

    @classmethod
    def from_wire(cls, raw: bytes) -> Notice:
        """Parse a published notice; ValueError / KeyError / TypeError when malformed."""
        data = orjson.loads(raw)
        score = data.get("sc")
        return cls(
            epoch=str(data["e"]),
            seq=int(data["s"]),
            kind=EventKind(data["k"]),
            number=_opt_int(data, "n"),
            waiting=int(data["w"]),
            counter=_opt_str(data, "c"),
            at_ms=int(data.get("at", 0)),
            score=None if score is None else float(int(score)),  # sent as text: exact digits
            priority=_opt_int(data, "p"),
            name=_opt_str(data, "nm"),
            numbers=tuple(int(n) for n in data.get("ns") or ()),
            recall=bool(data.get("r")),
            target_queue=_opt_str(data, "tq"),
            target_number=_opt_int(data, "tn"),
            respaced=bool(data.get("rs")),
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    epoch: str
    seq: int
    state: str
    numbers: tuple[int, ...]  # waiting tickets, in order


class Outcome(enum.Enum):
    APPLIED = "applied"
    STALE = "stale"  # already reflected in the mirror: ignore
    GAP = "gap"  # something was missed: resync


class LineMirror:
    def __init__(self, snapshot: Snapshot) -> None:
        self.epoch = snapshot.epoch
        self.seq = snapshot.seq
        self.state = snapshot.state
        self.numbers = array("q", sorted(snapshot.numbers))
        self.watched: list[int] = []  # sorted numbers of locally watched tickets

    @property
    def waiting(self) -> int:
        return len(self.numbers)

    def position(self, number: int) -> int | None:
        """1-based place in line, or None when the ticket is not waiting (as far as we know)."""
        i = bisect_left(self.numbers, number)
        if i < len(self.numbers) and self.numbers[i] == number:
            return i + 1
        return None

    def watch(self, number: int) -> None:
        i = bisect_left(self.watched, number)
        if i == len(self.watched) or self.watched[i] != number:
            self.watched.insert(i, number)

    def unwatch(self, number: int) -> None:
        i = bisect_left(self.watched, number)
        if i < len(self.watched) and self.watched[i] == number:
            del self.watched[i]

    def apply(self, notice: Notice) -> tuple[Outcome, list[int]]:
        """Apply one event; return the outcome and the watched numbers whose position changed."""
        if notice.epoch != self.epoch:
            return Outcome.GAP, []
        if notice.seq <= self.seq:
            return Outcome.STALE, []
        if notice.seq != self.seq + 1:
            return Outcome.GAP, []
        self.seq = notice.seq
        moved: list[int] = []
        kind = notice.kind
        if kind is EventKind.JOINED and notice.number is not None:
            if not self.numbers or notice.number > self.numbers[-1]:
                self.numbers.append(notice.number)
            else:  # only after a rebuild can a join land mid-line
                insort(self.numbers, notice.number)
                moved = self._behind(notice.number)
            if self._is_watched(notice.number):
                moved.insert(0, notice.number)
        elif kind in (EventKind.LEFT, EventKind.CALLED) and notice.number is not None:
            i = bisect_left(self.numbers, notice.number)
            if i < len(self.numbers) and self.numbers[i] == notice.number:
                del self.numbers[i]
                moved = self._behind(notice.number)
        elif kind in QUEUE_STATE_AFTER:
            self.state = QUEUE_STATE_AFTER[kind]
        if len(self.numbers) != notice.waiting:
            return Outcome.GAP, []  # our line disagrees with Redis's count: do not trust it
        return Outcome.APPLIED, moved

    def _behind(self, number: int) -> list[int]:
        return self.watched[bisect_right(self.watched, number) :]

    def _is_watched(self, number: int) -> bool:
        i = bisect_left(self.watched, number)
        return i < len(self.watched) and self.watched[i] == number

    def reset(self, snapshot: Snapshot) -> list[int]:
        """Replace the line by a fresh snapshot; return every watched number (all to recheck)."""
        self.epoch = snapshot.epoch
        self.seq = snapshot.seq
        self.state = snapshot.state
        self.numbers = array("q", sorted(snapshot.numbers))
        return list(self.watched)
