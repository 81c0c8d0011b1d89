"""The per-connection state machine of a watcher's WebSocket, without I/O.

The server feeds it what arrived (`receive`) and asks it what to send (`outgoing`); it decides
which client messages are acceptable in which state and keeps `seq` from ever going backwards on
one connection, so a stale frame that loses a race with a newer one is simply not sent.

A connection watches one thing, chosen by its first message: a ticket (`watch`, `Role.TICKET`),
a queue's whole line for staff (`watch_queue`, `Role.LINE`) or a queue's display board
(`watch_board`, `Role.BOARD`). Only a ticket watcher may send `leave`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from protocol.closecodes import POLICY_VIOLATION
from protocol.codec import Codec
from protocol.errors import MalformedMessage, ProtocolError
from protocol.messages import (
    ClientMessage,
    Error,
    Leave,
    Position,
    ServerMessage,
    Watch,
    WatchBoard,
    WatchQueue,
)

WATCH_TIMEOUT_S = 10.0


class State(enum.Enum):
    AWAITING_WATCH = "awaiting_watch"
    WATCHING = "watching"
    CLOSED = "closed"


# Enum members are slow to look up on Python 3.11 (~0.1 us each): the per-frame path compares
# against this module constant instead.
_CLOSED = State.CLOSED


class Role(enum.Enum):
    TICKET = "ticket"  # `watch`: one customer's ticket
    LINE = "line"  # `watch_queue`: the staff view of a queue
    BOARD = "board"  # `watch_board`: the public display board of a queue


@dataclass(frozen=True, slots=True)
class Reject:
    """Send `error`, then close with `close_code`."""

    error: Error
    close_code: int


class Connection:
    __slots__ = (
        "_last_event",
        "_shown_eta",
        "_shown_position",
        "_shown_waiting",
        "codec",
        "last_seq",
        "peer",
        "queue",
        "role",
        "state",
        "ticket_id",
    )

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.state = State.AWAITING_WATCH
        self.ticket_id: str | None = None
        self.role: Role | None = None
        self.queue: str | None = None
        self.last_seq = -1
        # Whom a driver knows this connection as (the fan-out's watcher): set by the queue's
        # watch for a ticket's lone watcher, so that a flush fetches one object, not two.
        self.peer: Any = None
        # The last position sent, as plain fields: a tuple per frame would be garbage the
        # collector has to chase on the fan-out's hottest path.
        self._shown_position = 0
        self._shown_waiting = 0
        self._shown_eta: int | None = None
        self._last_event: tuple[type, int] | None = None

    # -- input ----------------------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> ClientMessage | Reject:
        """Decode one client frame and check it is allowed now; a Reject ends the connection."""
        try:
            message = self.codec.decode_client(frame)
        except ProtocolError as exc:
            return self._reject(exc)
        opening = isinstance(message, Watch | WatchQueue | WatchBoard)
        if self.state is State.AWAITING_WATCH and not opening:
            return self._reject(
                MalformedMessage(
                    "the first message must be 'watch', 'watch_queue' or 'watch_board'"
                )
            )
        if self.state is State.WATCHING and opening:
            return self._reject(MalformedMessage("this connection already watches something"))
        if self.state is State.WATCHING and self.role is not Role.TICKET:
            return self._reject(MalformedMessage("'leave' needs a ticket watch"))
        if self.state is State.CLOSED:
            return self._reject(MalformedMessage("connection is closing"))
        return message

    def watch_timed_out(self) -> Reject:
        return self._reject(MalformedMessage("no 'watch' message within 10 s"))

    def bad_token(self) -> Reject:
        return self.refuse("unauthorized", "ticket token is missing, malformed or unknown")

    def refuse(self, code: str, message: str) -> Reject:
        """A well-formed watch the server will not serve (wrong key, unknown queue): 1008."""
        self.state = State.CLOSED
        return Reject(Error(code, message), POLICY_VIOLATION)

    def watching(self, ticket_id: str) -> None:
        self.state = State.WATCHING
        self.role = Role.TICKET
        self.ticket_id = ticket_id

    def watching_queue(self, queue: str, role: Role) -> None:
        """Staff (`Role.LINE`) or board (`Role.BOARD`) view of `queue`."""
        self.state = State.WATCHING
        self.role = role
        self.queue = queue

    def closed(self) -> None:
        self.state = State.CLOSED

    # -- output ---------------------------------------------------------------------------------

    def outgoing(self, message: ServerMessage) -> bool:
        """Whether `message` should be sent: never an older seq, never a repeated position."""
        if self.state is State.CLOSED:
            return False
        if isinstance(message, Error):
            return True
        if isinstance(message, Position):
            return self.allow_position(
                message.position, message.waiting, message.eta_s, message.seq
            )
        if message.seq < self.last_seq:
            return False
        # The same event can arrive twice (a node's notice and a direct answer, or a resync):
        # send it once.
        event = (type(message), message.seq)
        if event == self._last_event:
            return False
        self._last_event = event
        self._shown_position = 0
        self.last_seq = message.seq
        return True

    def allow_position(self, position: int, waiting: int, eta_s: int | None, seq: int) -> bool:
        """`outgoing()` for a position, from its fields (the fan-out's hot path)."""
        if self.state is _CLOSED or seq < self.last_seq:
            return False
        if (
            seq == self.last_seq
            and position == self._shown_position
            and waiting == self._shown_waiting
            and eta_s == self._shown_eta
        ):
            return False
        self._shown_position, self._shown_waiting, self._shown_eta = position, waiting, eta_s
        self.last_seq = seq
        return True

    def _reject(self, exc: ProtocolError) -> Reject:
        self.state = State.CLOSED
        return Reject(Error(exc.code, exc.message), exc.close_code)


__all__ = [
    "WATCH_TIMEOUT_S",
    "Connection",
    "Leave",
    "Reject",
    "Role",
    "State",
    "Watch",
    "WatchBoard",
    "WatchQueue",
]
