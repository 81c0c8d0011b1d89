"""One node's mirror of a queue's line, and which watched tickets an event moves.

The line is ordered by a score that encodes (priority, order): see `protocol/score.py`. A node
keeps, per queue with local watchers, the waiting tickets' scores in order (a snapshot from
Redis, then each event applied to it) and the numbers its own watchers hold. A ticket's position
is its rank in the mirror plus one, so no event needs a Redis call per watcher: a removal ahead
of you moves you up one, an insertion ahead of you (a priority join, a requeue, a transfer in)
moves you down one, and a join at the tail of the lowest priority moves nobody. Work per event is
O(watchers moved) plus one memmove of the score array.

Each event carries the queue's `(epoch, seq)`. `apply()` refuses an event that does not follow
the last one (a gap, or another epoch) and the caller resyncs from a fresh snapshot.
"""

from __future__ import annotations

import enum
from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter
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
    ARCHIVED = "archived"  # retired by an admin: closed for good


QUEUE_STATE_AFTER = {
    EventKind.PAUSED: "paused",
    EventKind.RESUMED: "open",
    EventKind.CLOSED: "closed",
    EventKind.OPENED: "open",
    EventKind.ARCHIVED: "closed",
}
# Events that put a ticket into the line at the score they carry.
PLACEMENTS = frozenset({EventKind.JOINED, EventKind.REQUEUED, EventKind.TRANSFER_IN})
# Events that take a ticket out of the line (if it was waiting).
REMOVALS = frozenset({EventKind.LEFT, EventKind.CALLED, EventKind.REMOVED, EventKind.TRANSFERRED})
_second = itemgetter(1)  # the number of a watched line's (score, number) entry


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
    scores: tuple[float, ...] = ()  # their scores (ZRANGE WITHSCORES); empty: the numbers'


class Outcome(enum.Enum):
    APPLIED = "applied"
    STALE = "stale"  # already reflected in the mirror: ignore
    GAP = "gap"  # something was missed: resync


