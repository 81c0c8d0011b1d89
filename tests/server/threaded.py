"""A real uvicorn server in a thread, for tests of the WebSocket layer, and what those tests use to
watch it from the test's own loop."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn


@dataclass
class RunningServer:
    server: uvicorn.Server
    thread: threading.Thread
    port: int

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        assert not self.thread.is_alive()


def serve_in_thread(
    app: Any,
    ws: Any = "server.wsprotocol:WebSocketProtocol",
    http: Any = "httptools",
    lifespan: str = "off",
    **options: Any,
) -> RunningServer:
    """uvicorn (uvloop, httptools) on a free port with vqueue's WebSocket protocol by default;
    `http` may be vqueue's own HTTP protocol class (server.httpprotocol), as `vqueue serve` runs;
    `lifespan="on"` for the real app, whose services start with it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        loop="server.listener:new_event_loop",  # as `vqueue serve` runs
        http=http,
        ws=ws,
        lifespan=lifespan,
        log_config=None,
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)  # polls for startup, before any test runs
    return RunningServer(server, thread, sock.getsockname()[1])


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)  # polls the condition, it does not stand in for it


def live_objects(*kinds: type) -> list[str]:
    """The type names of the objects of `kinds` the collector tracks: the live ones, and any
    garbage in reference cycles it has not freed yet."""
    return [t.__name__ for t in map(type, gc.get_objects()) if issubclass(t, kinds)]
