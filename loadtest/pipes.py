"""Reading a `multiprocessing` pipe from an event loop.

`Connection.recv()` blocks until a whole message is in, and `add_reader` would make the pipe
non-blocking under uvloop (a large message then fails half-read), so one daemon thread per pipe
does the blocking reads and hands each message to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any


def listen(
    conn: Connection,
    on_message: Callable[[Any], None],
    on_eof: Callable[[], None],
) -> threading.Thread:
    loop = asyncio.get_running_loop()

    def run() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            try:
                loop.call_soon_threadsafe(on_message, message)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
            loop.call_soon_threadsafe(on_eof)

    thread = threading.Thread(target=run, name="pipe-reader", daemon=True)
    thread.start()
    return thread
