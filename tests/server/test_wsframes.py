from __future__ import annotations

import gc
import weakref

import pytest
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.streams import StreamReader

from server.wsframes import SansIOServer, frame_header


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
