"""The worker's side of the baseline: sockets that only receive what the bare server broadcasts.

They use the same client protocol and the same decoding as the customers' sockets, so the two
sides of every ratio pay the same price on the harness's core.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from typing import Any

import orjson

from loadtest.customer import position_fields
from loadtest.wsclient import HandshakeError, WsClient, open_ws
from protocol.errors import ProtocolError
from protocol.messages import server_message

CONNECT_CONCURRENCY = 200
STORM_WAIT_S = 30.0  # after the last handshake, how long a storm's first frames may take


class BaselineSinks:
    def __init__(self, local_addr: str | None) -> None:
        self.local_addr = local_addr
        self.clients: list[WsClient] = []
        self.seqs: array[int] = array("q")
        self.times: array[float] = array("d")
        self.frames = 0
        self.errors = 0

    def _on_message(self, opcode: int, payload: bytes, now: float) -> None:
        try:
            data = orjson.loads(payload)
            position = position_fields(data)
            if position is None:
                server_message(data)  # not a position: still checked, then ignored
        except (ProtocolError, orjson.JSONDecodeError):
            self.errors += 1
            return
        if position is not None:
            self.frames += 1
            self.seqs.append(position[1])
            self.times.append(now)

    def _on_closed(self, code: int) -> None:
        pass  # the baseline has no reconnects: a lost socket just stops counting

    @property
    def connected(self) -> int:
        return sum(1 for client in self.clients if client.transport is not None)

    async def connect(self, url: str, count: int) -> dict[str, Any]:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        failed = 0

        async def one() -> None:
            nonlocal failed
            async with gate:
                try:
                    client = await open_ws(
                        url, "vq1.json", self._on_message, self._on_closed, self.local_addr
                    )
                except (OSError, TimeoutError, HandshakeError):
                    failed += 1
                    return
                self.clients.append(client)

        await asyncio.gather(*(one() for _ in range(count)))
        return {"connected": len(self.clients), "failed": failed}

    async def storm(self, url: str, count: int) -> dict[str, Any]:
        """`count` sockets connecting all at once, each until its first frame (the one the bare
        server sends at open): when the storm began and when each got it."""
        firsts: list[float] = []
        failed = 0
        target = count
        all_in = asyncio.Event()

        def first(opcode: int, payload: bytes, now: float) -> None:
            firsts.append(now)
            if len(firsts) >= target:
                all_in.set()

        async def one() -> WsClient | None:
            nonlocal failed
            try:
                return await open_ws(url, "vq1.json", first, self._on_closed, self.local_addr)
            except (OSError, TimeoutError, HandshakeError):
                failed += 1
                return None

        started = time.time()
        clients = await asyncio.gather(*(one() for _ in range(count)))
        opened = [c for c in clients if c is not None]
        target = len(opened)
        if len(firsts) < target:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_in.wait(), STORM_WAIT_S)
        for client in opened:
            client.close()
        connects = [c.connected_at for c in opened if c.connected_at is not None]
        return {"t0": started, "firsts": firsts, "failed": failed, "connects": connects}

    async def collect(self) -> dict[str, Any]:
        """Every position frame received: (seq, arrival) as raw arrays."""
        return {
            "seqs": self.seqs.tobytes(),
            "times": self.times.tobytes(),
            "errors": self.errors,
        }

    async def close(self) -> None:
        for client in self.clients:
            client.close()
        self.clients = []