class LineMirror:
    def __init__(self, snapshot: Snapshot) -> None:
        self.epoch = snapshot.epoch
        self.seq = snapshot.seq
        self.state = snapshot.state
        self.scores = array("d")  # waiting tickets' scores, ascending (the line, in order)
        self.numbers = array("q")  # the same tickets' numbers, in the same order
        self.score_of: dict[int, float] = {}
        self.watched: set[int] = set()  # locally watched numbers, waiting or not
        self._watched_line: list[tuple[float, int]] = []  # watched and waiting, by score
        self._load(snapshot)

    def _load(self, snapshot: Snapshot) -> None:
        scores = snapshot.scores or tuple(float(n) for n in snapshot.numbers)
        pairs = sorted(zip(scores, snapshot.numbers, strict=True))
        self.scores = array("d", (s for s, _ in pairs))
        self.numbers = array("q", (n for _, n in pairs))
        self.score_of = {n: s for s, n in pairs}
        self._watched_line = sorted(
            (self.score_of[n], n) for n in self.watched if n in self.score_of
        )

    @property
    def waiting(self) -> int:
        return len(self.scores)

    def position(self, number: int) -> int | None:
        """1-based place in line, or None when the ticket is not waiting (as far as we know)."""
        score = self.score_of.get(number)
        if score is None:
            return None
        return bisect_left(self.scores, score) + 1

    def positions(
        self, numbers: AbstractSet[int], behind: float | None = None
    ) -> tuple[list[int], list[int]]:
        """Those of `numbers` that are waiting, and their positions: two lists, pairwise. With
        `behind` (`apply_marked`'s mark), every watched ticket behind that score as well.

        A flush asks this for most of the line at once: one pass over the line beats a lookup
        and a binary search per number, unless the numbers are few. Two lists of ints rather
        than a tuple per ticket: thousands of tuples per flush would wake the cyclic garbage
        collector, which then walks every object of every connection (BENCHMARKS.md, Profile).
        """
        if behind is None:
            return self._named(numbers, len(self.numbers))
        start = bisect_right(self.scores, behind)  # the first place behind the mark
        found, places = self._named(numbers, start) if numbers else ([], [])
        # The rest of the line holds only watched numbers worth telling: named or marked.
        line = self.numbers[start:]
        watched = list(map(self.watched.__contains__, line))
        found += compress(line, watched)
        places += compress(range(start + 1, len(self.numbers) + 1), watched)
        return found, places

    def _named(self, numbers: AbstractSet[int], end: int) -> tuple[list[int], list[int]]:
        """Those of `numbers` waiting in the first `end` places, and their positions."""
        if len(numbers) * 16 < end:
            found: list[int] = []
            places: list[int] = []
            for number in numbers:
                score = self.score_of.get(number)
                place = None if score is None else bisect_left(self.scores, score)
                if place is not None and place < end:
                    found.append(number)
                    places.append(place + 1)
            return found, places
        # Built by C loops (map, compress), with no bytecode run per ticket.
        line = self.numbers[:end] if end < len(self.numbers) else self.numbers
        waiting = list(map(numbers.__contains__, line))
        return list(compress(line, waiting)), list(compress(range(1, end + 1), waiting))

    def score(self, number: int) -> float | None:
        return self.score_of.get(number)

    def watch(self, number: int) -> None:
        if number in self.watched:
            return
        self.watched.add(number)
        score = self.score_of.get(number)
        if score is not None:
            insort(self._watched_line, (score, number))

    def unwatch(self, number: int) -> None:
        if number not in self.watched:
            return
        self.watched.discard(number)
        score = self.score_of.get(number)
        if score is not None:
            self._unwatch_line(score, number)

    def _unwatch_line(self, score: float, number: int) -> None:
        """Take a watched ticket out of the watched line: found by bisection, not by a scan that
        compares with every entry (`list.remove`), which made the 5,000 disconnects of a
        reconnect storm cost the node 0.14 s more than this, and 10,000 four times that."""
        line = self._watched_line
        i = bisect_left(line, (score, number))
        if i < len(line) and line[i] == (score, number):
            del line[i]
        else:  # not where its score says: the line's order is broken, a bug
            raise ValueError(f"ticket {number} is not in the watched line")

    def apply(self, notice: Notice) -> tuple[Outcome, list[int]]:
        """Apply one event; return the outcome and the watched numbers whose position changed."""
        outcome, moved, behind = self.apply_marked(notice)
        return outcome, moved if behind is None else moved + self._behind(behind)

    def apply_marked(self, notice: Notice) -> tuple[Outcome, list[int], float | None]:
        """`apply`, with the watched tickets behind the change marked instead of listed.

        Returns the outcome, the numbers named by the event that moved (a watched ticket placed
        in line), and a score when every watched ticket behind it moved as well (None: none
        did). A call-next moves everyone behind the head: listing them costs a pass over every
        watcher per event; the mark costs two bisections, and `positions` reads it in the pass
        the flush makes anyway.
        """
        if notice.epoch != self.epoch:
            return Outcome.GAP, [], None
        if notice.seq <= self.seq:
            return Outcome.STALE, [], None
        if notice.seq != self.seq + 1 or notice.respaced:
            return Outcome.GAP, [], None
        self.seq = notice.seq
        moved: list[int] = []
        changed_at: float | None = None  # the score of the placed or the first removed ticket
        kind = notice.kind
        if kind in PLACEMENTS and notice.number is not None:
            if notice.score is None or notice.number in self.score_of:
                return Outcome.GAP, [], None
            moved = self._insert(notice.number, notice.score)
            changed_at = notice.score
        elif kind in REMOVALS:
            numbers = notice.numbers or (() if notice.number is None else (notice.number,))
            changed_at = self._remove_many(numbers)
        elif kind in QUEUE_STATE_AFTER:
            self.state = QUEUE_STATE_AFTER[kind]
        if len(self.scores) != notice.waiting:
            return Outcome.GAP, [], None  # our line disagrees with Redis's count: do not trust it
        if changed_at is not None and not self._watched_behind(changed_at):
            changed_at = None
        return Outcome.APPLIED, moved, changed_at

    def _insert(self, number: int, score: float) -> list[int]:
        """Place a ticket; returns it if watched (those behind it are `apply_marked`'s mark)."""
        i = bisect_left(self.scores, score)
        self.scores.insert(i, score)
        self.numbers.insert(i, number)
        self.score_of[number] = score
        if number in self.watched:
            insort(self._watched_line, (score, number))
            return [number]
        return []

    def _remove_many(self, numbers: tuple[int, ...]) -> float | None:
        """Take tickets out of the line; returns the lowest score removed (None: none was)."""
        lowest: float | None = None
        for number in numbers:
            score = self.score_of.pop(number, None)
            if score is None:
                continue
            i = bisect_left(self.scores, score)
            del self.scores[i]
            del self.numbers[i]
            if number in self.watched:
                self._unwatch_line(score, number)
            lowest = score if lowest is None else min(lowest, score)
        return lowest

    def _first_behind(self, score: float) -> int:
        """Where the watched tickets standing behind `score` start in the watched line."""
        return bisect_right(self._watched_line, (score, float("inf")))

    def _watched_behind(self, score: float) -> bool:
        return self._first_behind(score) < len(self._watched_line)

    def _behind(self, score: float) -> list[int]:
        return list(map(_second, self._watched_line[self._first_behind(score) :]))

    def reset(self, snapshot: Snapshot) -> list[int]:
        """Replace the line by a fresh snapshot; return every watched number (all to recheck)."""
        self.epoch = snapshot.epoch
        self.seq = snapshot.seq
        self.state = snapshot.state
        self._load(snapshot)
        return sorted(self.watched)
