"""How a simulated customer takes its frames (`loadtest.customer.Customer._on_message`): each
position is checked against its own ticket and recorded once, seq going back is an error, and
the first frame and the first after a drop are noted, fast path or not."""

from __future__ import annotations

import orjson
import pytest

from loadtest.customer import Customer, Fleet
from loadtest.wsclient import OP_BINARY, OP_TEXT
from protocol.codec import Codec


def position(tid: str, seq: int, place: int) -> bytes:
    frame = {"type": "position", "ticket_id": tid, "position": place, "waiting": 9, "eta_s": 60}
    return orjson.dumps({**frame, "seq": seq})


@pytest.fixture
def customer() -> Customer:
    return Customer(Fleet("ws://unused", Codec.JSON, None), "q.7", "token")


def test_positions_are_recorded_once_each_in_order(customer: Customer) -> None:
    for seq, place in ((10, 5), (11, 4), (11, 4), (13, 2)):
        customer._on_message(OP_TEXT, position("q.7", seq, place), 100.0 + seq)
    assert list(customer.seqs) == [10, 11, 11, 13]
    assert list(customer.times) == [110.0, 111.0, 111.0, 113.0]
    assert (customer.last_kind, customer.last_place) == ("position", 2)
    assert (customer.first_seq, customer.last_seq) == (10, 13)
    assert customer.fleet.frame_counts() == {"position": 4}
    assert not customer.fleet.errors


def test_another_tickets_frame_is_an_error_not_a_position(customer: Customer) -> None:
    customer._on_message(OP_TEXT, position("q.7", 10, 5), 1.0)
    customer._on_message(OP_TEXT, position("q.8", 11, 4), 2.0)  # past the first frame
    assert list(customer.seqs) == [10]
    assert (customer.last_kind, customer.last_place) == ("position", 5)
    assert customer.last_seq == 10
    assert customer.fleet.errors == {"frame_for_another_ticket": 1}


def test_seq_going_back_is_counted_and_the_frame_kept(customer: Customer) -> None:
    customer._on_message(OP_TEXT, position("q.7", 10, 5), 1.0)
    customer._on_message(OP_TEXT, position("q.7", 9, 6), 2.0)
    assert list(customer.seqs) == [10, 9] and customer.last_seq == 9
    assert customer.fleet.errors == {"seq_regression": 1}


def test_the_first_frame_after_a_drop_times_the_reconnect(customer: Customer) -> None:
    customer._on_message(OP_TEXT, position("q.7", 10, 5), 1.0)
    customer.dropped_at = 4.0
    customer._on_message(OP_TEXT, position("q.7", 12, 3), 4.5)
    customer._on_message(OP_TEXT, position("q.7", 13, 2), 5.0)
    assert customer.fleet.reconnect_s == [0.5]
    assert customer.dropped_at is None
    assert list(customer.seqs) == [10, 12, 13]


def test_a_frame_of_the_wrong_type_or_shape_is_a_bad_frame(customer: Customer) -> None:
    customer._on_message(OP_BINARY, position("q.7", 10, 5), 1.0)
    customer._on_message(OP_TEXT, b"{not json", 1.0)
    customer._on_message(OP_TEXT, orjson.dumps({"type": "position", "ticket_id": "q.7"}), 1.0)
    assert customer.fleet.errors == {"bad_frame": 3}
    assert not customer.seqs and customer.first_seq is None


def test_frames_are_counted_by_type_positions_with_the_rest(customer: Customer) -> None:
    customer._on_message(OP_TEXT, position("q.7", 10, 1), 1.0)
    customer._on_message(OP_TEXT, position("q.7", 11, 1), 2.0)
    called = {"type": "called", "ticket_id": "q.7", "counter": "A", "seq": 12}
    customer._on_message(OP_TEXT, orjson.dumps(called), 3.0)
    assert customer.fleet.frame_counts() == {"position": 2, "called": 1}
    assert (customer.last_kind, customer.last_place) == ("called", None)
    assert customer.called_seq == 12 and not customer.fleet.errors
