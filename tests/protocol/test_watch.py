"""The per-queue watch state machine, driven by tables: no event loop, no sockets, no Redis.

A `Node` plays the driver: it feeds inputs, decodes every frame each watcher is sent, and keeps
the actions it was asked for. Times are plain numbers.
"""

from __future__ import annotations

import gc
import itertools
import weakref
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.codec import Codec
from protocol.connection import Connection
from protocol.line import EventKind, Notice, Snapshot
from protocol.ticket import TicketView
from protocol.watch import (
    Action,
    End,
    FlushAt,
    Follow,
    Frames,
    Phase,
    QueueWatch,
    Quote,
    ReadBook,
    Reconnect,
    Resync,
    ResyncReason,
)

E = EventKind
FLUSH_S = 0.05


def notice(
    seq: int, kind: EventKind, number: int | None, waiting: int, epoch: str = "e1"
) -> Notice:
    return Notice(epoch, seq, kind, number, waiting, "desk 1" if kind is E.CALLED else None)


def snap(seq: int, numbers: tuple[int, ...], epoch: str = "e1", state: str = "open") -> Snapshot:
    return Snapshot(epoch, seq, state, numbers)


def view(
    number: int,
    seq: int,
    line: tuple[int, ...],
    status: str = "waiting",
    epoch: str = "e1",
    counter: str | None = None,
) -> TicketView:
    """A ticket read from Redis at `seq`, when the line was `line`."""
    rank = line.index(number) if number in line else None
    return TicketView(
        number=number,
        status=status,
        name=None,
        nonce="n",
        counter=counter,
        joined_ms=0,
        called_ms=None,
        position=None if rank is None or status != "waiting" else rank + 1,
        waiting=len(line),
        seq=seq,
        epoch=epoch,
        queue_state="open",
    )


@dataclass
class Node:
    """The watch plus a recording driver."""

    watch: QueueWatch[int] = field(default_factory=lambda: QueueWatch("q", FLUSH_S))
    numbers: dict[int, int] = field(default_factory=dict)  # watcher -> ticket number
    sent: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    states: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # `queue` messages
    follows: list[Follow[int]] = field(default_factory=list)
    book_reads: list[ReadBook] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    resyncs: list[Resync] = field(default_factory=list)
    flushes: list[float] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)
    reconnects: list[Reconnect[int]] = field(default_factory=list)
    now: float = 100.0

    def run(self, actions: list[Action[int]]) -> list[Action[int]]:
        for action in actions:
            if isinstance(action, Frames):
                for w, frame in zip(action.watchers, action.frames, strict=True):
                    message = orjson.loads(frame)
                    kept = self.states if message["type"] == "queue" else self.sent
                    kept.setdefault(w, []).append(message)
            elif isinstance(action, End):
                self.ended.append(action.watcher)
            elif isinstance(action, Resync):
                self.resyncs.append(action)
            elif isinstance(action, FlushAt):
                self.flushes.append(action.at_s)
            elif isinstance(action, Follow):
                self.follows.append(action)
            elif isinstance(action, ReadBook):
                self.book_reads.append(action)
            elif isinstance(action, Reconnect):
                self.reconnects.append(action)
            else:
                self.quotes.append(action)
        return actions

    def live(self, line: tuple[int, ...], seq: int = 10, epoch: str = "e1") -> None:
        self.run(self.watch.resubscribed())
        self.snapshot(snap(seq, line, epoch))

    def register(self, w: int, number: int) -> None:
        self.numbers[w] = number
        self.sent[w] = []
        self.watch.register(w, number, Connection(Codec.JSON))

    def start(self, w: int, v: TicketView) -> None:
        self.run(self.watch.start(w, v, self.now))

    def watch_ticket(self, w: int, number: int, seq: int, line: tuple[int, ...]) -> None:
        self.register(w, number)
        self.start(w, view(number, seq, line))

    def notice(self, n: Notice) -> list[Action[int]]:
        return self.run(self.watch.receive_notice(n, self.now))

    def snapshot(self, s: Snapshot | None, views: dict[int, TicketView] | None = None) -> None:
        self.run(self.watch.receive_snapshot(s, views or {}, self.now))

    def flush(self) -> None:
        self.now += 1.0  # past any coalescing delay
        self.flushes.clear()
        self.run(self.watch.flush(self.now))

    def shown(self, w: int) -> int | str | None:
        """What watcher `w` shows now: its last position, or the last event's kind."""
        for message in reversed(self.sent[w]):
            if message["type"] == "position":
                return int(message["position"])
            return str(message.get("status") or message["type"])
        return None


