"""The messages of the WebSocket protocol (docs/protocol.md, "WebSocket"), as frozen dataclasses.

`to_wire()` gives the map that goes on the wire; `client_message()` and `server_message()` turn
a decoded map back into a message, raising `MalformedMessage` for anything else. The staff and
board views (`line`, `board`) live in `protocol.views`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.errors import MalformedMessage
from protocol.names import is_slug
from protocol.views import Board, Line, board_message, line_message

MAX_MESSAGE_BYTES = 64 * 1024
MAX_TOKEN_CHARS = 1024
MAX_KEY_CHARS = 256
QUEUE_STATES = ("open", "paused", "closed")


# -- client -> server ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Watch:
    token: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": "watch", "token": self.token}


@dataclass(frozen=True, slots=True)
class Leave:
    def to_wire(self) -> dict[str, Any]:
        return {"type": "leave"}


@dataclass(frozen=True, slots=True)
class WatchQueue:
    """Staff: follow the whole line of `queue` (`line` frames); `key` is a staff key."""

    queue: str
    key: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": "watch_queue", "queue": self.queue, "key": self.key}


@dataclass(frozen=True, slots=True)
class WatchBoard:
    """Public: follow what a display board shows of `queue` (`board` frames)."""

    queue: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": "watch_board", "queue": self.queue}


ClientMessage = Watch | Leave | WatchQueue | WatchBoard
WatchRequest = Watch | WatchQueue | WatchBoard  # what may open a connection


def client_message(data: object) -> ClientMessage:
    """Validate a decoded client map; anything unknown or mistyped is `MalformedMessage`."""
    if not isinstance(data, dict):
        raise MalformedMessage("a message must be a JSON object")
    kind = data.get("type")
    if kind == "watch":
        token = data.get("token")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise MalformedMessage("watch needs a string 'token'")
        return Watch(token)
    if kind == "leave":
        return Leave()
    if kind == "watch_queue":
        key = data.get("key")
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
            raise MalformedMessage("watch_queue needs a string 'key' (a staff key)")
        return WatchQueue(_queue_slug(data, kind), key)
    if kind == "watch_board":
        return WatchBoard(_queue_slug(data, kind))
    if not isinstance(kind, str):
        raise MalformedMessage("a message needs a string 'type'")
    raise MalformedMessage(f"unknown message type {kind[:40]!r}")


def _queue_slug(data: dict[Any, Any], kind: str) -> str:
    queue = data.get("queue")
    if not isinstance(queue, str) or not is_slug(queue):
        raise MalformedMessage(f"{kind} needs a queue slug in 'queue'")
    return queue


# -- server -> client ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Position:
    ticket_id: str
    position: int
    waiting: int
    eta_s: int | None
    seq: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "position",
            "ticket_id": self.ticket_id,
            "position": self.position,
            "waiting": self.waiting,
            "eta_s": self.eta_s,
            "seq": self.seq,
        }


@dataclass(frozen=True, slots=True)
class Called:
    ticket_id: str
    counter: str | None
    seq: int
    recall: bool = False  # staff called this ticket again; only then is `recall` on the wire

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "type": "called",
            "ticket_id": self.ticket_id,
            "counter": self.counter,
            "seq": self.seq,
        }
        if self.recall:
            wire["recall"] = True
        return wire


@dataclass(frozen=True, slots=True)
class Status:
    ticket_id: str
    status: str
    seq: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "status",
            "ticket_id": self.ticket_id,
            "status": self.status,
            "seq": self.seq,
        }


@dataclass(frozen=True, slots=True)
class QueueState:
    """The queue's state (`open`, `paused`, `closed`): at watch and on every change."""

    queue: str
    state: str
    seq: int

    def to_wire(self) -> dict[str, Any]:
        return {"type": "queue", "queue": self.queue, "state": self.state, "seq": self.seq}


@dataclass(frozen=True, slots=True)
class Moved:
    """The ticket was transferred: watch `to_ticket_id` with `token` instead (then close 1000)."""

    ticket_id: str
    to_ticket_id: str
    to_queue: str
    token: str
    seq: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "moved",
            "ticket_id": self.ticket_id,
            "to_ticket_id": self.to_ticket_id,
            "to_queue": self.to_queue,
            "token": self.token,
            "seq": self.seq,
        }


@dataclass(frozen=True, slots=True)
class Error:
    code: str
    message: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": self.message}


ServerMessage = Position | Called | Status | QueueState | Moved | Line | Board | Error


def server_message(data: object) -> ServerMessage:
    """Parse a decoded server map (used by clients: the load tester and the tests)."""
    if not isinstance(data, dict):
        raise MalformedMessage("a message must be a map")
    try:
        kind = data["type"]
        if kind == "position":
            eta = data["eta_s"]
            return Position(
                ticket_id=str(data["ticket_id"]),
                position=int(data["position"]),
                waiting=int(data["waiting"]),
                eta_s=None if eta is None else int(eta),
                seq=int(data["seq"]),
            )
        if kind == "called":
            counter = data["counter"]
            return Called(
                str(data["ticket_id"]),
                None if counter is None else str(counter),
                int(data["seq"]),
                recall=data.get("recall") is True,
            )
        if kind == "status":
            return Status(str(data["ticket_id"]), str(data["status"]), int(data["seq"]))
        if kind == "queue":
            return QueueState(str(data["queue"]), str(data["state"]), int(data["seq"]))
        if kind == "moved":
            return Moved(
                str(data["ticket_id"]),
                str(data["to_ticket_id"]),
                str(data["to_queue"]),
                str(data["token"]),
                int(data["seq"]),
            )
        if kind == "line":
            return line_message(data)
        if kind == "board":
            return board_message(data)
        if kind == "error":
            return Error(str(data["code"]), str(data["message"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedMessage(f"bad {data.get('type')!r} message: {exc}") from None
    raise MalformedMessage(f"unknown message type {str(kind)[:40]!r}")
