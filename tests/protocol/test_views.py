"""The v2 messages: `queue`, `moved`, recalls, `watch_queue` / `watch_board`, `line`, `board`."""

from __future__ import annotations

import msgpack
import orjson
import pytest

from protocol.codec import Codec
from protocol.connection import Connection, Reject, Role, State
from protocol.errors import MalformedMessage
from protocol.messages import (
    Called,
    Leave,
    Moved,
    Position,
    QueueState,
    ServerMessage,
    Status,
    WatchBoard,
    WatchQueue,
)
from protocol.views import Board, BoardCall, CalledTicket, Line, LineTicket

LINE = Line(
    "front",
    "open",
    3,
    (
        LineTicket("front.7", 7, "Ann", 1, 2),
        LineTicket("front.4", 4, None, 2, 0),
    ),
    (CalledTicket("front.2", 2, "Bo", "desk 1", "2026-12-02T06:00:00.000Z"),),
    41,
)
BOARD = Board("front", "paused", 3, (BoardCall(2, "desk 1", "Bo"), BoardCall(3, None)), 41)


@pytest.mark.parametrize("codec", list(Codec))
@pytest.mark.parametrize(
    "message",
    [
        QueueState("front", "paused", 12),
        Moved("front.4", "back.9", "back", "tok.en", 13),
        Called("front.4", "desk 2", 14, recall=True),
        Called("front.4", None, 15),
        Status("front.4", "removed", 16),
        Status("front.4", "transferred", 17),
        LINE,
        BOARD,
        Line("q", "closed", 0, (), (), 0),
    ],
)
def test_v2_server_messages_round_trip(codec: Codec, message: ServerMessage) -> None:
    frame = codec.encode(message)
    assert codec.decode_server(frame.decode() if codec.is_text else frame) == message


def test_wire_fields_are_exactly_the_contracts() -> None:
    assert QueueState("q", "closed", 3).to_wire() == {
        "type": "queue",
        "queue": "q",
        "state": "closed",
        "seq": 3,
    }
    assert set(Moved("q.1", "r.2", "r", "t", 4).to_wire()) == {
        "type",
        "ticket_id",
        "to_ticket_id",
        "to_queue",
        "token",
        "seq",
    }
    assert Called("q.1", "d", 5, recall=True).to_wire()["recall"] is True
    assert "recall" not in Called("q.1", "d", 5).to_wire()  # v1's frame is unchanged
    wire = LINE.to_wire()
    assert set(wire) == {"type", "queue", "state", "waiting_count", "waiting", "called", "seq"}
    assert wire["waiting"][0] == {
        "ticket_id": "front.7",
        "number": 7,
        "name": "Ann",
        "position": 1,
        "priority": 2,
    }
    assert set(wire["called"][0]) == {"ticket_id", "number", "name", "counter", "at"}
    board = BOARD.to_wire()
    assert set(board) == {"type", "queue", "state", "waiting_count", "called", "seq"}
    assert board["called"] == [
        {"number": 2, "counter": "desk 1", "name": "Bo"},
        {"number": 3, "counter": None},
    ]


@pytest.mark.parametrize("codec", list(Codec))
def test_watch_queue_and_board_decode(codec: Codec) -> None:
    for message in (WatchQueue("front", "vqk_x"), WatchBoard("front-2")):
        frame = codec.encode(message)
        assert codec.decode_client(frame.decode() if codec.is_text else frame) == message


@pytest.mark.parametrize(
    "data",
    [
        {"type": "watch_queue", "queue": "front"},
        {"type": "watch_queue", "queue": "front", "key": ""},
        {"type": "watch_queue", "queue": "front", "key": 5},
        {"type": "watch_queue", "queue": "front", "key": "k" * 300},
        {"type": "watch_queue", "queue": "Front", "key": "k"},
        {"type": "watch_queue", "key": "k"},
        {"type": "watch_board"},
        {"type": "watch_board", "queue": ["front"]},
        {"type": "watch_board", "queue": "-front"},
        {"type": "watch_board", "queue": "a" * 65},
    ],
)
def test_malformed_v2_client_messages(data: dict[str, object]) -> None:
    with pytest.raises(MalformedMessage):
        Codec.JSON.decode_client(orjson.dumps(data).decode())
    with pytest.raises(MalformedMessage):
        Codec.MSGPACK.decode_client(msgpack.packb(data))


