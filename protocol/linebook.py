"""What a node knows of a queue's tickets beyond their order: for the staff and board views.

The line mirror (`protocol.line`) keeps the waiting numbers in order; the staff console also
needs each waiting ticket's name and priority, and the called tickets with their counter and
call time. A `LineBook` holds those, filled once from a snapshot read and then kept by the same
notices that move the mirror (they carry the name, the priority and the counter), so a `line`
or `board` frame never costs a Redis call. It builds the frames; when to send them is the
watch's business.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Protocol

from protocol.names import ticket_id
from protocol.views import (
    MAX_CALLED_TICKETS,
    MAX_LINE_TICKETS,
    Board,
    BoardCall,
    CalledTicket,
    Line,
    LineTicket,
)


def iso_ms(at_ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC, `2026-11-23T15:34:51.743Z`."""
    moment = datetime.fromtimestamp(at_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


PLACED = frozenset({"joined", "requeued", "transfer_in"})
FINISHED = frozenset({"served", "no_show", "left", "transferred", "removed"})


class BookNotice(Protocol):
    """The fields of a queue notice (`protocol.line.Notice`) that the book reads."""

    @property
    def seq(self) -> int: ...
    @property
    def kind(self) -> Enum: ...
    @property
    def number(self) -> int | None: ...
    @property
    def numbers(self) -> tuple[int, ...]: ...
    @property
    def name(self) -> str | None: ...
    @property
    def priority(self) -> int | None: ...
    @property
    def counter(self) -> str | None: ...
    @property
    def at_ms(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Waiting:
    name: str | None
    priority: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str | None
    counter: str | None
    at_ms: int
    priority: int = 0  # kept so that a requeue without a priority in its notice keeps it


class LineBook:
    def __init__(self, queue: str, board_names: bool = False) -> None:
        self.queue = queue
        self.board_names = board_names
        self.waiting: dict[int, Waiting] = {}
        self.called: dict[int, Call] = {}  # in call order

    def reset(
        self,
        waiting: Iterable[tuple[int, str | None, int]],
        called: Iterable[tuple[int, str | None, str | None, int]],
        board_names: bool,
    ) -> None:
        """Start over from a snapshot: (number, name, priority) waiting and
        (number, name, counter, called at ms) called, in call order."""
        self.board_names = board_names
        self.waiting = {number: Waiting(name, priority) for number, name, priority in waiting}
        self.called = {}
        for number, name, counter, at_ms in sorted(called, key=lambda c: c[3]):
            self.called[number] = Call(name, counter, at_ms)

    # -- changes, as the notices tell them ------------------------------------------------------

    def apply(self, notice: BookNotice) -> None:
        """Follow one notice the line mirror applied (kinds by value: the mirror owns the enum)."""
        kind, number = notice.kind.value, notice.number
        if kind in PLACED and number is not None:
            self.placed(number, notice.name, notice.priority)
        elif kind == "called" and number is not None:
            self.called_at(number, notice.counter, notice.at_ms)
        elif kind == "recalled" and number is not None:
            self.recalled(number, notice.counter)
        elif kind in FINISHED:
            if number is not None:
                self.finished([number])
            elif notice.numbers:
                self.finished(notice.numbers)
            elif kind == "removed":  # the whole line, with no list: every waiting ticket
                self.cleared()

    def placed(self, number: int, name: str | None, priority: int | None) -> None:
        """Joined, requeued or transferred in. A requeue's notice may leave out the name or the
        priority: what the ticket had when called is kept."""
        before = self.called.pop(number, None) or self.waiting.get(number)
        if before is not None:
            name = name if name is not None else before.name
            priority = priority if priority is not None else before.priority
        self.waiting[number] = Waiting(name, priority or 0)

    def recalled(self, number: int, counter: str | None) -> None:
        """Called again: a new counter, if given; the call keeps its time and place (as Redis
        keeps them, so that a fresh read agrees)."""
        call = self.called.get(number)
        if call is not None and counter is not None:
            self.called[number] = Call(call.name, counter, call.at_ms, call.priority)

    def called_at(self, number: int, counter: str | None, at_ms: int) -> None:
        """Called: the ticket leaves the waiting line and joins the called ones, last."""
        before = self.waiting.pop(number, None) or self.called.pop(number, None)
        name = None if before is None else before.name
        priority = 0 if before is None else before.priority
        self.called[number] = Call(name, counter, at_ms, priority)

    def finished(self, numbers: Iterable[int]) -> None:
        """Served, no-show, left, removed or transferred away."""
        for number in numbers:
            self.waiting.pop(number, None)
            self.called.pop(number, None)

    def cleared(self) -> None:
        """Every waiting ticket removed at once (called ones stay)."""
        self.waiting.clear()

    # -- frames ---------------------------------------------------------------------------------

    def line(self, state: str, order: Iterable[int], waiting_count: int, seq: int) -> Line:
        """The staff view. `order`: the waiting numbers in line order (the mirror's)."""
        waiting: list[LineTicket] = []
        for position, number in enumerate(order, start=1):
            if position > MAX_LINE_TICKETS:
                break
            info = self.waiting.get(number)
            name, priority = (None, 0) if info is None else (info.name, info.priority)
            waiting.append(
                LineTicket(ticket_id(self.queue, number), number, name, position, priority)
            )
        called = tuple(
            CalledTicket(ticket_id(self.queue, n), n, c.name, c.counter, iso_ms(c.at_ms))
            for n, c in self._latest_calls()
        )
        return Line(self.queue, state, waiting_count, tuple(waiting), called, seq)

    def board(self, state: str, waiting_count: int, seq: int) -> Board:
        """The public view: numbers and counters, names only when the queue allows them."""
        called = tuple(
            BoardCall(n, c.counter, c.name if self.board_names else None)
            for n, c in self._latest_calls()
        )
        return Board(self.queue, state, waiting_count, called, seq)

    def _latest_calls(self) -> list[tuple[int, Call]]:
        calls = list(self.called.items())
        return calls[-MAX_CALLED_TICKETS:]
