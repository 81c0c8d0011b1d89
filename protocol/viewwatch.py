"""The staff (`watch_queue`) and board (`watch_board`) watchers of one queue, without I/O.

They ride on the queue's watch (`protocol.watch`): the same notices move the line mirror, and
this object keeps a `LineBook` beside it (names, priorities, the called tickets) and decides
what each view watcher gets. Every applied notice marks the views dirty; a flush builds one
`line` and one `board` message from the mirror and the book, encodes each once per codec and
hands it to every view watcher, coalesced like positions (a newer frame replaces an unsent
older one). A change of the queue's state also sends a `queue` message, never replaced.

The book costs one snapshot read (`BookSnapshot`, at some seq) when the first view watcher
comes and after each resync of the queue, never a Redis call per event or per watcher. The
read and the notices race; the book's changes are idempotent and keyed by seq, so a read older
than the mirror is brought forward by replaying the recent notices it missed, and notices older
than the read are skipped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from protocol.codec import Codec
from protocol.connection import Connection, Role
from protocol.line import QUEUE_STATE_AFTER, LineMirror
from protocol.linebook import BookNotice, LineBook
from protocol.messages import QueueState, ServerMessage
from protocol.views import MAX_LINE_TICKETS

W = TypeVar("W", bound=Hashable)

# Events that change the queue's state (an archive closes it): views get a `queue` frame.
STATE_KINDS = frozenset(kind.value for kind in QUEUE_STATE_AFTER)
RECENT_NOTICES = 256  # how far a book read may lag the mirror and still be caught up


@dataclass(frozen=True, slots=True)
class ViewFrames(Generic[W]):
    """Frames for these watchers' outboxes, pairwise; `replaceable` as for positions."""

    watchers: list[W]
    frames: list[bytes]
    replaceable: bool


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """What a read adds for the views, as of (`epoch`, `seq`)."""

    epoch: str
    seq: int
    waiting: tuple[tuple[int, str | None, int], ...]  # (number, name, priority)
    called: tuple[tuple[int, str | None, str | None, int], ...]  # (number, name, counter, at ms)
    board_names: bool


