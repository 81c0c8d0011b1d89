"""An outbox for in-process fan-out tests: it takes every frame and keeps it to be read."""

from __future__ import annotations

import time

import orjson

from server.outbox import Outbox


class Frames(Outbox):
    """The outbox of a socket that takes every frame (after `delay_s` each: a slow write)."""

    def __init__(self) -> None:
        super().__init__(True, lambda _: None)
        self.frames: list[bytes] = []
        self.delay_s = 0.0

    def _try_write(self, frame: bytes) -> bool:
        time.sleep(self.delay_s)
        self.frames.append(frame)
        return True

    def _drop(self) -> None:
        self.closed = True

    def positions(self) -> list[int]:
        sent = [orjson.loads(frame) for frame in self.frames]
        return [m["position"] for m in sent if m["type"] == "position"]
