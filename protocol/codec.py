"""Encoding of messages for the two subprotocols, `vq1.json` (text) and `vq1.msgpack` (binary).

The codec is chosen once per connection by `negotiate()`; both carry the same maps.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import msgpack
import orjson

from protocol.errors import InvalidUtf8, MalformedMessage, MessageTooBig, UnsupportedFrame
from protocol.messages import (
    MAX_MESSAGE_BYTES,
    ClientMessage,
    ServerMessage,
    client_message,
    server_message,
)

JSON_SUBPROTOCOL = "vq1.json"
MSGPACK_SUBPROTOCOL = "vq1.msgpack"


class Codec(enum.Enum):
    JSON = JSON_SUBPROTOCOL
    MSGPACK = MSGPACK_SUBPROTOCOL

    @property
    def is_text(self) -> bool:
        return self is Codec.JSON

    def dumps(self, data: dict[str, Any]) -> bytes:
        """Encode one map. JSON is returned as UTF-8 bytes, to be sent as a text frame."""
        if self is Codec.JSON:
            return orjson.dumps(data)
        packed: bytes = msgpack.packb(data, use_bin_type=True)
        return packed

    def loads(self, frame: str | bytes) -> object:
        """Decode one frame as it came off the socket; raise the contract's protocol errors."""
        if self is Codec.JSON:
            if isinstance(frame, bytes):
                raise UnsupportedFrame("binary frames are not accepted on vq1.json")
            if len(frame) > MAX_MESSAGE_BYTES:  # characters <= bytes: a cheap first bound
                raise MessageTooBig("message over 64 KiB")
            try:
                encoded = frame.encode()
            except UnicodeEncodeError:  # lone surrogates cannot have come from valid UTF-8
                raise InvalidUtf8("text frame is not valid UTF-8") from None
            if len(encoded) > MAX_MESSAGE_BYTES:
                raise MessageTooBig("message over 64 KiB")
            try:
                return orjson.loads(encoded)
            except orjson.JSONDecodeError:
                raise MalformedMessage("message is not valid JSON") from None
        if isinstance(frame, str):
            frame = frame.encode(errors="surrogateescape")
        if len(frame) > MAX_MESSAGE_BYTES:
            raise MessageTooBig("message over 64 KiB")
        try:
            return msgpack.unpackb(frame, raw=False, strict_map_key=True)
        except (ValueError, msgpack.UnpackException, TypeError):
            raise MalformedMessage("message is not valid msgpack") from None

    def encode(self, message: ServerMessage | ClientMessage) -> bytes:
        return self.dumps(message.to_wire())

    def decode_client(self, frame: str | bytes) -> ClientMessage:
        return client_message(self.loads(frame))

    def decode_server(self, frame: str | bytes) -> ServerMessage:
        return server_message(self.loads(frame))


def position_json(
    ticket_id: str, position: int, waiting: int, eta_s: int | None, seq: int
) -> bytes:
    """`Codec.JSON.encode(Position(...))`, byte for byte, without building the message.

    Ticket ids are `[a-z0-9.-]` only, so nothing needs escaping.
    """
    eta = "null" if eta_s is None else str(eta_s)
    return (
        f'{{"type":"position","ticket_id":"{ticket_id}","position":{position},'
        f'"waiting":{waiting},"eta_s":{eta},"seq":{seq}}}'
    ).encode()


class PositionsJson:
    """`position_json()` for the tickets of one queue in one flush (same `waiting` and `seq`).

    The hot path of the fan-out writes one of these per moved watcher: a bytes template with the
    shared parts filled in once and one `%` per frame is several times cheaper than a
    dataclass, a dict and orjson, and about 40% cheaper than an f-string and `.encode()`
    (BENCHMARKS.md, Profile).
    """

    __slots__ = ("_known", "_unknown")

    def __init__(self, queue: str, waiting: int, seq: int) -> None:
        # A slug has no "%", but the template must not depend on that.
        head = '{"type":"position","ticket_id":"' + queue.replace("%", "%%") + "."
        tail = f',"seq":{seq}}}'
        self._known = f'{head}%d","position":%d,"waiting":{waiting},"eta_s":%d{tail}'.encode()
        self._unknown = f'{head}%d","position":%d,"waiting":{waiting},"eta_s":null{tail}'.encode()

    def encode(self, number: int, position: int, eta_s: int | None) -> bytes:
        if eta_s is None:
            return self._unknown % (number, position)
        return self._known % (number, position, eta_s)


def negotiate(offered: Iterable[str]) -> tuple[Codec, str | None]:
    """Pick the codec for the subprotocols a client offered, in the client's order.

    Returns the codec and the subprotocol to echo in the handshake (None when the client asked
    for none of ours: it then gets JSON, the default).
    """
    for raw in offered:
        name = raw.strip()
        if name == JSON_SUBPROTOCOL:
            return Codec.JSON, name
        if name == MSGPACK_SUBPROTOCOL:
            return Codec.MSGPACK, name
    return Codec.JSON, None
