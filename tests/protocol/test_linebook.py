"""The staff and board views built from a snapshot and the notices that follow, no Redis."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol.linebook import LineBook, iso_ms
from protocol.views import MAX_LINE_TICKETS, BoardCall, CalledTicket, LineTicket

T0 = 1_795_448_091_743  # 2026-11-23T15:34:51.743Z


def book(board_names: bool = False) -> LineBook:
    b = LineBook("front")
    b.reset(
        waiting=[(5, "Ann", 0), (6, None, 3)],
        called=[(2, "Cy", "desk 2", T0 + 10), (1, "Bo", "desk 1", T0)],
        board_names=board_names,
    )
    return b


def test_iso_ms_matches_the_events_api() -> None:
    assert iso_ms(T0) == "2026-11-23T15:34:51.743Z"
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"


def test_line_from_a_snapshot_in_mirror_order() -> None:
    line = book().line("open", order=[6, 5], waiting_count=2, seq=30)
    assert line.waiting == (
        LineTicket("front.6", 6, None, 1, 3),
        LineTicket("front.5", 5, "Ann", 2, 0),
    )
    assert [c.number for c in line.called] == [1, 2]  # in call order
    assert line.called[0] == CalledTicket("front.1", 1, "Bo", "desk 1", iso_ms(T0))
    assert (line.state, line.waiting_count, line.seq) == ("open", 2, 30)


def test_waiting_holds_the_first_500_and_the_count_holds_all() -> None:
    b = LineBook("q")
    order = list(range(1, 1201))
    b.reset([(n, f"n{n}", 0) for n in order], [], False)
    line = b.line("open", order, len(order), 7)
    assert len(line.waiting) == MAX_LINE_TICKETS
    assert line.waiting[-1].position == MAX_LINE_TICKETS
    assert line.waiting_count == 1200


def test_call_recall_requeue_and_finish() -> None:
    b = book()
    b.placed(7, "Di", 5)  # a priority join by staff
    b.called_at(5, "desk 3", T0 + 20)
    assert [n for n in b.called] == [1, 2, 5]
    b.recalled(1, "desk 4")  # recall: a new counter, same place and call time
    assert list(b.called) == [1, 2, 5]
    assert (b.called[1].counter, b.called[1].at_ms) == ("desk 4", T0)
    b.recalled(1, None)  # no counter given: it keeps the one it had
    assert b.called[1].counter == "desk 4"
    b.placed(5, None, None)  # requeued: the notice may carry neither name nor priority
    assert b.waiting[5].name == "Ann"
    assert 5 not in b.called
    b.finished([6, 2])  # removed in bulk: a waiting and a called ticket
    line = b.line("open", [7, 5], 2, 40)
    assert [(t.number, t.name, t.priority) for t in line.waiting] == [(7, "Di", 5), (5, "Ann", 0)]
    assert [c.number for c in line.called] == [1]


def test_requeue_keeps_the_priority_it_had() -> None:
    b = book()
    b.called_at(6, "d", T0 + 50)
    b.placed(6, None, None)
    assert b.waiting[6].priority == 3
    b.placed(6, None, 1)  # a requeue that lands before a lower priority takes that one
    assert b.waiting[6].priority == 1


def test_clear_keeps_called() -> None:
    b = book()
    b.cleared()
    line = b.line("closed", [], 0, 50)
    assert line.waiting == ()
    assert len(line.called) == 2


def test_the_board_shows_names_only_when_allowed() -> None:
    hidden = book(board_names=False).board("open", 2, 9)
    assert hidden.called == (BoardCall(1, "desk 1"), BoardCall(2, "desk 2"))
    assert all("name" not in c for c in hidden.to_wire()["called"])
    shown = book(board_names=True).board("paused", 2, 9)
    assert shown.called == (BoardCall(1, "desk 1", "Bo"), BoardCall(2, "desk 2", "Cy"))
    assert (shown.state, shown.waiting_count) == ("paused", 2)


@dataclass(frozen=True)
class Note:
    """A notice as the line mirror parses it (only the fields the book reads)."""

    kind: Kind
    number: int | None = None
    seq: int = 0
    numbers: tuple[int, ...] = ()
    name: str | None = None
    priority: int | None = None
    counter: str | None = None
    at_ms: int = 0


class Kind(enum.Enum):
    JOINED = "joined"
    CALLED = "called"
    RECALLED = "recalled"
    REQUEUED = "requeued"
    TRANSFER_IN = "transfer_in"
    TRANSFERRED = "transferred"
    REMOVED = "removed"
    SERVED = "served"
    NO_SHOW = "no_show"
    PAUSED = "paused"


def test_notices_keep_the_book() -> None:
    b = book()
    for note in (
        Note(Kind.JOINED, 7, name="Di", priority=2),
        Note(Kind.TRANSFER_IN, 8, name="Ed", priority=0),
        Note(Kind.CALLED, 5, counter="desk 3", at_ms=T0 + 20),
        Note(Kind.RECALLED, 1, at_ms=T0 + 30),  # no counter: keeps desk 1 and its call time
        Note(Kind.REQUEUED, 2, priority=1),
        Note(Kind.NO_SHOW, 5),
        Note(Kind.PAUSED),
        Note(Kind.REMOVED, numbers=(6, 8)),
    ):
        b.apply(note)
    assert {n: (w.name, w.priority) for n, w in b.waiting.items()} == {
        7: ("Di", 2),
        2: ("Cy", 1),
    }
    assert list(b.called) == [1]
    assert (b.called[1].counter, b.called[1].at_ms) == ("desk 1", T0)
    b.apply(Note(Kind.TRANSFERRED, 7))
    b.apply(Note(Kind.REMOVED))  # the whole line
    assert b.waiting == {}
    assert list(b.called) == [1]
