"""The line mirror, in tables: removals, placements by score, priorities, bulk removals."""

from __future__ import annotations

import random

import pytest

from protocol.line import EventKind, LineMirror, Notice, Outcome, Snapshot
from protocol.score import GAP, tail_score

K = EventKind


def sc(priority: int, i: int) -> float:
    """The score of the i-th tail placement (0-based) into `priority`'s band."""
    first = tail_score(priority, None)
    return first + i * GAP


LINE = (1, 2, 3, 4, 5)  # all priority 0, in join order


def mirror(numbers: tuple[int, ...] = LINE, seq: int = 10) -> LineMirror:
    scores = tuple(sc(0, i) for i in range(len(numbers)))
    return LineMirror(Snapshot("e1", seq, "open", numbers, scores))


def notice(
    seq: int,
    kind: EventKind,
    number: int | None,
    waiting: int,
    epoch: str = "e1",
    **extra: object,
) -> Notice:
    return Notice(epoch, seq, kind, number, waiting, **extra)  # type: ignore[arg-type]


def test_positions_are_ranks() -> None:
    m = mirror()
    assert [m.position(n) for n in (1, 3, 5, 6)] == [1, 3, 5, None]


def test_removal_moves_only_watchers_behind() -> None:
    m = mirror()
    for n in (1, 3, 5):
        m.watch(n)
    outcome, moved = m.apply(notice(11, K.CALLED, 2, 4))
    assert outcome is Outcome.APPLIED
    assert moved == [3, 5]
    assert (m.position(3), m.position(5)) == (2, 4)


def test_join_at_tail_moves_nobody() -> None:
    m = mirror()
    m.watch(1)
    assert m.apply(notice(11, K.JOINED, 6, 6, score=sc(0, 5))) == (Outcome.APPLIED, [])
    assert m.position(6) == 6


def test_join_of_a_watched_ticket_reports_it() -> None:
    m = mirror()
    m.watch(6)
    assert m.apply(notice(11, K.JOINED, 6, 6, score=sc(0, 5))) == (Outcome.APPLIED, [6])


def test_placement_without_a_score_is_a_gap() -> None:
    assert mirror().apply(notice(11, K.JOINED, 6, 6))[0] is Outcome.GAP


# (kind, number, score, expected line after, watched numbers expected to move)
PLACEMENTS = [
    # a priority-5 join goes ahead of the whole priority-0 line: everyone moves
    (K.JOINED, 6, sc(5, 0), [6, 1, 2, 3, 4, 5], [1, 3, 5]),
    # a requeue between 2 and 3 moves 3, 4 and 5 only
    (K.REQUEUED, 9, (sc(0, 1) + sc(0, 2)) / 2, [1, 2, 9, 3, 4, 5], [3, 5]),
    # a transfer in at the tail of priority 0 moves nobody
    (K.TRANSFER_IN, 7, sc(0, 5), [1, 2, 3, 4, 5, 7], []),
    # at the very front (before the head, same band)
    (K.REQUEUED, 8, sc(0, 0) - GAP, [8, 1, 2, 3, 4, 5], [1, 3, 5]),
]


@pytest.mark.parametrize(("kind", "number", "score", "after", "moved"), PLACEMENTS)
def test_placements_move_everyone_behind(
    kind: EventKind, number: int, score: float, after: list[int], moved: list[int]
) -> None:
    m = mirror()
    for n in (1, 3, 5):
        m.watch(n)
    outcome, got = m.apply(notice(11, kind, number, 6, score=score))
    assert outcome is Outcome.APPLIED
    assert sorted(got) == moved
    assert list(m.numbers) == after
    assert [m.position(n) for n in after] == list(range(1, 7))


def test_priorities_call_order_and_fifo_within_a_priority() -> None:
    m = LineMirror(Snapshot("e1", 0, "open", ()))
    joins = [(1, 0), (2, 3), (3, 0), (4, 9), (5, 3), (6, 9)]  # (number, priority)
    count: dict[int, int] = {}
    for seq, (number, priority) in enumerate(joins, start=1):
        score = sc(priority, count.get(priority, 0))
        count[priority] = count.get(priority, 0) + 1
        assert m.apply(notice(seq, K.JOINED, number, seq, score=score))[0] is Outcome.APPLIED
    assert list(m.numbers) == [4, 6, 2, 5, 1, 3]


def test_requeued_watcher_gets_its_new_position() -> None:
    m = mirror()
    m.watch(1)
    m.apply(notice(11, K.CALLED, 1, 4))
    assert m.position(1) is None
    outcome, moved = m.apply(notice(12, K.REQUEUED, 1, 5, score=sc(0, 0)))
    assert (outcome, moved, m.position(1)) == (Outcome.APPLIED, [1], 1)


