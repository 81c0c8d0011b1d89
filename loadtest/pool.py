"""The main process's handles on its worker processes and on the baseline server process.

Each child gets one end of a `multiprocessing` pipe; the main event loop reads the other end
with `add_reader`, matching replies to requests by id and keeping each worker's last progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from typing import Any

from loadtest.baseline import baseline_main
from loadtest.pipes import listen
from loadtest.procinfo import cpu_s
from loadtest.worker import WorkerSpec, worker_main

START_TIMEOUT_S = 30.0


class RemoteError(Exception):
    """A command failed in a child process; the message is the child's."""


class Remote:
    """One child process that answers commands."""

    _ids = itertools.count(1)

    def __init__(self, target: Callable[..., None], args: tuple[Any, ...]) -> None:
        ctx = multiprocessing.get_context("spawn")  # no inherited event loop or threads
        self.conn, child = ctx.Pipe()
        self.process: BaseProcess = ctx.Process(target=target, args=(*args, child), daemon=True)
        self.process.start()
        child.close()
        self.progress: dict[str, Any] = {}
        self.ready = asyncio.get_running_loop().create_future()
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        listen(self.conn, self._on_message, self._lost)

    def _on_message(self, message: dict[str, Any]) -> None:
        if "progress" in message:
            self.progress = message["progress"]
        elif "ready" in message:
            if not self.ready.done():
                self.ready.set_result(None)
        else:
            future = self._waiting.pop(message["id"], None)
            if future is None or future.done():
                return
            if "error" in message:
                future.set_exception(RemoteError(message["error"]))
            else:
                future.set_result(message["result"])

    def _lost(self) -> None:
        error = RemoteError(f"process {self.process.pid} exited ({self.process.exitcode})")
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)
        self._waiting.clear()
        if not self.ready.done():
            self.ready.set_exception(error)

    async def call(self, cmd: str, **args: Any) -> Any:
        ident = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        self.conn.send({"id": ident, "cmd": cmd, "args": args})
        return await future

    async def stop(self, timeout_s: float = 10.0) -> None:
        with contextlib.suppress(RemoteError, OSError, BrokenPipeError, TimeoutError):
            await asyncio.wait_for(self.call("close"), timeout_s)
        await asyncio.get_running_loop().run_in_executor(None, self.process.join, timeout_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class Pool:
    """The worker processes, addressed together."""

    def __init__(self, specs: Sequence[WorkerSpec]) -> None:
        self.workers = [Remote(worker_main, (spec,)) for spec in specs]

    async def started(self) -> None:
        """Wait until every worker has its loop running (spawning takes a moment)."""
        await asyncio.wait_for(asyncio.gather(*(w.ready for w in self.workers)), START_TIMEOUT_S)

    async def each(self, cmd: str, args: Sequence[dict[str, Any]]) -> list[Any]:
        """Send `cmd` to every worker, with its own arguments; gather the replies in order."""
        calls = (w.call(cmd, **a) for w, a in zip(self.workers, args, strict=True))
        return list(await asyncio.gather(*calls))

    async def all(self, cmd: str, **args: Any) -> list[Any]:
        return await self.each(cmd, [args] * len(self.workers))

    def cpu_s(self) -> float:
        """CPU time the harness (this process and its workers) has used so far."""
        pids = [os.getpid(), *(w.process.pid for w in self.workers if w.process.pid)]
        return sum(cpu_s(pid) or 0.0 for pid in pids)

    def totals(self) -> dict[str, Any]:
        """The workers' last progress, added up."""
        total: dict[str, Any] = {"joined": 0, "connected": 0, "reconnecting": 0}
        frames: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        baseline_frames = 0
        for worker in self.workers:
            p = worker.progress
            for key in ("joined", "connected", "reconnecting"):
                total[key] += p.get(key, 0)
            frames.update(p.get("frames", {}))
            errors.update(p.get("errors", {}))
            baseline_frames += p.get("baseline_frames", 0)
        total.update(frames=dict(frames), errors=dict(errors), baseline_frames=baseline_frames)
        return total

    async def stop(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers))


async def start_baseline(port: int, cpus: tuple[int, ...] | None, backlog: int) -> Remote:
    remote = Remote(baseline_main, (port, cpus, backlog))
    await asyncio.wait_for(remote.ready, START_TIMEOUT_S)
    return remote
