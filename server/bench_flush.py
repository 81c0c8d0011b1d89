"""A fixed micro-workload of the fan-out's hot path, for profiles and instruction counts.

One queue of `--watchers` waiting tickets, one JSON watcher each, every watcher on vqueue's own
WebSocket protocol (`server.wsprotocol`) over a stand-in transport whose methods are C builtins
(its `write` drops the bytes): what is left is the Python cost of turning a notice into frames
on the wire, without the syscall that a real socket adds to every frame. Each round applies one
call-next (everyone moves up one), then flushes through `Fanout._run` exactly as a node does.

Run: python -m server.bench_flush [--watchers 10000] [--rounds 20] [--profile]
     valgrind --tool=callgrind python -m server.bench_flush --rounds 2   (instructions)
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time
from collections import deque
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from protocol.codec import Codec
from protocol.connection import Connection
from protocol.line import EventKind, Notice, Snapshot
from protocol.ticket import TicketView
from protocol.watch import FlushAt, QueueWatch
from server.app import GC_THRESHOLDS
from server.fanout import Fanout, Watcher, _Queue
from server.outbox import SENT, ChannelOutbox
from server.ticketreads import TicketReads
from server.wsprotocol import Phase, PushChannel, WebSocketProtocol

QUEUE = "bench-flush"


class NullTransport:
    """An open transport that takes every write at once; its hot methods are C builtins."""

    def __init__(self) -> None:
        dropped: deque[bytes] = deque(maxlen=0)
        self.write = dropped.append  # keeps nothing
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


def build(watchers: int) -> tuple[Fanout, _Queue]:
    """A fan-out with one live queue of `watchers` tickets, each watched by one connection."""
    fanout = Fanout(_NoStore(), flush_ms=0.0, stuck_close_s=10.0, check_s=0.0)  # type: ignore[arg-type]
    watch: QueueWatch[Watcher] = QueueWatch(QUEUE, 0.0)
    q = _Queue(QUEUE, watch, TicketReads(_no_reads))
    fanout.queues[QUEUE] = q
    numbers = tuple(range(1, watchers + 1))
    watch.receive_snapshot(Snapshot("e1", 1, "open", numbers), {}, time.time())
    config = Config(app=_app, ws="none", lifespan="off")
    state = ServerState()
    for number in numbers:
        ws = WebSocketProtocol(config, state, {}, _loop=object())  # type: ignore[arg-type]
        ws.connection_made(NullTransport())  # type: ignore[arg-type]
        ws.phase = Phase.OPEN
        outbox = ChannelOutbox(PushChannel(ws), True, fanout.sweeper.backlogged)
        watcher = Watcher(QUEUE, number, Connection(Codec.JSON), outbox, lambda: None)
        watch.register(watcher, number, watcher.conn)
    return fanout, q


def one_round(fanout: Fanout, q: _Queue, seq: int, head: int, waiting: int) -> None:
    """A call-next of ticket `head`, then the flush that tells everyone behind it."""
    notice = Notice("e1", seq, EventKind.CALLED, head, waiting, "1", int(time.time() * 1000))
    actions = q.watch.receive_notice(notice, time.time())
    # The flush runs now instead of from a timer (there is no event loop here).
    fanout._run(q, [a for a in actions if not isinstance(a, FlushAt)])
    fanout._flush(q)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.bench_flush", description=__doc__)
    parser.add_argument("--watchers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="cProfile the rounds")
    args = parser.parse_args(argv)
    fanout, q = build(args.watchers)
    # As a node runs (server.app): what start-up built is frozen, young passes are rare.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    profiler = cProfile.Profile() if args.profile else None
    sent = SENT.value
    cpu = time.process_time()
    if profiler is not None:
        profiler.enable()
    for r in range(args.rounds):
        one_round(fanout, q, 2 + r, 1 + r, args.watchers - 1 - r)
    if profiler is not None:
        profiler.disable()
    cpu = time.process_time() - cpu
    frames = SENT.value - sent
    print(f"{frames} frames in {cpu:.3f} CPU-s: {cpu / frames * 1e6:.2f} us per frame")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