@pytest.mark.parametrize(
    "data",
    [
        {"type": "line", "queue": "q", "state": "open", "waiting_count": 1, "seq": 1},
        {
            "type": "line",
            "queue": "q",
            "state": "open",
            "waiting_count": 1,
            "waiting": [3],
            "called": [],
            "seq": 1,
        },
        {
            "type": "board",
            "queue": "q",
            "state": "open",
            "waiting_count": "x",
            "called": [],
            "seq": 1,
        },
        {"type": "moved", "ticket_id": "q.1", "seq": 2},
        {"type": "queue", "queue": "q", "seq": 2},
    ],
)
def test_malformed_v2_server_messages(data: dict[str, object]) -> None:
    with pytest.raises(MalformedMessage):
        Codec.JSON.decode_server(orjson.dumps(data).decode())


@pytest.mark.parametrize(
    ("first", "role"),
    [
        ('{"type": "watch_queue", "queue": "q", "key": "k"}', Role.LINE),
        ('{"type": "watch_board", "queue": "q"}', Role.BOARD),
    ],
)
def test_a_view_watcher_cannot_leave_or_watch_again(first: str, role: Role) -> None:
    conn = Connection(Codec.JSON)
    message = conn.receive(first)
    assert isinstance(message, WatchQueue | WatchBoard)
    conn.watching_queue(message.queue, role)
    assert (conn.state, conn.role, conn.queue) == (State.WATCHING, role, "q")
    rejected = conn.receive('{"type": "leave"}')
    assert isinstance(rejected, Reject) and rejected.close_code == 1008
    again = Connection(Codec.JSON)
    again.receive(first)
    again.watching_queue("q", role)
    assert isinstance(again.receive(first), Reject)


def test_a_ticket_watcher_may_still_leave() -> None:
    conn = Connection(Codec.JSON)
    conn.receive('{"type": "watch", "token": "t"}')
    conn.watching("q.1")
    assert conn.role is Role.TICKET
    assert conn.receive('{"type": "leave"}') == Leave()
    assert isinstance(conn.receive('{"type": "watch_board", "queue": "q"}'), Reject)


def test_refusals_close_with_1008() -> None:
    conn = Connection(Codec.JSON)
    reject = conn.refuse("unauthorized", "wrong staff key")
    assert (reject.close_code, reject.error.code, conn.state) == (
        1008,
        "unauthorized",
        State.CLOSED,
    )
    assert not conn.outgoing(LINE)


def test_views_never_go_back_in_seq() -> None:
    conn = Connection(Codec.JSON)
    conn.watching_queue("front", Role.LINE)
    assert conn.outgoing(QueueState("front", "open", 40))
    assert conn.outgoing(LINE)  # same seq, another message
    assert not conn.outgoing(LINE)  # the same frame twice
    older = Line("front", "open", 1, (), (), 39)
    assert not conn.outgoing(older)
    assert conn.outgoing(Line("front", "open", 0, (), (), 42))


def test_queue_state_then_position_at_the_same_seq_both_go_out() -> None:
    conn = Connection(Codec.JSON)
    conn.watching("q.3")
    assert conn.outgoing(QueueState("q", "paused", 9))
    assert conn.outgoing(Position("q.3", 2, 4, None, 9))
    assert conn.outgoing(Called("q.3", "d", 10))
    assert conn.outgoing(Called("q.3", "d", 11, recall=True))  # a recall is a new event
    assert conn.outgoing(Status("q.3", "transferred", 12))
    assert conn.outgoing(Moved("q.3", "r.1", "r", "t", 12))
