"""The bare `websockets.broadcast()` server that every vqueue figure is compared with.

The harness starts it in its own process, on the same event loop implementation as vqueue
(uvloop) and, with `--baseline-cpus`, pinned like the server under test. It accepts any number of
sockets, sends each one position frame when it opens (a connect storm's bare reference: vqueue
sends a watcher its position at watch), reads nothing from them, and on command broadcasts a
position frame the size of vqueue's (one encode, one write per socket, no await per socket):
one frame at a time for the push-to-all time, or round after round for a while for the
frames-per-second ceiling.
"""

from __future__ import annotations

import asyncio
import os
import time
from multiprocessing.connection import Connection
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve

from loadtest.pipes import listen

HIGH_WATER_BYTES = 64 * 1024  # pause a burst while sampled sockets hold this much unsent
SAMPLE_SOCKETS = 32


def frame(seq: int, watchers: int) -> bytes:
    """A frame shaped and sized like vqueue's position frames."""
    return orjson.dumps(
        {
            "type": "position",
            "ticket_id": "baseline.10000",
            "position": 5000,
            "waiting": max(watchers, 10000),
            "eta_s": 1234,
            "seq": seq,
        }
    )


class BaselineServer:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sockets: set[ServerConnection] = set()
        self.done = asyncio.Event()

    async def handler(self, websocket: ServerConnection) -> None:
        self.sockets.add(websocket)
        try:
            await websocket.send(frame(0, len(self.sockets)).decode())
            await websocket.wait_closed()
        finally:
            self.sockets.discard(websocket)

    def push(self, seq: int) -> dict[str, Any]:
        message = frame(seq, len(self.sockets)).decode()
        started = time.time()
        broadcast(self.sockets, message)
        return {"t0": started, "sent": len(self.sockets), "call_s": time.time() - started}

    async def burst(self, duration_s: float, first_seq: int) -> dict[str, Any]:
        """Broadcast round after round for `duration_s`, never outrunning the sockets by much."""
        started = time.time()
        seq, written = first_seq, 0
        while time.time() - started < duration_s:
            broadcast(self.sockets, frame(seq, len(self.sockets)).decode())
            written += len(self.sockets)
            seq += 1
            await asyncio.sleep(0)  # let the loop write and read between rounds
            while self._backed_up():  # noqa: ASYNC110 (pacing: no event says a socket drained)
                await asyncio.sleep(0.002)
        return {"t0": started, "t_end": time.time(), "rounds": seq - first_seq, "sent": written}

    def _backed_up(self) -> bool:
        sample = list(self.sockets)[:SAMPLE_SOCKETS]
        return any(ws.transport.get_write_buffer_size() > HIGH_WATER_BYTES for ws in sample)

    async def on_command(self, message: dict[str, Any]) -> None:
        cmd, args = message["cmd"], message.get("args", {})
        result: Any
        if cmd == "count":
            result = len(self.sockets)
        elif cmd == "push":
            result = self.push(**args)
        elif cmd == "burst":
            result = await self.burst(**args)
        elif cmd == "close":
            result = None
        else:
            raise ValueError(f"unknown baseline command {cmd!r}")
        self.conn.send({"id": message["id"], "result": result})
        if cmd == "close":
            self.done.set()


async def _serve(port: int, backlog: int, conn: Connection) -> None:
    server = BaselineServer(conn)
    loop = asyncio.get_running_loop()

    tasks: set[asyncio.Task[None]] = set()

    def on_message(message: dict[str, Any]) -> None:
        task = loop.create_task(server.on_command(message))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async with serve(
        server.handler,
        "127.0.0.1",
        port,
        compression=None,
        ping_interval=None,
        subprotocols=["vq1.json"],  # type: ignore[list-item]
        backlog=backlog,
    ):
        conn.send({"ready": True})
        listen(conn, on_message, server.done.set)
        await server.done.wait()


def baseline_main(port: int, cpus: tuple[int, ...] | None, backlog: int, conn: Connection) -> None:
    """The process entry point."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    uvloop.install()
    asyncio.run(_serve(port, backlog, conn))
