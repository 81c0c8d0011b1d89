"""The staff and board views of a queue: the `line` and `board` server messages.

A staff console that sends `watch_queue` gets `line` frames (the waiting line, first
`MAX_LINE_TICKETS` in order, and the called tickets); a display board that sends `watch_board`
gets `board` frames (who is called to which counter, names only when the queue allows it).
Both are sent at once and again after every change, coalesced like positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_LINE_TICKETS = 500  # the `waiting` list of a `line` frame holds the first 500 in order
MAX_CALLED_TICKETS = 500  # and its `called` list the 500 latest calls


@dataclass(frozen=True, slots=True)
class LineTicket:
    ticket_id: str
    number: int
    name: str | None
    position: int
    priority: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "number": self.number,
            "name": self.name,
            "position": self.position,
            "priority": self.priority,
        }


@dataclass(frozen=True, slots=True)
class CalledTicket:
    ticket_id: str
    number: int
    name: str | None
    counter: str | None
    at: str  # ISO 8601 UTC with milliseconds, as in the events API

    def to_wire(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "number": self.number,
            "name": self.name,
            "counter": self.counter,
            "at": self.at,
        }


@dataclass(frozen=True, slots=True)
class Line:
    queue: str
    state: str
    waiting_count: int
    waiting: tuple[LineTicket, ...]
    called: tuple[CalledTicket, ...]
    seq: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "line",
            "queue": self.queue,
            "state": self.state,
            "waiting_count": self.waiting_count,
            "waiting": [t.to_wire() for t in self.waiting],
            "called": [t.to_wire() for t in self.called],
            "seq": self.seq,
        }


@dataclass(frozen=True, slots=True)
class BoardCall:
    number: int
    counter: str | None
    name: str | None = None  # only set when the queue's `board_names` allows it

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"number": self.number, "counter": self.counter}
        if self.name is not None:
            wire["name"] = self.name
        return wire


@dataclass(frozen=True, slots=True)
class Board:
    queue: str
    state: str
    waiting_count: int
    called: tuple[BoardCall, ...]
    seq: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "board",
            "queue": self.queue,
            "state": self.state,
            "waiting_count": self.waiting_count,
            "called": [c.to_wire() for c in self.called],
            "seq": self.seq,
        }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def line_message(data: dict[str, Any]) -> Line:
    """Parse a decoded `line` map (clients); KeyError / TypeError / ValueError when malformed."""
    waiting = tuple(
        LineTicket(
            str(t["ticket_id"]),
            int(t["number"]),
            _text(t["name"]),
            int(t["position"]),
            int(t["priority"]),
        )
        for t in data["waiting"]
    )
    called = tuple(
        CalledTicket(
            str(t["ticket_id"]),
            int(t["number"]),
            _text(t["name"]),
            _text(t["counter"]),
            str(t["at"]),
        )
        for t in data["called"]
    )
    return Line(
        str(data["queue"]),
        str(data["state"]),
        int(data["waiting_count"]),
        waiting,
        called,
        int(data["seq"]),
    )


def board_message(data: dict[str, Any]) -> Board:
    """Parse a decoded `board` map (clients); KeyError / TypeError / ValueError when malformed."""
    called = tuple(
        BoardCall(int(c["number"]), _text(c["counter"]), _text(c["name"]) if "name" in c else None)
        for c in data["called"]
    )
    return Board(
        str(data["queue"]), str(data["state"]), int(data["waiting_count"]), called, int(data["seq"])
    )
