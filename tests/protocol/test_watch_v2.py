"""The v2 rules of the per-queue watch (protocol/watch.py), by tables: the `queue` message, a
recall, a no-show that keeps watching, a transfer followed, removals, and the staff and board
views riding on the same notices. Uses the recording driver of test_watch.py."""

from __future__ import annotations

import pytest

from protocol import line as line_module
from protocol.codec import Codec
from protocol.connection import Connection, Role
from protocol.line import EventKind, Notice
from protocol.viewwatch import BookSnapshot
from tests.protocol.test_watch import LINE, Node, notice, snap, view

E = EventKind
needs_v2_mirror = pytest.mark.skipif(
    "scores" not in line_module.Snapshot.__dataclass_fields__,
    reason="the score-ordered mirror of branch lineops (removals and placements) is not here yet",
)


def called(node: Node, w: int, number: int) -> None:
    """Watcher `w` of ticket `number`, which is called (not in the line (2, 3))."""
    node.register(w, number)
    node.start(w, view(number, 10, (2, 3), "called", counter="desk 1"))


def test_the_queue_state_comes_first_at_watch_and_on_every_change() -> None:
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 3, 10, LINE)
    node.watch_ticket(8, 4, 10, LINE)
    assert node.states[7] == [{"type": "queue", "queue": "q", "state": "open", "seq": 10}]
    actions = node.notice(Notice("e1", 11, E.PAUSED, None, len(LINE)))
    told = [a for a in actions if getattr(a, "replaceable", True) is False]
    assert told, "a state change is never replaceable"
    assert node.states[7][-1] == {"type": "queue", "queue": "q", "state": "paused", "seq": 11}
    assert node.states[8][-1]["state"] == "paused"
    node.flush()
    assert node.sent[7][-1]["eta_s"] is None  # paused: no estimate


def test_a_read_older_than_the_mirror_gets_the_mirrors_state() -> None:
    node = Node()
    node.live(LINE)
    node.register(7, 3)
    node.notice(Notice("e1", 11, E.CLOSED, None, len(LINE)))
    node.start(7, view(3, 10, LINE))  # read before the close
    assert node.states[7] == [{"type": "queue", "queue": "q", "state": "closed", "seq": 11}]


def test_a_state_change_older_than_the_first_snapshot_is_still_told() -> None:
    node = Node()
    node.run(node.watch.resubscribed())  # subscribing: the first snapshot is on its way
    node.register(7, 3)
    node.start(7, view(3, 10, LINE))
    assert node.states[7][-1]["state"] == "open"
    node.notice(Notice("e1", 11, E.CLOSED, None, len(LINE)))  # waits for the snapshot
    node.snapshot(snap(11, LINE, state="closed"))  # read after the close: the notice is stale
    assert node.states[7][-1] == {"type": "queue", "queue": "q", "state": "closed", "seq": 11}


def test_a_recall_is_called_again_and_keeps_the_watch() -> None:
    node = Node()
    node.live((2, 3))
    called(node, 7, 1)
    node.sent[7].clear()
    node.notice(Notice("e1", 11, E.RECALLED, 1, 2, "desk 4", recall=True))
    assert node.sent[7] == [
        {"type": "called", "ticket_id": "q.1", "counter": "desk 4", "seq": 11, "recall": True}
    ]
    assert node.ended == []


def test_a_no_show_is_told_but_not_ended() -> None:
    node = Node()
    node.live((2, 3))
    called(node, 7, 1)
    node.notice(Notice("e1", 11, E.NO_SHOW, 1, 2))
    assert node.shown(7) == "no_show"
    assert node.ended == []


def test_a_transfer_is_told_then_followed() -> None:
    node = Node()
    node.live((2, 3))
    called(node, 7, 1)
    node.notice(Notice("e1", 11, E.TRANSFERRED, 1, 2, target_queue="r", target_number=9))
    assert node.shown(7) == "transferred"
    [follow] = node.follows
    assert (follow.watchers, follow.number, follow.seq) == ([7], 1, 11)
    assert node.ended == []  # the driver ends it once `moved` is out


@needs_v2_mirror
def test_a_bulk_removal_tells_and_ends_each_watched_ticket() -> None:
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 2, 10, LINE)
    node.watch_ticket(8, 4, 10, LINE)
    node.notice(Notice("e1", 11, E.REMOVED, None, len(LINE) - 2, numbers=(2, 3)))
    assert node.shown(7) == "removed" and node.ended == [7]
    node.flush()
    assert node.shown(8) == 2


@needs_v2_mirror
def test_a_requeue_after_a_no_show_reaches_the_same_watcher() -> None:
    node = Node()
    node.live((2, 3))
    called(node, 7, 1)
    node.notice(Notice("e1", 11, E.NO_SHOW, 1, 2))
    node.notice(Notice("e1", 12, E.REQUEUED, 1, 3, score=2.5, priority=0))  # between 2 and 3
    node.flush()
    assert node.shown(7) == 2


def views_node() -> tuple[Node, Connection, Connection]:
    node = Node()
    staff, board = Connection(Codec.JSON), Connection(Codec.JSON)
    staff.watching_queue("q", Role.LINE)
    board.watching_queue("q", Role.BOARD)
    node.sent[100], node.sent[101] = [], []
    return node, staff, board


def book(seq: int) -> BookSnapshot:
    waiting = tuple((n, f"n{n}", 0) for n in LINE)
    return BookSnapshot("e1", seq, waiting, (), False)


def test_views_start_once_the_book_is_read_and_follow_the_notices() -> None:
    node, staff, board = views_node()
    node.run(node.watch.register_view(100, Role.LINE, staff))  # before the first snapshot
    assert node.book_reads == []
    node.live(LINE)
    assert len(node.book_reads) == 1  # the snapshot made the mirror live: read the book
    node.run(node.watch.register_view(101, Role.BOARD, board))
    assert len(node.book_reads) == 1  # one read in flight serves both
    node.run(node.watch.receive_book(book(10), node.now))
    assert [m["type"] for m in node.states[100] + node.sent[100]] == ["queue", "line"]
    assert node.sent[101][0]["waiting_count"] == len(LINE)
    node.notice(notice(11, E.CALLED, 1, len(LINE) - 1))
    node.notice(notice(12, E.LEFT, 3, len(LINE) - 2))
    node.flush()
    line = node.sent[100][-1]
    assert [t["number"] for t in line["waiting"]] == [n for n in LINE if n not in (1, 3)]
    assert [c["number"] for c in line["called"]] == [1]
    assert line["seq"] == 12 and len(node.sent[100]) == 2  # two notices, one coalesced frame


def test_a_resync_reads_the_book_again() -> None:
    node, staff, _ = views_node()
    node.live(LINE)
    node.run(node.watch.register_view(100, Role.LINE, staff))
    node.run(node.watch.receive_book(book(10), node.now))
    node.notice(notice(12, E.CALLED, 1, len(LINE) - 1))  # 11 was lost: a gap
    node.snapshot(snap(12, LINE[1:]))
    assert len(node.book_reads) == 2
    node.run(node.watch.receive_book(book(12), node.now))
    node.flush()
    assert node.sent[100][-1]["seq"] == 12


def test_the_watch_is_idle_only_without_ticket_and_view_watchers() -> None:
    node, staff, _ = views_node()
    node.live(LINE)
    node.run(node.watch.register_view(100, Role.LINE, staff))
    assert not node.watch.idle and node.watch.watcher_count == 1
    node.watch.unregister_view(100)
    assert node.watch.idle
