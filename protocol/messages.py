"""The messages of the WebSocket contract (docs/protocol.md), as frozen dataclasses.

`to_wire()` gives the map that goes on the wire; `client_message()` and `server_message()` turn
a decoded map back into a message, raising `MalformedMessage` for anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.errors import MalformedMessage

MAX_MESSAGE_BYTES = 64 * 1024
MAX_TOKEN_CHARS = 1024


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


ClientMessage = Watch | Leave


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
    if not isinstance(kind, str):
        raise MalformedMessage("a message needs a string 'type'")
    raise MalformedMessage(f"unknown message type {kind[:40]!r}")


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

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "called",
            "ticket_id": self.ticket_id,
            "counter": self.counter,
            "seq": self.seq,
        }


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
class Error:
    code: str
    message: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": self.message}


ServerMessage = Position | Called | Status | Error


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
                str(data["ticket_id"]), None if counter is None else str(counter), int(data["seq"])
            )
        if kind == "status":
            return Status(str(data["ticket_id"]), str(data["status"]), int(data["seq"]))
        if kind == "error":
            return Error(str(data["code"]), str(data["message"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedMessage(f"bad {data.get('type')!r} message: {exc}") from None
    raise MalformedMessage(f"unknown message type {str(kind)[:40]!r}")
