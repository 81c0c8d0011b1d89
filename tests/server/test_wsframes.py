from __future__ import annotations

import gc
import weakref

import pytest
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.streams import StreamReader

from server.wsframes import (
    SansIOServer,
    accept_response,
    frame_header,
    handshake_request,
    plain_upgrade,
    request_upgrade,
    switching_protocols,
)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
@pytest.mark.parametrize("text", [True, False])
def test_frame_header_is_what_a_client_parses(size: int, text: bool) -> None:
    payload = b"a" * size
    reader = StreamReader()
    reader.feed_data(frame_header(size, text) + payload)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
        raise AssertionError("the parser wanted more bytes than the frame has")
    except StopIteration as done:
        frame = done.value
    assert isinstance(frame, Frame)
    assert frame.opcode is (Opcode.TEXT if text else Opcode.BINARY)
    assert frame.fin and frame.data == payload
    assert len(reader.buffer) == 0  # exactly one frame, nothing left over


HANDSHAKE = (
    b"GET /v1/ws HTTP/1.1\r\nHost: example.org\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"User-Agent: test\r\n\r\n"
)


def masked_text(payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


def test_the_handshake_request_is_let_go_and_frames_still_parse() -> None:
    conn = SansIOServer(max_size_bytes=1024)
    conn.receive_data(HANDSHAKE)
    [request] = conn.events_received()
    assert isinstance(request, Request)
    conn.send_response(conn.accept(request))
    conn.forget_request()
    held = weakref.ref(request)
    del request
    gc.collect()
    assert held() is None  # the parser's frame no longer keeps it (nor its headers)
    conn.receive_data(masked_text(b'{"type":"leave"}'))
    [frame] = conn.events_received()
    assert isinstance(frame, Frame) and frame.data == b'{"type":"leave"}'


@pytest.mark.parametrize("early", [1, 2, 3, 6])
def test_a_frame_begun_before_the_101_is_not_lost(early: int) -> None:
    conn = SansIOServer(max_size_bytes=1024)
    conn.receive_data(HANDSHAKE + masked_text(b"early")[:early])  # against RFC 6455, but seen
    [request] = conn.events_received()
    conn.send_response(conn.accept(request))
    conn.forget_request()  # must not throw away the bytes the parser has taken or holds
    conn.receive_data(masked_text(b"early")[early:])
    [frame] = conn.events_received()
    assert frame.data == b"early"


def head_of(raw: bytes) -> tuple[str, bytes, list[tuple[bytes, bytes]]]:
    """Method, target and headers as uvicorn's parser hands them over (names lowercased)."""
    line, *lines = raw.split(b"\r\n\r\n")[0].split(b"\r\n")
    method, target, _ = line.split(b" ")
    headers = [tuple(h.split(b":", 1)) for h in lines]
    return method.decode(), target, [(n.lower(), v.strip(b" \t")) for n, v in headers]


def parsed_by_websockets(raw: bytes) -> Request:
    reader = StreamReader()
    reader.feed_data(raw)
    parser = Request.parse(reader.read_line)
    try:
        next(parser)
    except StopIteration as done:
        assert isinstance(done.value, Request)
        return done.value
    raise AssertionError("websockets wanted more of the request")


def with_headers(*lines: bytes, target: bytes = b"/v1/ws") -> bytes:
    head = HANDSHAKE.replace(b"GET /v1/ws ", b"GET " + target + b" ")
    return head[:-2] + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


@pytest.mark.parametrize(
    "raw",
    [
        HANDSHAKE,
        with_headers(b"Origin: https://venue.example", b"Sec-WebSocket-Protocol: a, b"),
        with_headers(b"Cookie: x=1; y=2", target=b"/v1/queues/demo/ws?ticket=abc&format=json"),
        with_headers(b"X-Note: caf\xe9", b"X-Empty:", b"X-Tab: \tv\t"),  # obs-text, empty, OWS
        with_headers(b"X-Twice: 1", b"X-Twice: 2"),
    ],
    ids=["plain", "origin-subprotocols", "query-cookie", "odd-values", "repeated"],
)
def test_a_handshake_request_taken_from_uvicorn_is_what_websockets_parses(raw: bytes) -> None:
    ours = handshake_request(*head_of(raw))
    theirs = parsed_by_websockets(raw)
    assert ours is not None
    assert (ours.method, ours.path, ours.protocol) == (theirs.method, theirs.path, theirs.protocol)
    lowered = [(name.lower(), value) for name, value in theirs.headers.raw_items()]
    assert list(ours.headers.raw_items()) == lowered
    for name in ("sec-websocket-key", "Sec-WebSocket-Protocol", "X-TWICE", "origin"):
        assert ours.headers.get_all(name) == theirs.headers.get_all(name)


@pytest.mark.parametrize(
    "head",
    [
        ("GET", "/v1/ws/caf\u00e9".encode(), []),  # non-ASCII target: websockets refuses it
        ("GET", b"/v1/ws", [(b"x-bad", b"a\x01b")]),  # a control character in a value
        ("GET", b"/v1/ws", [(b"bad name", b"v")]),
        ("GET", b"/v1/ws", [(b"transfer-encoding", b"chunked")]),
        ("GET", b"/v1/ws", [(b"content-length", b"5")]),
        ("GET", b"/v1/ws", [(b"x-n", b"v")] * 129),  # websockets takes 128
        ("GET", b"/v1/ws", [(b"x-long", b"v" * 8_190)]),  # over its 8 KiB line
        ("GET", b"/" + b"a" * 8_190, []),
    ],
    ids=["non-ascii", "control", "bad-name", "chunked", "body", "129", "long-line", "long-target"],
)
def test_a_request_websockets_should_judge_is_left_to_its_parser(
    head: tuple[str, bytes, list[tuple[bytes, bytes]]],
) -> None:
    assert handshake_request(*head) is None
    assert plain_upgrade(head[0], "1.1", head[1], head[2]) is None  # the same rules, shared


# A browser's upgrade, as Chromium sends it (extensions offered, Connection with two tokens).
BROWSER = with_headers(
    b"Origin: https://venue.example",
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    b"Sec-WebSocket-Protocol: vq1.json, vq1.msgpack",
).replace(b"Connection: Upgrade", b"Connection: keep-alive, Upgrade")
DEFAULTS = [(b"date", b"Thu, 03 Dec 2026 08:00:00 GMT"), (b"server", b"vqueue")]
VALID = [
    HANDSHAKE,
    BROWSER,
    with_headers(b"Cookie: x=1; y=2", target=b"/v1/queues/demo/ws?ticket=abc&format=json"),
    with_headers(b"X-Note: caf\xe9", b"X-Empty:", b"X-Tab: \tv\t"),
    with_headers(b"X-Twice: 1", b"X-Twice: 2"),
    HANDSHAKE.replace(b"Upgrade: websocket", b"Upgrade: WebSocket"),
]
VALID_IDS = ["plain", "browser", "query-cookie", "odd-values", "repeated", "upgrade-case"]


def websockets_101(raw: bytes, app_headers: list[tuple[bytes, bytes]], sub: str | None) -> bytes:
    """The 101 the websockets path sends for `raw`: accept, then accept_response."""
    request = parsed_by_websockets(raw)
    response = SansIOServer(max_size_bytes=None).accept(request)
    assert response.status_code == 101
    accept_response(response, DEFAULTS, app_headers, sub)
    return response.serialize()


@pytest.mark.parametrize("raw", VALID, ids=VALID_IDS)
def test_a_plain_upgrade_gets_the_scope_and_the_101_websockets_would_give(raw: bytes) -> None:
    method, target, headers = head_of(raw)
    ours = plain_upgrade(method, "1.1", target, headers)
    assert ours is not None
    theirs = request_upgrade(parsed_by_websockets(raw))
    assert (ours.target, ours.headers, ours.subprotocols) == (
        theirs.target,
        theirs.headers,
        theirs.subprotocols,
    )
    app = [(b"x-request-id", b"0123abcd")]
    for sub in (None, "vq1.json", "caf\u00e9"):  # an app may name any subprotocol
        mine = switching_protocols(ours.accept, DEFAULTS, app, sub)
        assert mine == websockets_101(raw, app, sub)


def test_the_accept_key_is_rfc_6455s_example_and_a_101_without_a_default_date_gets_one() -> None:
    method, target, headers = head_of(HANDSHAKE)
    upgrade = plain_upgrade(method, "1.1", target, headers)
    assert upgrade is not None
    assert upgrade.accept == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 section 1.3
    head = switching_protocols(upgrade.accept, [(b"server", b"vqueue")], [], None)
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
    assert lines[1].startswith(b"Date: ") and lines[1].endswith(b" GMT")
    assert head.endswith(b"server: vqueue\r\n\r\n")


def test_the_101_built_as_bytes_opens_the_sans_io_connection() -> None:
    conn = SansIOServer(max_size_bytes=1024)
    conn.skip_request()
    conn.switched(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    assert conn.data_to_send() == [b"HTTP/1.1 101 Switching Protocols\r\n\r\n"]
    conn.receive_data(masked_text(b"hello"))
    [frame] = conn.events_received()
    assert frame.data == b"hello"
    conn.send_text(b"back")  # only an open connection sends frames
    assert conn.data_to_send() == [b"\x81\x04back"]


INVALID = {
    "version-8": HANDSHAKE.replace(b"Version: 13", b"Version: 8"),
    "short-key": HANDSHAKE.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"dGhlIHNhbXBsZQ=="),
    "key-not-base64": HANDSHAKE.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"dGhlIHNhbXBsZSBub25jZ!="),
    "two-keys": with_headers(b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="),
    "two-versions": with_headers(b"Sec-WebSocket-Version: 13"),
    "no-key": HANDSHAKE.replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""),
    "no-version": HANDSHAKE.replace(b"Sec-WebSocket-Version: 13\r\n", b""),
    "upgrade-h2c": HANDSHAKE.replace(b"Upgrade: websocket", b"Upgrade: h2c"),
    "two-upgrades": with_headers(b"Upgrade: websocket"),
    "connection-close": HANDSHAKE.replace(b"Connection: Upgrade", b"Connection: close"),
    "two-origins": with_headers(b"Origin: https://a.example", b"Origin: https://b.example"),
    "bad-subprotocol": with_headers(b"Sec-WebSocket-Protocol: vq1.json, a b"),
    "post": HANDSHAKE.replace(b"GET ", b"POST "),
}


@pytest.mark.parametrize("raw", INVALID.values(), ids=INVALID.keys())
def test_what_websockets_refuses_is_never_a_plain_upgrade(raw: bytes) -> None:
    method, target, headers = head_of(raw)
    refused = SansIOServer(max_size_bytes=None).accept(parsed_by_websockets(raw))
    assert refused.status_code != 101
    assert plain_upgrade(method, "1.1", target, headers) is None


def test_http_1_0_and_empty_list_elements_are_left_to_websockets() -> None:
    method, target, headers = head_of(HANDSHAKE)
    assert plain_upgrade(method, "1.0", target, headers) is None
    odd = head_of(HANDSHAKE.replace(b"Connection: Upgrade", b"Connection: , Upgrade"))
    assert plain_upgrade(odd[0], "1.1", odd[1], odd[2]) is None
    assert handshake_request(*odd) is not None  # websockets judges it instead (and accepts it)