# -- the registration race ---
#
# A watcher of ticket 5 in line (1..5) at seq 10, while ticket 1 is called (seq 11). Three things
# happen in some order on the node: the watcher registers, its ticket read comes back (taken in
# Redis before or after the call), the call's notice is applied; `start` comes last of the first
# two. Whatever the order, the watcher must end up showing 4.

LINE = (1, 2, 3, 4, 5)
AFTER = (2, 3, 4, 5)
ORDERS = [
    order
    for order in itertools.permutations(("register", "start", "notice"))
    if order.index("register") < order.index("start")
]


@pytest.mark.parametrize("read_after_call", [False, True])
@pytest.mark.parametrize("order", ORDERS, ids="-".join)
def test_a_watcher_registering_during_a_call_ends_exact(
    order: tuple[str, ...], read_after_call: bool
) -> None:
    node = Node()
    node.live(LINE)
    v = view(5, 11, AFTER) if read_after_call else view(5, 10, LINE)
    for step in order:
        if step == "register":
            node.register(7, 5)
        elif step == "start":
            node.start(7, v)
        else:
            node.notice(notice(11, E.CALLED, 1, 4))
    node.flush()
    assert node.shown(7) == 4
    seqs = [m["seq"] for m in node.sent[7]]
    assert seqs == sorted(seqs)


def test_the_first_state_of_a_read_older_than_the_mirror_comes_from_the_mirror() -> None:
    node = Node()
    node.live(LINE)
    node.register(7, 5)
    node.notice(notice(11, E.CALLED, 1, 4))
    node.start(7, view(5, 10, LINE))  # read before the call, started after it was applied
    assert node.sent[7][0] == {
        "type": "position",
        "ticket_id": "q.5",
        "position": 4,
        "waiting": 4,
        "eta_s": None,
        "seq": 11,
    }


def test_a_ticket_called_before_its_watcher_came_is_told_when_the_mirror_is_past_the_read() -> None:
    node = Node()
    node.live(LINE)
    node.notice(notice(11, E.CALLED, 1, 4))  # before the watcher registers
    node.register(7, 1)
    called = view(1, 11, AFTER, "called", counter="desk 1")  # read at 11
    node.notice(notice(12, E.CALLED, 2, 3))  # the mirror moves past the read
    node.start(7, called)
    assert node.shown(7) == "called"


def test_a_read_of_a_called_ticket_older_than_its_called_frame_sends_nothing_stale() -> None:
    node = Node()
    node.live(LINE)
    node.register(7, 1)
    node.notice(notice(11, E.CALLED, 1, 4))
    node.start(7, view(1, 10, LINE))
    node.flush()
    assert [m["type"] for m in node.sent[7]] == ["called"]


# -- first states ---

START_TABLE = [
    # status, counter, expected kinds, ended
    ("waiting", None, ["position"], False),
    ("called", "desk 2", ["called"], False),
    ("served", None, ["status"], True),
    ("no_show", None, ["status"], False),  # kept watching: a requeue may follow
    ("left", None, ["status"], True),
    ("removed", None, ["status"], True),
    ("transferred", None, ["status"], False),  # followed (Follow), then ended by the driver
]


@pytest.mark.parametrize(("status", "counter", "kinds", "ended"), START_TABLE)
def test_first_state(status: str, counter: str | None, kinds: list[str], ended: bool) -> None:
    node = Node()
    node.live(LINE if status == "waiting" else (2, 3))
    node.register(7, 1)
    node.start(7, view(1, 10, LINE if status == "waiting" else (2, 3), status, counter=counter))
    assert [m["type"] for m in node.sent[7]] == kinds
    assert (node.ended == [7]) is ended


def test_a_watcher_may_start_before_the_first_snapshot() -> None:
    node = Node()
    node.run(node.watch.resubscribed())
    node.watch_ticket(7, 3, 12, (3, 4))  # Redis is at 12; the snapshot under way was read at 10
    node.notice(notice(11, E.CALLED, 1, 3))  # arrives before the snapshot: kept for later
    node.snapshot(snap(10, (1, 2, 3, 4)))
    node.notice(notice(12, E.CALLED, 2, 2))
    node.notice(notice(13, E.CALLED, 3, 1))
    node.flush()
    assert node.shown(7) == "called"
    assert [m["seq"] for m in node.sent[7]] == [12, 13]


