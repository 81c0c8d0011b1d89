from __future__ import annotations

from protocol.codec import Codec
from protocol.connection import Connection, Reject, State
from protocol.messages import Called, Leave, Position, Status, Watch


def test_first_message_must_be_watch() -> None:
    conn = Connection(Codec.JSON)
    result = conn.receive('{"type": "leave"}')
    assert isinstance(result, Reject)
    assert result.close_code == 1008
    assert conn.state is State.CLOSED


def test_watch_then_leave() -> None:
    conn = Connection(Codec.JSON)
    assert conn.receive('{"type": "watch", "token": "t"}') == Watch("t")
    conn.watching("q.1")
    assert conn.receive('{"type": "leave"}') == Leave()


def test_second_watch_is_rejected() -> None:
    conn = Connection(Codec.JSON)
    conn.receive('{"type": "watch", "token": "t"}')
    conn.watching("q.1")
    result = conn.receive('{"type": "watch", "token": "t"}')
    assert isinstance(result, Reject)
    assert result.close_code == 1008


def test_binary_on_json_is_1003() -> None:
    result = Connection(Codec.JSON).receive(b"{}")
    assert isinstance(result, Reject)
    assert result.close_code == 1003


def test_timeout_and_bad_token_are_1008() -> None:
    assert Connection(Codec.JSON).watch_timed_out().close_code == 1008
    reject = Connection(Codec.JSON).bad_token()
    assert (reject.close_code, reject.error.code) == (1008, "unauthorized")


def test_seq_never_decreases_and_repeats_are_dropped() -> None:
    conn = Connection(Codec.JSON)
    conn.watching("q.1")
    assert conn.outgoing(Position("q.1", 3, 5, None, 10))
    assert not conn.outgoing(Position("q.1", 4, 6, None, 9))  # older
    assert not conn.outgoing(Position("q.1", 3, 5, None, 10))  # same again
    assert conn.outgoing(Position("q.1", 3, 6, None, 10))  # same seq, new waiting count
    assert conn.outgoing(Called("q.1", "desk", 12))
    assert not conn.outgoing(Called("q.1", "desk", 12))  # the same event twice
    assert not conn.outgoing(Position("q.1", 1, 5, None, 11))
    assert conn.outgoing(Status("q.1", "served", 13))
    conn.closed()
    assert not conn.outgoing(Status("q.1", "served", 14))