BULK = [
    ((2, 4), [1, 3, 5], [3, 5]),  # two removed: 3 moves up one, 5 up two
    ((5,), [1, 3, 5], []),  # the last one: nobody behind
    ((1, 2, 3, 4, 5), [1, 3, 5], []),  # the whole line: watchers are gone, not moved
    ((2, 77), [3], [3]),  # numbers not in the line are ignored
]


@pytest.mark.parametrize(("removed", "watched", "moved"), BULK)
def test_bulk_removal(removed: tuple[int, ...], watched: list[int], moved: list[int]) -> None:
    m = mirror()
    for n in watched:
        m.watch(n)
    left = [n for n in LINE if n not in removed]
    outcome, got = m.apply(notice(11, K.REMOVED, None, len(left), numbers=removed))
    assert outcome is Outcome.APPLIED
    assert sorted(got) == moved
    assert list(m.numbers) == left
    assert [m.position(n) for n in left] == list(range(1, len(left) + 1))


def test_transfer_out_and_single_removal_leave_the_line() -> None:
    m = mirror()
    m.watch(5)
    assert m.apply(notice(11, K.REMOVED, 1, 4)) == (Outcome.APPLIED, [5])
    assert m.apply(notice(12, K.TRANSFERRED, 2, 3, target_queue="b", target_number=1))[1] == [5]
    assert m.position(5) == 3


def test_respaced_line_needs_a_snapshot() -> None:
    m = mirror()
    assert m.apply(notice(11, K.REQUEUED, 9, 6, score=1.0, respaced=True))[0] is Outcome.GAP


def test_random_events_match_a_plain_list() -> None:
    rng = random.Random(7)
    m = LineMirror(Snapshot("e1", 0, "open", ()))
    model: list[tuple[float, int]] = []
    next_number = 0
    for seq in range(1, 400):
        if model and rng.random() < 0.4:
            gone = rng.sample(model, k=min(len(model), rng.randint(1, 3)))
            for item in gone:
                model.remove(item)
            n = notice(seq, K.REMOVED, None, len(model), numbers=tuple(x[1] for x in gone))
        else:
            next_number += 1
            score = float(rng.randrange(1, 10**9))
            model.append((score, next_number))
            model.sort()
            n = notice(seq, K.JOINED, next_number, len(model), score=score)
        if next_number % 3 == 0:
            m.watch(next_number)
        assert m.apply(n)[0] is Outcome.APPLIED
        assert [x[1] for x in model] == list(m.numbers)
        for position, (_, number) in enumerate(model, start=1):
            assert m.position(number) == position


def test_called_ticket_leaves_the_line() -> None:
    m = mirror()
    m.watch(1)
    m.apply(notice(11, K.CALLED, 1, 4))
    assert m.position(1) is None


def test_stale_gap_and_epoch() -> None:
    m = mirror()
    assert m.apply(notice(10, K.LEFT, 1, 4))[0] is Outcome.STALE
    assert m.apply(notice(12, K.LEFT, 1, 4))[0] is Outcome.GAP
    assert m.apply(notice(11, K.LEFT, 1, 4, epoch="e2"))[0] is Outcome.GAP
    assert m.seq == 10


def test_count_disagreement_is_a_gap() -> None:
    m = mirror()
    assert m.apply(notice(11, K.LEFT, 9, 4))[0] is Outcome.GAP


def test_state_events() -> None:
    m = mirror()
    m.apply(notice(11, K.PAUSED, None, 5))
    assert m.state == "paused"
    m.apply(notice(12, K.RESUMED, None, 5))
    assert m.state == "open"


def test_reset_replaces_the_line() -> None:
    m = mirror()
    m.watch(4)
    assert m.reset(Snapshot("e2", 3, "open", (4, 9), (5.0, 6.0))) == [4]
    assert (m.epoch, m.seq, m.position(4)) == ("e2", 3, 1)


def test_unwatch() -> None:
    m = mirror()
    m.watch(3)
    m.unwatch(3)
    assert m.apply(notice(11, K.LEFT, 1, 4)) == (Outcome.APPLIED, [])