# -- notices ---

NOTICE_TABLE = [
    # what happens, who is moved (watchers of 2, 4 and 6 in line 1..6)
    (notice(11, E.JOINED, 7, 7), {}),  # a join at the tail moves nobody
    (notice(11, E.LEFT, 3, 5), {4: 3, 6: 5}),
    (notice(11, E.CALLED, 1, 5), {2: 1, 4: 3, 6: 5}),
    (notice(11, E.LEFT, 6, 5), {6: "left"}),
    (notice(11, E.CALLED, 2, 5), {2: "called", 4: 3, 6: 5}),
]


@pytest.mark.parametrize(("event", "moved"), NOTICE_TABLE)
def test_a_notice_moves_exactly_the_watchers_it_moves(event: Notice, moved: dict[int, Any]) -> None:
    node = Node()
    node.live((1, 2, 3, 4, 5, 6))
    for number in (2, 4, 6):
        node.watch_ticket(number, number, 10, (1, 2, 3, 4, 5, 6))
    before = {w: len(node.sent[w]) for w in node.sent}
    node.notice(event)
    node.flush()
    changed = {w: node.shown(w) for w in node.sent if len(node.sent[w]) > before[w]}
    assert changed == moved


@pytest.mark.parametrize("left", [(1, 4), (4, 1)])  # the front one first, or the back one
def test_notices_coalesced_into_one_flush_move_everyone_either_moved(left: tuple[int, int]) -> None:
    """Each removal marks the watchers behind it; the flush after both tells everyone behind
    either of them, not only those behind the last."""
    node = Node()
    line = (1, 2, 3, 4, 5, 6)
    node.live(line)
    for number in (2, 3, 5, 6):
        node.watch_ticket(number, number, 10, line)
    node.notice(notice(11, E.LEFT, left[0], 5))
    node.notice(notice(12, E.LEFT, left[1], 4))
    node.flush()
    assert {w: node.shown(w) for w in (2, 3, 5, 6)} == {2: 1, 3: 2, 5: 3, 6: 4}


# Each step: watcher w (of 0..5) watches ticket 4 + w % 3, or leaves; several share a ticket.
COMINGS_AND_GOINGS = st.lists(st.tuples(st.booleans(), st.integers(0, 5)), max_size=24)


@given(COMINGS_AND_GOINGS)
def test_a_flush_reaches_exactly_the_watchers_registered_now(steps: list[tuple[bool, int]]) -> None:
    """Alone on a ticket or beside others, joined and left in any order: each call moves
    every watcher there is and no watcher that left."""
    node = Node()
    line = (1, 2, 3, 4, 5, 6)
    node.live(line)
    here: set[int] = set()
    seq, calls = 10, 0
    for comes, w in steps:
        if comes:
            node.register(w, 4 + w % 3)  # tickets 4, 5, 6: moved by every call below
            here.add(w)
        else:
            node.watch.unregister(w, 4 + w % 3)
            here.discard(w)
        seq, calls = seq + 1, calls + 1
        node.notice(notice(seq, E.CALLED, line[calls - 1], len(line) - calls))
        before = {v: len(node.sent.get(v, [])) for v in range(6)}
        node.flush()
        moved = {v for v in range(6) if len(node.sent.get(v, [])) > before[v]}
        assert moved == here
        if calls == 3:  # tickets 1-3 called: the line starts over (a snapshot at this seq)
            node.snapshot(snap(seq, line))
            calls = 0


def test_the_watch_keeps_no_watcher_that_left() -> None:
    """A node lives for weeks of watchers: one that left must be free to go (no leak)."""

    class Watcher:
        pass

    watch: QueueWatch[Watcher] = QueueWatch("q", FLUSH_S)
    watchers = [Watcher() for _ in range(5)]  # tickets 1 and 2 shared, ticket 3 alone
    for i, w in enumerate(watchers):
        watch.register(w, 1 + i % 3, Connection(Codec.JSON))
    gone = [weakref.ref(w) for w in watchers]
    for i, w in enumerate(watchers):
        watch.unregister(w, 1 + i % 3)
    del watchers, w
    assert [ref() for ref in gone] == [None] * 5
    assert watch.idle


