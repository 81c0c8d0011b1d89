"""A fixed micro-workload of the fan-out's hot path, for profiles and instruction counts.

One queue of `--watchers` waiting tickets, one JSON watcher each, every watcher on vqueue's own
WebSocket protocol (`server.wsprotocol`) over a stand-in transport whose methods are C builtins
(its `write` drops the bytes): what is left is the Python cost of turning a notice into frames
on the wire, without the syscall that a real socket adds to every frame. Each round applies one
call-next (everyone moves up one), then flushes through `Fanout._run` exactly as a node does.
It prints the cost per frame, and apart the flush's computing of the frames and their writing.

With `--scattered` the watchers are built in a random order, each among other objects of many
sizes, half of which are then freed: the layout a node's connects leave behind, where each
object a frame touches lies apart from the last. Built in a row, they lie side by side in memory
and the figure is the interpreter's cost alone (BENCHMARKS.md, Profile, "Where the objects lie").

Run: python -m server.bench_flush [--watchers 10000] [--rounds 20] [--scattered] [--profile]
     valgrind --tool=callgrind python -m server.bench_flush --rounds 2   (instructions)
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import random
import time
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from protocol.codec import Codec
from protocol.connection import Connection
from protocol.line import EventKind, Notice, Snapshot
from protocol.ticket import TicketView
from protocol.watch import FlushAt, QueueWatch
from server.app import GC_THRESHOLDS
from server.config import Settings
from server.fanout import Fanout, Watcher, _Queue
from server.outbox import SENT, ChannelOutbox, use_c_loop
from server.ticketreads import TicketReads
from server.wsprotocol import Phase, PushChannel, WebSocketProtocol

QUEUE = "bench-flush"


class NullTransport(io.BytesIO):
    """An open transport that takes every write at once. As uvloop's, its `write` is a C method
    of its type that copies the frame into a buffer of its own (it keeps them: a few KiB per
    watcher over a run), it has no instance dict, and its other hot methods are C builtins."""

    __slots__ = ("get_write_buffer_size", "is_closing")

    def __init__(self) -> None:
        super().__init__()
        self.get_write_buffer_size = (0).__index__
        self.is_closing = False.__bool__

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass  # it never holds anything: writing never pauses

    def set_protocol(self, protocol: Any) -> None:
        pass


class _NoStore:
    def notices(self, deliver: object) -> None:
        return None


async def _no_reads(numbers: list[int]) -> list[TicketView | None]:
    return [None] * len(numbers)


async def _app(scope: Any, receive: Any, send: Any) -> None:
    pass


_SCATTERS: list[Scatter] = []


class Scatter:
    """What else a node allocates while watchers connect: objects of many sizes between one
    watcher's and the next (request heads, scopes, buffers), half of them gone by the flushes."""

    OBJECTS_PER_WATCHER = 60

    def __init__(self) -> None:
        self._random = random.Random(1)  # the same layout every run
        self.kept: list[object] = []  # what else was allocated, and is still alive

    def order(self, numbers: tuple[int, ...]) -> list[int]:
        """Connects come in any order: a reconnect storm shuffles them."""
        shuffled = list(numbers)
        self._random.shuffle(shuffled)
        return shuffled

    def allocate(self) -> None:
        rnd = self._random
        for k in range(self.OBJECTS_PER_WATCHER):
            size = rnd.randrange(8, 400)
            self.kept.append((bytes(size), [k], {"k": k}, (k, size), object(), "x" * (size // 8)))

    def free_half(self) -> None:
        for i in self._random.sample(range(len(self.kept)), len(self.kept) // 2):
            self.kept[i] = None


def build(watchers: int, scattered: bool = False) -> tuple[Fanout, _Queue]:
    """A fan-out with one live queue of `watchers` tickets, each watched by one connection
    (`scattered`: built in a random order among other objects, as `Scatter` describes)."""
    fanout = Fanout(_NoStore(), flush_ms=0.0, stuck_close_s=10.0, check_s=0.0)  # type: ignore[arg-type]
    watch: QueueWatch[Watcher] = QueueWatch(QUEUE, 0.0)
    q = _Queue(QUEUE, watch, TicketReads(_no_reads))
    fanout.queues[QUEUE] = q
    numbers = tuple(range(1, watchers + 1))
    watch.receive_snapshot(Snapshot("e1", 1, "open", numbers), {}, time.time())
    config = Config(app=_app, ws="none", lifespan="off")
    state = ServerState()
    scatter = Scatter() if scattered else None
    for in_line in scatter.order(numbers) if scatter else numbers:
        number = in_line
        if scatter is not None:
            scatter.allocate()
            number = int(str(in_line))  # a node parses each number: not the line's int object
        ws = WebSocketProtocol(config, state, {}, _loop=object())  # type: ignore[arg-type]
        ws.connection_made(NullTransport())  # type: ignore[arg-type]
        ws.phase = Phase.OPEN
        outbox = ChannelOutbox(PushChannel(ws), True, fanout.sweeper.backlogged)
        watcher = Watcher(QUEUE, number, Connection(Codec.JSON), outbox, lambda: None)
        watch.register(watcher, number, watcher.conn)
    if scatter is not None:
        scatter.free_half()
        _SCATTERS.append(scatter)  # its objects live on, as a node's other connections do
    return fanout, q


def one_round(fanout: Fanout, q: _Queue, seq: int, head: int, waiting: int) -> tuple[float, float]:
    """A call-next of ticket `head`, then the flush that tells everyone behind it, in
    `Fanout._flush`'s two steps; returns the seconds spent computing the frames and writing them."""
    notice = Notice("e1", seq, EventKind.CALLED, head, waiting, "1", int(time.time() * 1000))
    actions = q.watch.receive_notice(notice, time.time())
    # The flush runs now instead of from a timer (there is no event loop here).
    fanout._run(q, [a for a in actions if not isinstance(a, FlushAt)])
    started = time.perf_counter()
    flushed = q.watch.flush(time.time())
    computed = time.perf_counter()
    fanout._write_flush(q, flushed)
    return computed - started, time.perf_counter() - computed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.bench_flush", description=__doc__)
    parser.add_argument("--watchers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--scattered", action="store_true", help="a node's layout (see above)")
    parser.add_argument("--profile", action="store_true", help="cProfile the rounds")
    args = parser.parse_args(argv)
    use_c_loop(not Settings.from_environ().pure_python)  # VQ_PURE_PYTHON, as a node reads it
    fanout, q = build(args.watchers, args.scattered)
    # As a node runs (server.app): what start-up built is frozen, young passes are rare.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    profiler = cProfile.Profile() if args.profile else None
    sent = SENT.value
    cpu = time.process_time()
    if profiler is not None:
        profiler.enable()
    computing = writing = 0.0
    for r in range(args.rounds):
        compute_s, write_s = one_round(fanout, q, 2 + r, 1 + r, args.watchers - 1 - r)
        computing += compute_s
        writing += write_s
    if profiler is not None:
        profiler.disable()
    cpu = time.process_time() - cpu
    frames = SENT.value - sent
    print(
        f"{frames} frames in {cpu:.3f} CPU-s: {cpu / frames * 1e6:.2f} us per frame "
        f"(computing {computing / frames * 1e6:.2f}, writing {writing / frames * 1e6:.2f})"
    )
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
