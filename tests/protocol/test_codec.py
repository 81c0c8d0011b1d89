from __future__ import annotations

import msgpack
import pytest

from protocol.codec import Codec, PositionsJson, negotiate, position_json
from protocol.errors import InvalidUtf8, MalformedMessage, MessageTooBig, UnsupportedFrame
from protocol.messages import Called, Error, Leave, Position, Status, Watch


@pytest.mark.parametrize(
    ("offered", "codec", "chosen"),
    [
        ([], Codec.JSON, None),
        (["vq1.json"], Codec.JSON, "vq1.json"),
        (["vq1.msgpack"], Codec.MSGPACK, "vq1.msgpack"),
        (["vq1.msgpack", "vq1.json"], Codec.MSGPACK, "vq1.msgpack"),
        (["chat", "vq1.json"], Codec.JSON, "vq1.json"),
        (["chat"], Codec.JSON, None),
    ],
)
def test_negotiate(offered: list[str], codec: Codec, chosen: str | None) -> None:
    assert negotiate(offered) == (codec, chosen)


@pytest.mark.parametrize("codec", list(Codec))
@pytest.mark.parametrize(
    "message",
    [
        Position("q.1", 3, 10, 120, 7),
        Position("q.1", 1, 1, None, 8),
        Called("q.1", "desk 3", 9),
        Called("q.1", None, 9),
        Status("q.1", "served", 10),
    ],
)
def test_server_messages_round_trip(codec: Codec, message: Position | Called | Status) -> None:
    frame = codec.encode(message)
    wire = frame.decode() if codec.is_text else frame
    assert codec.decode_server(wire) == message


def test_error_round_trips() -> None:
    assert Codec.JSON.decode_server(Codec.JSON.encode(Error("x", "y")).decode()) == Error("x", "y")


@pytest.mark.parametrize("codec", list(Codec))
def test_client_messages(codec: Codec) -> None:
    for message in (Watch("tok"), Leave()):
        frame = codec.encode(message)
        assert codec.decode_client(frame.decode() if codec.is_text else frame) == message


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("not json", MalformedMessage),
        ("[1, 2]", MalformedMessage),
        ('{"type": "dance"}', MalformedMessage),
        ('{"type": 5}', MalformedMessage),
        ('{"token": "x"}', MalformedMessage),
        ('{"type": "watch"}', MalformedMessage),
        ('{"type": "watch", "token": 12}', MalformedMessage),
        ('{"type": "watch", "token": ""}', MalformedMessage),
        (b'{"type": "leave"}', UnsupportedFrame),
        ("\udcff", InvalidUtf8),
        ('{"type": "watch", "token": "' + "a" * 70_000 + '"}', MessageTooBig),
    ],
)
def test_json_rejects(frame: str | bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        Codec.JSON.decode_client(frame)


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (b"\xc1", MalformedMessage),
        (msgpack.packb([1, 2]), MalformedMessage),
        (msgpack.packb({"type": "watch", "token": 3}), MalformedMessage),
        (msgpack.packb({1: 2}), MalformedMessage),
        (b"\x00" * 70_000, MessageTooBig),
    ],
)
def test_msgpack_rejects(frame: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        Codec.MSGPACK.decode_client(frame)


def test_close_codes_follow_the_contract() -> None:
    assert MalformedMessage("x").close_code == 1008
    assert InvalidUtf8("x").close_code == 1007
    assert UnsupportedFrame("x").close_code == 1003
    assert MessageTooBig("x").close_code == 1009


@pytest.mark.parametrize(
    "message",
    [
        Position("front-desk.42", 3, 10, 120, 7),
        Position("q.1", 1, 1, None, 0),
        Position("a-b-c.123456789", 99999, 100000, 0, 2**40),
        Position("50%d.8", 2, 3, 4, 5),  # not a slug; the template must not read it as a field
    ],
)
def test_position_template_matches_the_codec(message: Position) -> None:
    fields = (message.ticket_id, message.position, message.waiting, message.eta_s, message.seq)
    assert position_json(*fields) == Codec.JSON.encode(message)
    queue, number = message.ticket_id.rsplit(".", 1)
    flush = PositionsJson(queue, message.waiting, message.seq)
    assert flush.encode(int(number), message.position, message.eta_s) == Codec.JSON.encode(message)