def test_a_connection_holds_its_lone_watcher_only_while_it_is_alone() -> None:
    """`Connection.peer` names a ticket's lone watcher for the flush. A node's watcher holds
    its connection too, so the watch must cut the link whenever the watcher stops being alone:
    then it goes by reference counting, not left in a cycle for the collector."""

    class Watcher:
        def __init__(self) -> None:
            self.conn = Connection(Codec.JSON)

    watch: QueueWatch[Watcher] = QueueWatch("q", FLUSH_S)
    first, second = Watcher(), Watcher()
    watch.register(first, 1, first.conn)
    assert first.conn.peer is first
    watch.register(second, 1, second.conn)  # two on ticket 1: neither is alone
    assert (first.conn.peer, second.conn.peer) == (None, None)
    watch.unregister(second, 1)
    assert (first.conn.peer, second.conn.peer) == (first, None)
    gone = weakref.ref(first)
    gc.disable()
    try:
        watch.unregister(first, 1)
        del first
        assert gone() is None
    finally:
        gc.enable()


def test_a_call_reaches_every_connection_of_the_ticket_at_once() -> None:
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 1, 10, LINE)
    node.watch_ticket(8, 1, 10, LINE)
    actions = node.notice(notice(11, E.CALLED, 1, 4))
    assert isinstance(actions[0], Frames)  # before any flush
    assert node.shown(7) == node.shown(8) == "called"
    assert node.ended == []


def test_a_finished_ticket_is_told_and_ended() -> None:
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 3, 10, LINE)
    node.notice(notice(11, E.LEFT, 3, 4))
    assert node.shown(7) == "left"
    assert node.ended == [7]


def test_a_state_change_refreshes_every_watcher() -> None:
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 3, 10, LINE)
    node.notice(notice(11, E.PAUSED, None, 5))
    node.flush()
    assert node.sent[7][-1]["seq"] == 11


def test_stale_notices_are_ignored() -> None:
    node = Node()
    node.live(LINE, seq=10)
    node.watch_ticket(7, 3, 10, LINE)
    assert node.notice(notice(9, E.CALLED, 1, 4)) == []
    node.flush()
    assert node.shown(7) == 3


# -- gaps, epochs, resubscribes, drift ---


def test_a_gap_resyncs_and_the_snapshot_corrects_every_watcher() -> None:
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 5, 10, LINE)
    # seq 11 (ticket 1 called) is lost; seq 12 (ticket 2 called) arrives
    node.notice(notice(12, E.CALLED, 2, 3))
    assert node.resyncs[-1] == Resync(ResyncReason.GAP)
    assert node.watch.phase is Phase.RESYNCING
    node.notice(notice(13, E.CALLED, 3, 2))  # waits for the snapshot
    node.snapshot(snap(12, (3, 4, 5)))
    node.flush()
    assert node.shown(7) == 2
    assert [m["seq"] for m in node.sent[7]] == [10, 13]


LOST_TABLE = [
    # lost notices the line's length cannot reveal, then the one that arrives
    ([notice(11, E.JOINED, 6, 6), notice(12, E.LEFT, 2, 5)], notice(13, E.CALLED, 1, 4)),
    ([notice(11, E.PAUSED, None, 5)], notice(12, E.RESUMED, None, 5)),
]


@pytest.mark.parametrize(("lost", "arrives"), LOST_TABLE)
def test_a_gap_is_seen_by_seq_even_when_the_line_length_agrees(
    lost: list[Notice], arrives: Notice
) -> None:
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 5, 10, LINE)
    node.notice(arrives)
    assert node.resyncs[-1] == Resync(ResyncReason.GAP)
    assert node.watch.mirror is not None and node.watch.mirror.seq == 10


def test_a_new_epoch_resyncs() -> None:
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 5, 10, LINE)
    node.notice(notice(1, E.CALLED, 1, 4, epoch="e2"))
    assert node.resyncs[-1] == Resync(ResyncReason.EPOCH)


def test_the_first_subscribe_is_an_initial_resync_and_later_ones_are_resubscribes() -> None:
    node = Node()
    node.live(LINE)
    node.run(node.watch.resubscribed())
    assert [r.reason for r in node.resyncs] == [ResyncReason.INITIAL, ResyncReason.RESUBSCRIBE]


