"""Staff and board watchers of one queue: first frames, coalesced flushes, the book read racing
the notices. Plain tables, no event loop."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import orjson

from protocol.codec import Codec
from protocol.connection import Connection, Role
from protocol.line import EventKind, LineMirror, Notice, Snapshot
from protocol.viewwatch import BookSnapshot, QueueViews, ViewFrames

T0 = 1_795_448_091_743


class Kind(enum.Enum):
    SETTINGS = "settings"
    JOINED = "joined"
    CALLED = "called"
    RECALLED = "recalled"
    PAUSED = "paused"


@dataclass(frozen=True)
class Note:
    """The book's view of a notice (the mirror gets the matching `Notice`)."""

    seq: int
    kind: Kind
    number: int | None = None
    numbers: tuple[int, ...] = ()
    name: str | None = None
    priority: int | None = None
    counter: str | None = None
    at_ms: int = 0


def setup() -> tuple[LineMirror, QueueViews[str], dict[str, Connection]]:
    mirror = LineMirror(Snapshot("e1", 10, "open", (5, 6)))
    views: QueueViews[str] = QueueViews("front")
    conns = {}
    for watcher, role, codec in (
        ("staff", Role.LINE, Codec.JSON),
        ("board", Role.BOARD, Codec.JSON),
        ("board-mp", Role.BOARD, Codec.MSGPACK),
    ):
        conn = Connection(codec)
        conn.watching_queue("front", role)
        conns[watcher] = conn
        assert views.register(watcher, role, conn)  # the book must be read first
    return mirror, views, conns


def book_read(seq: int, epoch: str = "e1", board_names: bool = False) -> BookSnapshot:
    return BookSnapshot(
        epoch, seq, ((5, "Ann", 0), (6, "Bo", 0)), ((2, "Cy", "desk 1", T0),), board_names
    )


def step(mirror: LineMirror, note: Note, waiting: int) -> None:
    kind = EventKind(note.kind.value)
    score = float(note.number) if kind is EventKind.JOINED and note.number else None
    notice = Notice("e1", note.seq, kind, note.number, waiting, note.counter, note.at_ms, score)
    mirror.apply(notice)


def decoded(frames: list[ViewFrames[str]]) -> list[tuple[str, dict[str, object]]]:
    out = []
    for group in frames:
        for watcher, frame in zip(group.watchers, group.frames, strict=True):
            if watcher != "board-mp":
                out.append((watcher, orjson.loads(frame)))
    return out


def test_first_frames_wait_for_the_book_then_queue_state_comes_first() -> None:
    mirror, views, _ = setup()
    assert views.start(mirror) == []
    again, frames = views.load(book_read(10), mirror)
    assert not again
    sent = decoded(frames)
    assert [(w, m["type"]) for w, m in sent if w == "staff"] == [
        ("staff", "queue"),
        ("staff", "line"),
    ]
    line = next(m for w, m in sent if m["type"] == "line")
    assert line["waiting"] == [
        {"ticket_id": "front.5", "number": 5, "name": "Ann", "position": 1, "priority": 0},
        {"ticket_id": "front.6", "number": 6, "name": "Bo", "position": 2, "priority": 0},
    ]
    board = next(m for w, m in sent if m["type"] == "board")
    assert board["called"] == [{"number": 2, "counter": "desk 1"}]  # no name: board_names off
    assert all(
        not group.replaceable for group in frames if group.frames[0].startswith(b'{"type":"queue"')
    )
    packed = [
        f for g in frames for w, f in zip(g.watchers, g.frames, strict=True) if w == "board-mp"
    ]
    assert [type(Codec.MSGPACK.decode_server(f)).__name__ for f in packed] == [
        "QueueState",
        "Board",
    ]


def test_changes_are_coalesced_into_one_frame_per_flush() -> None:
    mirror, views, _ = setup()
    views.load(book_read(10), mirror)
    for note, waiting in (
        (Note(11, Kind.JOINED, 7, name="Di", priority=0), 3),
        (Note(12, Kind.CALLED, 5, counter="desk 2", at_ms=T0 + 5), 2),
    ):
        step(mirror, note, waiting)
        assert views.apply(note, mirror) == []  # nothing at once: a flush sends the latest
    frames = views.flush(mirror)
    assert all(g.replaceable for g in frames)
    line = next(m for w, m in decoded(frames) if w == "staff")
    assert [t["number"] for t in line["waiting"]] == [6, 7]
    assert [c["number"] for c in line["called"]] == [2, 5]
    assert (line["seq"], line["waiting_count"]) == (12, 2)
    assert views.flush(mirror) == []  # nothing changed since


