from __future__ import annotations

from protocol.line import EventKind, LineMirror, Notice, Outcome, Snapshot


def mirror(numbers: tuple[int, ...] = (1, 2, 3, 4, 5), seq: int = 10) -> LineMirror:
    return LineMirror(Snapshot("e1", seq, "open", numbers))


def notice(
    seq: int, kind: EventKind, number: int | None, waiting: int, epoch: str = "e1"
) -> Notice:
    return Notice(epoch, seq, kind, number, waiting)


def test_positions_are_ranks() -> None:
    m = mirror()
    assert [m.position(n) for n in (1, 3, 5, 6)] == [1, 3, 5, None]


def test_removal_moves_only_watchers_behind() -> None:
    m = mirror()
    for n in (1, 3, 5):
        m.watch(n)
    outcome, moved = m.apply(notice(11, EventKind.CALLED, 2, 4))
    assert outcome is Outcome.APPLIED
    assert moved == [3, 5]
    assert (m.position(3), m.position(5)) == (2, 4)


def test_join_at_tail_moves_nobody() -> None:
    m = mirror()
    m.watch(1)
    assert m.apply(notice(11, EventKind.JOINED, 6, 6)) == (Outcome.APPLIED, [])
    assert m.position(6) == 6


def test_join_of_a_watched_ticket_reports_it() -> None:
    m = mirror()
    m.watch(6)
    assert m.apply(notice(11, EventKind.JOINED, 6, 6)) == (Outcome.APPLIED, [6])


def test_called_ticket_leaves_the_line() -> None:
    m = mirror()
    m.watch(1)
    m.apply(notice(11, EventKind.CALLED, 1, 4))
    assert m.position(1) is None


def test_stale_gap_and_epoch() -> None:
    m = mirror()
    assert m.apply(notice(10, EventKind.LEFT, 1, 4))[0] is Outcome.STALE
    assert m.apply(notice(12, EventKind.LEFT, 1, 4))[0] is Outcome.GAP
    assert m.apply(notice(11, EventKind.LEFT, 1, 4, epoch="e2"))[0] is Outcome.GAP
    assert m.seq == 10


def test_count_disagreement_is_a_gap() -> None:
    m = mirror()
    assert m.apply(notice(11, EventKind.LEFT, 9, 4))[0] is Outcome.GAP


def test_state_events() -> None:
    m = mirror()
    m.apply(notice(11, EventKind.PAUSED, None, 5))
    assert m.state == "paused"
    m.apply(notice(12, EventKind.RESUMED, None, 5))
    assert m.state == "open"


def test_reset_replaces_the_line() -> None:
    m = mirror()
    m.watch(4)
    assert m.reset(Snapshot("e2", 3, "open", (4, 9))) == [4]
    assert (m.epoch, m.seq, m.position(4)) == ("e2", 3, 1)


def test_unwatch() -> None:
    m = mirror()
    m.watch(3)
    m.unwatch(3)
    assert m.apply(notice(11, EventKind.LEFT, 1, 4)) == (Outcome.APPLIED, [])