def test_a_resubscribe_during_a_resync_reads_once_more() -> None:
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 5, 10, LINE)
    node.run(node.watch.resubscribed())  # snapshot A requested
    node.run(node.watch.resubscribed())  # lost notices again while A is read
    assert len(node.resyncs) == 2  # INITIAL, then one RESUBSCRIBE: A is still under way
    node.snapshot(snap(11, AFTER))  # A, read before the second loss
    assert node.resyncs[-1] == Resync(ResyncReason.RESUBSCRIBE)
    node.snapshot(snap(12, (3, 4, 5)))
    node.flush()
    assert node.shown(7) == 3


def test_lost_last_notices_are_caught_by_the_drift_check_on_its_second_look() -> None:
    node = Node()
    node.live(LINE)
    assert node.run(node.watch.check("e1", 11)) == []  # maybe in flight
    assert node.run(node.watch.check("e1", 11)) == [Resync(ResyncReason.DRIFT)]


def test_a_notice_in_flight_is_not_drift() -> None:
    node = Node()
    node.live(LINE)
    node.run(node.watch.check("e1", 11))
    node.notice(notice(11, E.CALLED, 1, 4))
    assert node.run(node.watch.check("e1", 11)) == []
    assert node.resyncs == [Resync(ResyncReason.INITIAL)]


def test_a_node_catching_up_under_load_is_not_drift() -> None:
    node = Node()
    node.live(LINE)  # seq 10
    node.run(node.watch.check("e1", 13))  # 11, 12 and 13 in flight
    node.notice(notice(11, E.CALLED, 1, 4))
    node.notice(notice(12, E.CALLED, 2, 3))  # moving, but still behind 13
    assert node.run(node.watch.check("e1", 14)) == []
    assert node.run(node.watch.check("e1", 14)) == [Resync(ResyncReason.DRIFT)]  # then stalled


def test_redis_back_behind_what_was_shown_lets_every_watcher_start_over() -> None:
    """Redis restarted from its append-only file without its last writes (calls 11 and 12,
    whose notices went out), and the next change reuses seq 11. A connection never goes back
    in seq, so no frame could show these watchers the truth: they are let go (1012), and a
    watcher that comes back on a new connection is exact."""
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 5, 10, LINE)
    node.watch_ticket(8, 1, 10, LINE)
    node.notice(notice(11, E.CALLED, 1, 4))
    node.notice(notice(12, E.CALLED, 2, 3))
    node.flush()
    assert (node.shown(7), node.shown(8)) == (3, "called")
    node.run(node.watch.resubscribed())  # Redis is back, at seq 10
    node.notice(notice(11, E.CALLED, 1, 4))  # staff call ticket 1 again: seq 11 is reused
    before = {w: len(node.sent[w]) for w in (7, 8)}
    node.snapshot(snap(11, AFTER), {1: view(1, 11, AFTER, "called", counter="desk 1")})
    assert [sorted(r.watchers) for r in node.reconnects] == [[7, 8]]
    node.flush()
    assert {w: len(node.sent[w]) for w in (7, 8)} == before  # nothing more on old connections
    assert node.watch.idle
    assert node.watch.mirror is not None and node.watch.mirror.watched == set()
    node.watch_ticket(9, 5, 11, AFTER)  # watcher 7, back on a new connection
    node.notice(notice(12, E.CALLED, 2, 3))
    node.flush()
    assert node.shown(9) == 3


def test_a_snapshot_at_or_after_the_mirror_lets_nobody_go() -> None:
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 5, 10, LINE)
    node.run(node.watch.resubscribed())
    node.snapshot(snap(10, LINE))
    node.run(node.watch.resubscribed())
    node.snapshot(snap(11, AFTER))
    assert node.reconnects == []
    node.flush()
    assert node.shown(7) == 4


def test_a_leave_during_a_resync_sends_it_nothing() -> None:
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 5, 10, LINE)
    node.notice(notice(12, E.CALLED, 2, 3))  # gap
    sent = len(node.sent[7])
    node.watch.unregister(7, 5)
    node.snapshot(snap(12, (3, 4, 5)), {5: view(5, 12, (3, 4, 5))})
    node.flush()
    assert len(node.sent[7]) == sent
    assert node.watch.idle


def test_a_snapshot_tells_tickets_finished_meanwhile() -> None:
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 1, 10, LINE)
    node.watch_ticket(8, 2, 10, LINE)
    node.notice(notice(13, E.LEFT, 4, 2))  # gap: 11 and 12 lost
    node.snapshot(
        snap(13, (3, 5)),
        {1: view(1, 13, (3, 5), "served"), 2: view(2, 13, (3, 5), "called", counter="desk 2")},
    )
    assert node.shown(7) == "served"
    assert node.shown(8) == "called"
    assert node.ended == [7]


