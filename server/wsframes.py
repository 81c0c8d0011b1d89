"""The parts of vqueue's WebSocket server that need no transport.

The `websockets` sans-I/O server protocol (with one fix), the assembly of frames into ASGI
messages, the ASGI scope and the HTTP responses of the opening handshake. `server.wsprotocol`
wires these to uvicorn's transport and to the ASGI app.
"""

from __future__ import annotations

import base64
import codecs
import email.utils
import hashlib
import logging
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from uvicorn._types import WebSocketReceiveEvent, WebSocketScope
from uvicorn.config import Config
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS, Request, Response
from websockets.protocol import CONNECTING, OPEN, Protocol
from websockets.server import ServerProtocol

__all__ = [
    "MessageAssembler",
    "SansIOServer",
    "Upgrade",
    "accept_response",
    "handshake_request",
    "http_response",
    "plain_upgrade",
    "request_upgrade",
    "switching_protocols",
    "websocket_scope",
]

_UTF8Decoder = codecs.getincrementaldecoder("utf-8")


class _QuietLogger(logging.LoggerAdapter[logging.Logger]):
    """Passes on the warnings and errors of `websockets`, nothing below.

    `websockets` logs "connection open" / "connection closed" at INFO for every socket, and
    every frame at DEBUG: noise at 10k sockets. It reads `isEnabledFor(DEBUG)` once per
    connection, so frame logging costs nothing either.
    """

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (overrides the stdlib name)
        return level >= logging.WARNING and self.logger.isEnabledFor(level)


_SANS_IO_LOGGER = _QuietLogger(logging.getLogger(__name__), {})


class SansIOServer(ServerProtocol):
    """`websockets.server.ServerProtocol` that ends a fragmented message cut by a close frame.

    RFC 6455 section 5.4 lets control frames come between the fragments of a message, so a
    close frame there starts an ordinary closing handshake and the unfinished message is dropped.
    `websockets` fails the connection with 1002 instead, which is what Autobahn case 7.1.5
    reports as the wrong close code.
    """

    def __init__(self, max_size_bytes: int | None) -> None:
        # No extensions: permessage-deflate costs tens of KiB per socket (DESIGN invariant 5),
        # so it is never negotiated, whatever uvicorn's --ws-per-message-deflate says.
        super().__init__(extensions=None, max_size=max_size_bytes, logger=_SANS_IO_LOGGER)

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            self.current_size = None
        super().recv_frame(frame)

    def skip_request(self) -> None:
        """Read frames from the start, as if the request had been read (it was parsed already,
        `handshake_request`, or has just been: `forget_request`)."""
        self.parser = Protocol.parse(self)
        next(self.parser)  # runs to its first wait for data, as websockets starts its parsers

    def switched(self, head: bytes) -> None:
        """`send_response()` of a 101 built as bytes (`switching_protocols`): the connection is
        open from here."""
        assert self.state is CONNECTING
        self.writes.append(head)
        self.state = OPEN

    def release(self) -> None:
        """Once the connection is lost: the parser stops for good, and what it holds goes with
        this protocol, by reference counting, instead of waiting for the cyclic collector."""
        self.parser.close()  # its suspended frame holds this protocol
        if self.parser_exc is not None:  # its traceback holds the frame the parser failed in
            self.parser_exc.__traceback__ = None

    def forget_request(self) -> None:
        """Let the handshake request go once it has been read.

        `ServerProtocol.parse()` reads the request, then hands over to `Protocol.parse()` with
        `yield from`, so its suspended frame keeps the request, headers and all, for as long as
        the connection lives: about 2 KiB per idle socket. While nothing has arrived after the
        request (a client must wait for the 101 before it sends a frame), the frame parser waits
        at the top of its loop having taken nothing, and a fresh `Protocol.parse()` in its place
        is the same state without the request. Otherwise the parser is left as it is.
        """
        frames = getattr(self.parser, "gi_yieldfrom", None)  # Protocol.parse(), delegated to
        waiting_on = getattr(frames, "gi_yieldfrom", None)
        # Suspended in `reader.at_eof()` at the top of its loop: no byte of a frame taken yet.
        if getattr(waiting_on, "__name__", None) != "at_eof" or self.events:
            return
        self.skip_request()


# RFC 9110's token and field value, as websockets' own request parser checks them.
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_VALUE = re.compile(rb"[\x09\x20-\x7e\x80-\xff]*")