class QueueViews(Generic[W]):
    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.book = LineBook(queue)
        self.loaded = False  # the book follows the mirror
        self.book_seq = -1  # the seq the book reflects
        self._watchers: dict[W, tuple[Role, Connection]] = {}
        self._unstarted: set[W] = set()  # registered, first frames not sent yet
        self._recent: deque[BookNotice] = deque(maxlen=RECENT_NOTICES)
        self._dirty = False

    @property
    def count(self) -> int:
        return len(self._watchers)

    @property
    def watchers(self) -> list[W]:
        return list(self._watchers)

    @property
    def dirty(self) -> bool:
        return self._dirty and bool(self._watchers)

    @property
    def needs_read(self) -> bool:
        """Someone watches and the book does not follow the mirror: read it (`load`)."""
        return not self.loaded and bool(self._watchers)

    def register(self, watcher: W, role: Role, conn: Connection) -> bool:
        """Count a view watcher in; True when the book must be read first (`load`)."""
        self._watchers[watcher] = (role, conn)
        self._unstarted.add(watcher)
        return not self.loaded

    def unregister(self, watcher: W) -> None:
        self._watchers.pop(watcher, None)
        self._unstarted.discard(watcher)

    def invalidate(self) -> bool:
        """The queue was resynced: notices may have been lost. True when a read is needed."""
        self.loaded = False
        self._recent.clear()
        return bool(self._watchers)

    # -- inputs ---------------------------------------------------------------------------------

    def load(self, snapshot: BookSnapshot, mirror: LineMirror) -> tuple[bool, list[ViewFrames[W]]]:
        """Take a book read; (whether to read again, frames for watchers waiting to start)."""
        if snapshot.epoch != mirror.epoch:
            return True, []
        missed = [n for n in self._recent if snapshot.seq < n.seq <= mirror.seq]
        if snapshot.seq < mirror.seq and len(missed) != mirror.seq - snapshot.seq:
            return True, []  # too far behind to catch up from the recent notices
        self.book.reset(snapshot.waiting, snapshot.called, snapshot.board_names)
        self.book_seq = snapshot.seq
        self.loaded = True
        for notice in missed:
            self._follow(notice)
        self._dirty = True
        # Watchers already started may have missed a state change with the notices lost.
        started = [w for w in self._watchers if w not in self._unstarted]
        state = QueueState(self.queue, mirror.state, mirror.seq)
        return False, self._sent(started, state, replaceable=False) + self.start(mirror)

    def apply(self, notice: BookNotice, mirror: LineMirror) -> list[ViewFrames[W]]:
        """Follow a notice the mirror just applied; a state change is told at once (`queue`)."""
        self._recent.append(notice)
        if not self.loaded or not self._watchers:
            return []
        if notice.kind.value == "settings":  # `board_names` may have changed: read again
            self.loaded = False
            return []
        self._follow(notice)
        self._dirty = True
        if notice.kind.value not in STATE_KINDS:
            return []
        message = QueueState(self.queue, mirror.state, mirror.seq)
        return self._sent(list(self._watchers), message, replaceable=False)

    def _follow(self, notice: BookNotice) -> None:
        if notice.seq > self.book_seq:  # older ones are in the read already
            self.book.apply(notice)
            self.book_seq = notice.seq

    # -- outputs --------------------------------------------------------------------------------

    def start(self, mirror: LineMirror) -> list[ViewFrames[W]]:
        """First frames of the watchers registered since the last start: `queue`, then theirs."""
        if not self.loaded or not self._unstarted:
            return []
        new = [w for w in self._unstarted if w in self._watchers]
        self._unstarted.clear()
        state = QueueState(self.queue, mirror.state, mirror.seq)
        return self._sent(new, state, replaceable=False) + self._views(new, mirror)

    def flush(self, mirror: LineMirror) -> list[ViewFrames[W]]:
        """One `line` and one `board` for every started view watcher, if anything changed."""
        if not self._dirty or not self.loaded:
            return []
        self._dirty = False
        started = [w for w in self._watchers if w not in self._unstarted]
        return self._views(started, mirror)

    def _views(self, watchers: list[W], mirror: LineMirror) -> list[ViewFrames[W]]:
        lines = [w for w in watchers if self._watchers[w][0] is Role.LINE]
        boards = [w for w in watchers if self._watchers[w][0] is Role.BOARD]
        out: list[ViewFrames[W]] = []
        if lines:
            order = mirror.numbers[:MAX_LINE_TICKETS]
            line = self.book.line(mirror.state, order, mirror.waiting, mirror.seq)
            out += self._sent(lines, line, replaceable=True)
        if boards:
            board = self.book.board(mirror.state, mirror.waiting, mirror.seq)
            out += self._sent(boards, board, replaceable=True)
        return out

    def _sent(
        self, watchers: list[W], message: ServerMessage, replaceable: bool
    ) -> list[ViewFrames[W]]:
        pairs = ((w, self._watchers[w][1]) for w in watchers)
        sent, frames = encoded(pairs, message)
        return [ViewFrames(sent, frames, replaceable)] if sent else []


def encoded(
    pairs: Iterable[tuple[W, Connection]], message: ServerMessage
) -> tuple[list[W], list[bytes]]:
    """The watchers whose connection takes `message` now, and its frame for each, encoded
    once per codec."""
    cache: dict[Codec, bytes] = {}
    watchers: list[W] = []
    frames: list[bytes] = []
    for watcher, conn in pairs:
        if not conn.outgoing(message):
            continue
        frame = cache.get(conn.codec)
        if frame is None:
            frame = cache[conn.codec] = conn.codec.encode(message)
        watchers.append(watcher)
        frames.append(frame)
    return watchers, frames