def test_a_missing_queue_is_looked_for_again_later() -> None:
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 5, 10, LINE)
    node.notice(notice(1, E.JOINED, 6, 1, epoch="e2"))
    node.snapshot(None)
    assert node.resyncs[-1].reason is ResyncReason.MISSING
    assert node.resyncs[-1].delay_s > 0


def test_no_flush_while_resyncing() -> None:
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 5, 10, LINE)
    node.notice(notice(12, E.CALLED, 2, 3))
    assert node.run(node.watch.flush(node.now + 1)) == []


# -- flushing and quotes ---


def test_flushes_are_leading_edge_then_coalesced() -> None:
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 5, 10, LINE)
    node.notice(notice(11, E.CALLED, 1, 4))
    assert node.flushes == [node.now]  # an isolated change goes out at once
    node.run(node.watch.flush(node.now))
    node.notice(notice(12, E.CALLED, 2, 3))
    node.notice(notice(13, E.CALLED, 3, 2))
    assert node.flushes[-1] == pytest.approx(node.now + FLUSH_S)  # a burst waits
    node.run(node.watch.flush(node.now + FLUSH_S))
    assert [m["position"] for m in node.sent[7]] == [5, 4, 2]  # one frame for the burst


def test_each_ticket_is_quoted_once() -> None:
    node = Node()
    node.watch.eta.seed(60.0, 10, node.now)
    node.live(LINE)
    node.watch_ticket(7, 5, 10, LINE)
    node.watch_ticket(8, 5, 10, LINE)
    node.notice(notice(11, E.LEFT, 2, 4))
    node.flush()
    assert [(q.number, q.position) for q in node.quotes] == [(5, 5)]


def test_a_ticket_first_quoted_by_a_flush_is_not_quoted_again() -> None:
    node = Node()
    node.live(tuple(range(1, 31)))
    node.watch_ticket(7, 20, 10, tuple(range(1, 31)))  # no estimate yet: no quote at its start
    for seq, number in enumerate(range(1, 6), start=11):  # calls a minute apart make one
        node.now += 60.0
        node.notice(Notice("e1", seq, E.CALLED, number, 30 - number, None, int(node.now * 1000)))
        node.flush()
    assert [q.number for q in node.quotes] == [20]
    assert node.sent[7][-1]["eta_s"] is not None


def test_a_closed_connection_is_sent_no_position() -> None:
    node = Node()
    node.live(LINE)
    node.watch_ticket(7, 4, 10, LINE)
    closing = Connection(Codec.JSON)  # a lone JSON watcher, as almost every one is
    node.sent[8] = []
    node.watch.register(8, 5, closing)
    node.start(8, view(5, 10, LINE))
    closing.closed()
    node.notice(notice(11, E.CALLED, 1, 4))
    node.flush()
    assert node.shown(7) == 3
    assert [m["position"] for m in node.sent[8]] == [5]  # only the one from before it closed


def test_a_ten_minute_pause_does_not_stretch_the_wait_estimate() -> None:
    """Calls every 60 s, then a 10-minute pause: after the resume, position 5 still reads about
    5 minutes, not 15 (the paused time is not service time)."""
    node = Node()
    node.live(tuple(range(1, 31)))
    node.watch_ticket(7, 20, 10, tuple(range(1, 31)))
    seq, t = 10, node.now
    for number in range(1, 6):  # five calls, a minute apart
        seq, t = seq + 1, t + 60.0
        node.now = t
        node.notice(Notice("e1", seq, E.CALLED, number, 30 - number, None, int(t * 1000)))
    node.flush()
    before = node.sent[7][-1]["eta_s"]
    seq, t = seq + 1, t + 1.0
    node.now = t
    node.notice(Notice("e1", seq, E.PAUSED, None, 25, None, int(t * 1000)))
    seq, t = seq + 1, t + 600.0
    node.now = t
    node.notice(Notice("e1", seq, E.RESUMED, None, 25, None, int(t * 1000)))
    node.run(node.watch.flush(t))
    after = node.sent[7][-1]["eta_s"]
    assert before is not None and after is not None
    assert abs(after - before) <= 0.2 * before, (before, after)
