"""A stream entry as Redis returns it (bytes), read into the event persister and notifier use."""

from __future__ import annotations

import pytest

from server.store.events import parse_entry

JOINED = {
    b"seq": b"12",
    b"type": b"joined",
    b"at": b"1764840000000",
    b"epoch": b"e1",
    b"waiting": b"4",
    b"ticket": b"7",
    b"name": "Zoë".encode(),
    b"nonce": b"n0nce",
    b"score": b"281474976710656",
    b"priority": b"0",
}


def test_an_entry_becomes_its_event_with_typed_data() -> None:
    event = parse_entry("q", b"1764840000000-3", JOINED)
    assert event is not None
    assert (event.queue, event.entry_id, event.seq, event.kind) == (
        "q",
        "1764840000000-3",
        12,
        "joined",
    )
    assert (event.ticket, event.at_ms, event.epoch) == (7, 1764840000000, "e1")
    # integers where the schema has them; the score stays text (exact past 2**53 in JSON)
    assert event.data == {
        "waiting": 4,
        "name": "Zoë",
        "nonce": "n0nce",
        "score": "281474976710656",
        "priority": 0,
    }


def test_an_event_without_a_ticket_has_none() -> None:
    fields = {k: v for k, v in JOINED.items() if k != b"ticket"}
    event = parse_entry("q", b"1-1", fields)
    assert event is not None and event.ticket is None and "ticket" not in event.data


@pytest.mark.parametrize(
    "change",
    [
        {b"seq": None},
        {b"type": None},
        {b"at": None},
        {b"epoch": None},
        {b"seq": b"twelve"},
        {b"ticket": b"7.5"},
        {b"waiting": b"many"},
        {b"name": b"\xff\xfe"},
        {b"epoch": b"\xc3"},
        {b"\xff": b"1"},
    ],
    ids=[
        "no seq",
        "no type",
        "no time",
        "no epoch",
        "seq not a number",
        "ticket not an integer",
        "waiting not a number",
        "name not UTF-8",
        "epoch not UTF-8",
        "field name not UTF-8",
    ],
)
def test_an_entry_that_is_not_ours_is_none(change: dict[bytes, bytes | None]) -> None:
    fields = dict(JOINED)
    for key, value in change.items():
        if value is None:
            del fields[key]
        else:
            fields[key] = value
    assert parse_entry("q", b"1-1", fields) is None
