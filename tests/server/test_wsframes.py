from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from server.wsframes import frame_header


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