def handshake_request(
    method: str, target: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> Request | None:
    """The upgrade request uvicorn's HTTP parser has read, as `websockets` would parse it.

    It spares a connect storm the second parse of every request (uvicorn hands the upgrade over
    as bytes rebuilt from what it parsed). None for anything websockets' parser would refuse or
    treat specially (non-ASCII, a bad header, too many or too long, a body): the caller then
    hands over the bytes, and websockets answers as it always did.
    """
    checked = _parseable(method, target, headers)
    if checked is None:
        return None
    parsed = Headers()
    for name, value in checked:
        parsed.set_insecure(name.decode("ascii"), value.decode("iso-8859-1"))
    return Request(target.decode("ascii"), parsed, method)


def _parseable(
    method: str, target: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]] | None:
    """The headers, values stripped of surrounding OWS, if websockets' request parser would
    take the request line and every header as they are (ASCII target, its line and header
    limits, RFC 9110 tokens and values, no body); else None."""
    if len(target) + len(method) + 10 > MAX_LINE_LENGTH or not target.isascii():
        return None
    checked: list[tuple[bytes, bytes]] = []
    for name, raw in headers:
        value = raw.strip(b" \t")
        if (
            len(checked) == MAX_NUM_HEADERS
            or len(name) + len(raw) + 4 > MAX_LINE_LENGTH
            or not _TOKEN.fullmatch(name)
            or not _VALUE.fullmatch(value)
            or name in (b"transfer-encoding", b"content-length")
        ):
            return None
        checked.append((name, value))
    return checked


_KEY = re.compile(rb"[A-Za-z0-9+/]{22}==")  # base64 of 16 bytes, as websockets requires
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3


@dataclass(frozen=True, slots=True)
class Upgrade:
    """A WebSocket upgrade request as uvicorn parsed it, found valid by `plain_upgrade`."""

    target: str  # path and query
    headers: list[tuple[bytes, bytes]]  # names lowercased, values without surrounding OWS
    subprotocols: list[str]
    accept: bytes  # the Sec-WebSocket-Accept of its key


def plain_upgrade(
    method: str, http_version: str, target: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> Upgrade | None:
    """The upgrade request uvicorn has read, if it is a plain valid one, checked as websockets'
    `ServerProtocol.accept` checks it (vqueue's sans-I/O server negotiates no extension and
    leaves the subprotocol and the origin to the app).

    Every socket of a connect storm comes this way: building websockets' request, its checks and
    its response out of header objects cost more than the rest of the handshake. Anything else,
    valid or not (an empty list element, a second Upgrade header, version 8...), is None: it
    goes through `handshake_request` and websockets answers it as it always did.
    """
    if method != "GET" or http_version != "1.1":
        return None
    kept = _parseable(method, target, headers)
    if kept is None:
        return None
    subprotocols: list[str] = []
    key = version = None
    upgrades = origins = 0
    upgrade_asked = False
    for name, value in kept:
        if name == b"connection":
            tokens = _tokens(value)
            if tokens is None:
                return None
            upgrade_asked = upgrade_asked or b"upgrade" in (token.lower() for token in tokens)
        elif name == b"upgrade":
            upgrades += 1
            if value.lower() != b"websocket":
                return None
        elif name == b"sec-websocket-key":
            if key is not None or not _KEY.fullmatch(value):
                return None
            key = value
        elif name == b"sec-websocket-version":
            if version is not None or value != b"13":
                return None
            version = value
        elif name == b"sec-websocket-protocol":
            tokens = _tokens(value)
            if tokens is None:
                return None
            subprotocols.extend(token.decode("ascii") for token in tokens)
        elif name == b"origin":
            origins += 1
    if not upgrade_asked or upgrades != 1 or key is None or version is None or origins > 1:
        return None
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    return Upgrade(target.decode("ascii"), kept, subprotocols, accept)


def _tokens(value: bytes) -> list[bytes] | None:
    """A comma-separated list of tokens; None if any element is not one (or is empty)."""
    tokens = [token.strip(b" \t") for token in value.split(b",")]
    return tokens if all(_TOKEN.fullmatch(token) for token in tokens) else None


def switching_protocols(
    accept: bytes,
    default_headers: Iterable[tuple[bytes, bytes]],
    app_headers: Iterable[tuple[bytes, bytes]],
    subprotocol: str | None,
) -> bytes:
    """The 101 of a `plain_upgrade`, byte for byte what `ServerProtocol.accept`, then
    `accept_response`, then `Response.serialize` make of it (websockets holds header values as
    ISO-8859-1 text and writes them back as such: bytes go out as given, the subprotocol as
    ISO-8859-1)."""
    defaults = list(default_headers)
    lines = [b"HTTP/1.1 101 Switching Protocols\r\n"]
    if not any(name.lower() == b"date" for name, _ in defaults):
        lines.append(b"Date: %s\r\n" % email.utils.formatdate(usegmt=True).encode())
    lines.append(
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n" % accept
    )
    lines.extend(b"%s: %s\r\n" % (name, value) for name, value in defaults)
    lines.extend(b"%s: %s\r\n" % (name, value) for name, value in app_headers)
    if subprotocol:
        lines.append(b"Sec-WebSocket-Protocol: %s\r\n" % subprotocol.encode("latin-1"))
    lines.append(b"\r\n")
    return b"".join(lines)


class MessageAssembler:
    """Turns data frames into `websocket.receive` events.

    Text is checked as UTF-8 fragment by fragment (an incremental decoder), so a bad byte fails
    the message as soon as it arrives rather than after the whole message is buffered.
    `websockets` checks frame order and the size limit before frames get here.
    """

    __slots__ = ("_byte_parts", "_decoder", "_text_parts")

    def __init__(self) -> None:
        self._decoder: codecs.IncrementalDecoder | None = None  # set inside a fragmented text
        self._text_parts: list[str] = []
        self._byte_parts: list[bytes] = []

    def feed(self, frame: Frame) -> WebSocketReceiveEvent | None:
        """Returns the whole message once its last frame arrived.

        Raises UnicodeDecodeError on invalid UTF-8 in a text message.
        """
        if frame.opcode is Opcode.TEXT:
            if frame.fin:  # the common case: one frame, one message
                return {"type": "websocket.receive", "text": bytes(frame.data).decode()}
            self._decoder = _UTF8Decoder()
            self._text_parts = [self._decoder.decode(frame.data)]
            return None
        if frame.opcode is Opcode.BINARY:
            if frame.fin:
                return {"type": "websocket.receive", "bytes": bytes(frame.data)}
            self._byte_parts = [bytes(frame.data)]
            return None
        return self._continue(frame)  # websockets lets only continuation frames through here

    def _continue(self, frame: Frame) -> WebSocketReceiveEvent | None:
        if self._decoder is not None:
            self._text_parts.append(self._decoder.decode(frame.data, frame.fin))
            if not frame.fin:
                return None
            text = "".join(self._text_parts)
            self._decoder, self._text_parts = None, []
            return {"type": "websocket.receive", "text": text}
        self._byte_parts.append(bytes(frame.data))
        if not frame.fin:
            return None
        data = b"".join(self._byte_parts)
        self._byte_parts = []
        return {"type": "websocket.receive", "bytes": data}


def request_upgrade(request: Request) -> Upgrade:
    """What the scope needs of a request websockets has parsed and accepted, as `plain_upgrade`
    gives it (the 101 is websockets' own: no accept key here)."""
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in request.headers.raw_items()
    ]
    subprotocols = [
        token.strip()
        for value in request.headers.get_all("Sec-WebSocket-Protocol")
        for token in value.split(",")
    ]
    return Upgrade(request.path, headers, subprotocols, b"")