def test_a_state_change_is_told_at_once_to_every_view() -> None:
    mirror, views, _ = setup()
    views.load(book_read(10), mirror)
    note = Note(11, Kind.PAUSED)
    step(mirror, note, 2)
    frames = views.apply(note, mirror)
    assert {w: m for w, m in decoded(frames)} == {
        "staff": {"type": "queue", "queue": "front", "state": "paused", "seq": 11},
        "board": {"type": "queue", "queue": "front", "state": "paused", "seq": 11},
    }
    assert not frames[0].replaceable
    board = next(m for w, m in decoded(views.flush(mirror)) if w == "board")
    assert board["state"] == "paused"


def test_a_book_read_older_than_the_mirror_is_caught_up_from_recent_notices() -> None:
    mirror, views, _ = setup()
    notes = (
        (Note(11, Kind.JOINED, 7, name="Di", priority=3), 3),
        (Note(12, Kind.CALLED, 5, counter="desk 2", at_ms=T0 + 5), 2),
    )
    for note, waiting in notes:  # they arrive while the read is in flight
        step(mirror, note, waiting)
        views.apply(note, mirror)
    again, frames = views.load(book_read(10), mirror)
    assert not again
    line = next(m for w, m in decoded(frames) if m["type"] == "line")
    assert [(t["number"], t["name"], t["priority"]) for t in line["waiting"]] == [
        (6, "Bo", 0),
        (7, "Di", 3),
    ]
    assert [c["counter"] for c in line["called"]] == ["desk 1", "desk 2"]


def test_a_book_read_newer_than_the_mirror_skips_the_notices_it_holds() -> None:
    mirror, views, _ = setup()
    # The read already holds ticket 2's recall at desk 4 (seq 12); notice 11 (its first call
    # at desk 9, older) must not undo it when it reaches the mirror afterwards.
    read = BookSnapshot(
        "e1", 12, ((5, "Ann", 0), (6, "Bo", 0)), ((2, "Cy", "desk 4", T0 + 9),), False
    )
    views.load(read, mirror)
    step(mirror, Note(11, Kind.CALLED, 2, counter="desk 9", at_ms=T0), 2)
    views.apply(Note(11, Kind.RECALLED, 2, counter="desk 9", at_ms=T0), mirror)
    assert views.book.called[2].counter == "desk 4"


def test_reads_that_cannot_be_trusted_are_asked_again() -> None:
    mirror, views, _ = setup()
    assert views.load(book_read(10, epoch="other"), mirror) == (True, [])
    note = Note(11, Kind.JOINED, 7, name="Di")
    step(mirror, note, 3)
    views.apply(note, mirror)
    assert views.invalidate()  # a resync: notices may have been lost, recent ones forgotten
    assert views.load(book_read(10), mirror) == (True, [])
    assert views.load(book_read(11), mirror)[0] is False


def test_board_names_only_when_the_queue_allows_them() -> None:
    mirror, views, _ = setup()
    _, frames = views.load(book_read(10, board_names=True), mirror)
    board = next(m for w, m in decoded(frames) if m["type"] == "board")
    assert board["called"] == [{"number": 2, "counter": "desk 1", "name": "Cy"}]


def test_unregistered_watchers_get_nothing() -> None:
    mirror, views, _ = setup()
    views.unregister("staff")
    _, frames = views.load(book_read(10), mirror)
    assert "staff" not in {w for g in frames for w in g.watchers}
    assert views.count == 2


def test_a_settings_change_reads_the_book_again() -> None:
    mirror, views, _ = setup()
    views.load(book_read(10), mirror)
    assert not views.needs_read
    note = Note(11, Kind.SETTINGS)
    step_settings = Notice("e1", 11, EventKind.OPENED, None, 2)  # any non-ticket event
    mirror.apply(step_settings)
    assert views.apply(note, mirror) == []
    assert views.needs_read
    _, frames = views.load(book_read(11, board_names=True), mirror)
    # Everyone had started: only the state again; the next flush carries the names.
    assert {m["type"] for _, m in decoded(frames)} == {"queue"}
    board = next(m for w, m in decoded(views.flush(mirror)) if w == "board")
    assert board["called"][0]["name"] == "Cy"