def test_watchers_coming_and_going_are_moved_exactly() -> None:
    """Watches and unwatches by the dozen between the line's events, as in a reconnect storm:
    every event reports exactly the watched tickets behind it, in line order."""
    rng = random.Random(11)
    line = {n: float(n) for n in range(1, 401)}  # waiting: number -> score
    m = LineMirror(Snapshot("e1", 0, "open", tuple(line), tuple(line.values())))
    watched: set[int] = set()
    next_number = 401
    for seq in range(1, 400):
        for _ in range(rng.randint(0, 40)):  # waiting, gone or yet to join
            n = rng.randint(1, next_number + 5)
            if n in watched:
                m.unwatch(n)
                watched.discard(n)
            else:
                m.watch(n)
                watched.add(n)
        if rng.random() < 0.5:
            number, score = next_number, float(rng.randrange(1, 10**6))
            next_number += 1
            line[number] = score
            event = notice(seq, K.JOINED, number, len(line), score=score)
            first = [number] if number in watched else []
        else:
            number = rng.choice(sorted(line))
            score = line.pop(number)
            event = notice(seq, K.LEFT, number, len(line))
            first = []
        behind = [
            n
            for n in sorted(line, key=lambda n: (line[n], n))
            if n in watched and line[n] > score and n != number
        ]
        assert m.apply(event) == (Outcome.APPLIED, first + behind)


def test_notice_from_wire_reads_every_field() -> None:
    raw = (
        b'{"e":"x","s":4,"k":"transferred","n":3,"w":2,"at":5,"sc":"5066549580791808",'
        b'"p":2,"nm":"Ann","ns":[1,2],"r":1,"tq":"b","tn":7,"rs":1}'
    )
    n = Notice.from_wire(raw)
    assert n.score == 5066549580791808.0 and n.priority == 2 and n.name == "Ann"
    assert (n.numbers, n.recall, n.target_queue, n.target_number, n.respaced) == (
        (1, 2),
        True,
        "b",
        7,
        True,
    )


@pytest.mark.parametrize("asked", [3, 60, 400])  # few (a lookup each) and most (one pass)
def test_positions_of_many_numbers_agree_with_each_position(asked: int) -> None:
    rng = random.Random(asked)
    numbers = tuple(rng.sample(range(1, 5000), 500))
    mirror = LineMirror(Snapshot("e", 1, "open", numbers))
    wanted = set(rng.sample(range(1, 5000), asked)) | {numbers[0], numbers[-1]}
    found, places = mirror.positions(wanted)
    expected = {n: mirror.position(n) for n in wanted if mirror.position(n) is not None}
    assert dict(zip(found, places, strict=True)) == expected
    assert len(found) == len(expected)


@pytest.mark.parametrize("named", [0, 3, 400])  # none, few (a lookup each), most (one pass)
def test_positions_behind_a_mark_are_the_named_and_every_watched_ticket_behind(
    named: int,
) -> None:
    rng = random.Random(named)
    for _ in range(40):
        numbers = tuple(rng.sample(range(1, 5000), 600))
        scores = tuple(float(s) for s in rng.sample(range(1, 10**6), 600))
        m = LineMirror(Snapshot("e", 1, "open", numbers, scores))
        watched = set(rng.sample(numbers, 450)) | set(rng.sample(range(5000, 6000), 20))
        for n in watched:
            m.watch(n)
        asked = set(rng.sample(sorted(watched), min(named, len(watched))))
        mark = rng.choice([*scores, 0.5, 10.0**7, float(rng.randrange(1, 10**6))])
        found, places = m.positions(asked, mark)
        behind = {n for n in watched if (m.score(n) or 0.0) > mark}
        expected = {n: m.position(n) for n in asked | behind if m.position(n) is not None}
        assert dict(zip(found, places, strict=True)) == expected
        assert len(found) == len(expected)  # nobody twice


def test_apply_marked_marks_the_watched_behind_and_only_when_there_are_any() -> None:
    m = mirror()
    for n in (1, 3, 5):
        m.watch(n)
    assert m.apply_marked(notice(11, K.CALLED, 1, 4)) == (Outcome.APPLIED, [], sc(0, 0))
    found, places = m.positions(set(), sc(0, 0))
    assert dict(zip(found, places, strict=True)) == {3: 2, 5: 4}
    # The last in line leaves: no watched ticket stands behind it, so nothing is marked.
    assert m.apply_marked(notice(12, K.LEFT, 5, 3)) == (Outcome.APPLIED, [], None)
    # A watched ticket placed ahead of another: it is named, the one behind it marked.
    m.watch(9)
    between = sc(0, 1) + 1  # behind ticket 2, ahead of 3
    assert m.apply_marked(notice(13, K.JOINED, 9, 4, score=between)) == (
        Outcome.APPLIED,
        [9],
        between,
    )
    found, places = m.positions({9}, between)
    assert dict(zip(found, places, strict=True)) == {9: 2, 3: 3}