def websocket_scope(
    upgrade: Upgrade,
    *,
    config: Config,
    scheme: str,
    server: tuple[str, int | None] | None,
    client: tuple[str, int] | None,
    state: dict[str, Any],
    extensions: dict[str, dict[object, object]],
) -> WebSocketScope:
    """The ASGI scope of a handshake request, as uvicorn's own WebSocket protocols build it."""
    raw_path, _, query = upgrade.target.partition("?")  # checked to be ASCII
    return {
        "type": "websocket",
        "asgi": {"version": config.asgi_version, "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": scheme,
        "server": server,
        "client": client,
        "root_path": config.root_path,
        "path": config.root_path + unquote(raw_path),
        "raw_path": config.root_path.encode("ascii") + raw_path.encode("ascii"),
        "query_string": query.encode("ascii"),
        "headers": upgrade.headers,
        "subprotocols": upgrade.subprotocols,
        "state": state,
        "extensions": extensions,
    }


def _latin1(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    # ASGI headers are bytes; websockets' Headers hold str and encode them as ISO-8859-1.
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]


def accept_response(
    response: Response,
    default_headers: Iterable[tuple[bytes, bytes]],
    app_headers: Iterable[tuple[bytes, bytes]],
    subprotocol: str | None,
) -> None:
    """Completes the 101 response built by `ServerProtocol.accept` with the app's choices."""
    defaults = _latin1(default_headers)
    headers = response.headers
    if any(name.lower() == "date" for name, _ in defaults):
        del headers["Date"]  # uvicorn's cached Date header replaces the one websockets made
    for name, value in defaults + _latin1(app_headers):
        headers[name] = value  # websockets' Headers append: repeated names stay repeated
    if subprotocol:
        headers["Sec-WebSocket-Protocol"] = subprotocol


def http_response(
    status: int,
    default_headers: Iterable[tuple[bytes, bytes]],
    headers: Iterable[tuple[bytes, bytes]] = (),
    body: bytes = b"",
) -> Response:
    """An HTTP response that refuses the upgrade; the connection closes after it."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:  # a status code Python has no name for
        phrase = ""
    response_headers = Headers(_latin1(headers))
    for name, value in _latin1(default_headers):
        if name not in response_headers:
            response_headers[name] = value
    for name, value in (
        ("Connection", "close"),
        ("Content-Length", str(len(body))),
        ("Content-Type", "text/plain; charset=utf-8"),
    ):
        if name not in response_headers:
            response_headers[name] = value
    return Response(status, phrase, response_headers, body)


# Headers of short frames (every position frame is one), built once: index by payload length.
SHORT_TEXT = tuple(bytes((0x81, n)) for n in range(126))
SHORT_BINARY = tuple(bytes((0x82, n)) for n in range(126))


def frame_header(length: int, text: bool) -> bytes:
    """The header of one unfragmented, unmasked server frame carrying `length` bytes."""
    opcode = 0x81 if text else 0x82  # FIN + text / binary
    if length < 126:
        return SHORT_TEXT[length] if text else SHORT_BINARY[length]
    if length < 65536:
        return struct.pack("!BBH", opcode, 126, length)
    return struct.pack("!BBQ", opcode, 127, length)
