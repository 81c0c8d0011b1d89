"""A harness worker process: its share of the customers, driven by commands from the main process.

Commands arrive on a `multiprocessing` pipe as `{"id", "cmd", "args"}` and each gets one reply
`{"id", "result"}`; every half second the worker also sends `{"progress": {...}}` unasked. The
worker has its own event loop (uvloop) and, on a loopback target, its own source address, so
10,000 sockets spread over a few processes stay under each one's open-file limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import resource
import time
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from loadtest.analysis import Call, update_latencies
from loadtest.customer import Customer, Fleet
from loadtest.failover import Failover
from loadtest.httpc import HttpClient, HttpError, error_kind
from loadtest.pipes import listen
from loadtest.sinks import BaselineSinks
from loadtest.stats import add_into, bucket_counts, in_window
from loadtest.wsclient import HandshakeError
from protocol.codec import Codec

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.5
CONNECT_CONCURRENCY = 200
FIRST_FRAME_WAIT_S = 30.0


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    base_url: str
    ws_url: str
    queue: str
    codec: str
    local_addr: str | None
    cpus: tuple[int, ...] | None
    slow_share: float
    join_concurrency: int
    seed: int
    resume_ws_urls: tuple[str, ...] = ()


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """The process entry point."""
    if spec.cpus:
        os.sched_setaffinity(0, spec.cpus)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio also works
        pass
    asyncio.run(Worker(spec, conn).run())


class Worker:
    def __init__(self, spec: WorkerSpec, conn: Connection) -> None:
        self.spec = spec
        self.conn = conn
        self.fleet = Fleet(spec.ws_url, Codec(spec.codec), spec.local_addr)
        self.fleet.rng = random.Random(spec.seed)
        self.fleet.resume_ws_urls = spec.resume_ws_urls
        self.customers: list[Customer] = []
        self.failover = Failover(self.fleet, self.customers)
        self.http = HttpClient(spec.base_url, spec.join_concurrency, spec.local_addr)
        self.sinks = BaselineSinks(spec.local_addr)
        self.joins = 0
        self._done = asyncio.Event()
        self._churn: asyncio.Task[None] | None = None
        self._handlers: dict[str, Callable[..., Awaitable[Any]]] = {
            "join": self.join,
            "watch": self.watch,
            "churn": self.churn,
            "stop_churn": self.stop_churn,
            "storm": self.storm,
            "arm_failover": self.failover.arm,
            "await_failover": self.failover.wait,
            "final": self.final,
            "samples": self.samples,
            "baseline_connect": self.sinks.connect,
            "baseline_collect": self.sinks.collect,
            "baseline_close": self.sinks.close,
            "baseline_storm": self.sinks.storm,
            "disconnect": self.disconnect,
            "close": self.close,
        }

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        listen(self.conn, self._on_command, self._done.set)  # EOF: the main process is gone
        self.conn.send({"ready": True})
        progress = loop.create_task(self._progress())
        await self._done.wait()
        progress.cancel()

    def _on_command(self, message: dict[str, Any]) -> None:
        self.fleet.spawn(self._handle(message))

    async def _handle(self, message: dict[str, Any]) -> None:
        handler = self._handlers[message["cmd"]]
        try:
            result = await handler(**message.get("args", {}))
        except Exception as exc:  # reported to the main process, which fails the run
            log.exception("worker %d: %s failed", self.spec.index, message["cmd"])
            self.conn.send({"id": message["id"], "error": f"{type(exc).__name__}: {exc}"})
            return
        self.conn.send({"id": message["id"], "result": result})
        if message["cmd"] == "close":
            self._done.set()

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            self.conn.send({"progress": self.snapshot()})

    def snapshot(self) -> dict[str, Any]:
        fleet = self.fleet
        return {
            "joined": self.joins,
            "connected": fleet.connected + self.sinks.connected,
            "frames": fleet.frame_counts(),
            "baseline_frames": self.sinks.frames,
            "errors": dict(fleet.errors),
            "reconnecting": sum(1 for c in self.customers if c.dropped_at is not None),
        }

    # customers

    async def join(self, count: int, concurrency: int | None = None) -> dict[str, Any]:
        """Join `count` customers; returns the join latencies (ms) and when each was answered."""
        if concurrency is not None:
            await self.http.close()
            self.http = HttpClient(self.spec.base_url, concurrency, self.spec.local_addr)
        latencies: list[float] = []
        answered: list[float] = []

        async def one() -> None:
            joined = await self._join_one()
            if joined is not None:
                latencies.append(joined[1] * 1000.0)
                answered.append(joined[2])

        await asyncio.gather(*(one() for _ in range(count)))
        return {"latencies_ms": latencies, "answered_at": answered}

    async def _join_one(self) -> tuple[Customer, float, float] | None:
        path = f"/v1/queues/{self.spec.queue}/tickets"
        try:
            reply = await self.http.request("POST", path, {})
        except HttpError as exc:
            self.fleet.errors[f"join_{exc.kind}"] += 1
            return None
        if reply.status != 201:
            self.fleet.errors[f"join_{error_kind(reply)}"] += 1
            return None
        slow = self.fleet.rng.random() < self.spec.slow_share
        body = reply.body
        customer = Customer(self.fleet, body["ticket_id"], body["token"], slow)
        self.customers.append(customer)
        self.joins += 1
        return customer, reply.elapsed_s, reply.done_at

    async def watch(self) -> dict[str, Any]:
        """Connect every customer that has no socket yet; wait for each one's first frame."""
        fresh = [c for c in self.customers if c.ws is None and c.first_seq is None]
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(customer: Customer) -> None:
            async with gate:
                await self._connect(customer)

        started = time.perf_counter()
        await asyncio.gather(*(one(c) for c in fresh))
        await self.fleet.until(
            lambda: all(c.first_seq is not None or c.ws is None for c in fresh), FIRST_FRAME_WAIT_S
        )
        missing = sum(1 for c in fresh if c.first_seq is None)
        if missing:
            self.fleet.errors["no_first_frame"] += missing
        return {"watching": len(fresh) - missing, "elapsed_s": time.perf_counter() - started}

    async def _connect(self, customer: Customer) -> None:
        try:
            await customer.connect()
        except (OSError, TimeoutError, HandshakeError) as exc:
            self.fleet.errors[f"connect_failed_{_kind(exc)}"] += 1
            await customer.resume()

    async def churn(self, join_rate: float, leave_rate: float) -> None:
        """In the background: new customers join and watch, waiting ones leave, at these rates."""
        self._churn = asyncio.get_running_loop().create_task(self._run_churn(join_rate, leave_rate))

    async def _run_churn(self, join_rate: float, leave_rate: float) -> None:
        rng = self.fleet.rng
        rates = join_rate + leave_rate
        while rates > 0:
            await asyncio.sleep(rng.expovariate(rates))  # a Poisson process of both kinds
            if rng.random() < join_rate / rates:
                self.fleet.spawn(self._join_and_watch())
            else:
                self._leave_one()

    async def _join_and_watch(self) -> None:
        joined = await self._join_one()
        if joined is not None:
            await self._connect(joined[0])

    def _leave_one(self) -> None:
        waiting = [c for c in self.customers if c.last_kind == "position" and c.ws and not c.slow]
        if waiting:
            self.fleet.rng.choice(waiting).leave()

    async def stop_churn(self) -> None:
        if self._churn is not None:
            self._churn.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._churn
            self._churn = None

    async def storm(self, keep: int = 0, wait_s: float = 60.0) -> dict[str, Any]:
        """Every watcher's socket drops at once, but `keep` of this process's, picked at random;
        each resumes at once, backing off on failure."""
        before = len(self.fleet.reconnect_s)
        connects_before = len(self.fleet.reconnect_connect_s)
        now = time.time()
        live = [c for c in self.customers if c.ws is not None and not c.finished and not c.slow]
        for customer in self.fleet.rng.sample(live, min(keep, len(live))):
            customer.kept = True
        dropped = [c for c in live if not c.kept]
        for customer in dropped:
            customer.drop(now)
        await self.fleet.until(lambda: all(c.dropped_at is None for c in dropped), wait_s)
        stuck = sum(1 for c in dropped if c.dropped_at is not None)
        if stuck:
            self.fleet.errors["storm_not_resumed"] += stuck
        return {
            "dropped": len(dropped),
            "reconnect_s": self.fleet.reconnect_s[before:],
            "connect_s": self.fleet.reconnect_connect_s[connects_before:],
        }

    async def final(self) -> dict[str, Any]:
        """Each checkable watcher's last message, the called seqs, and the frame counts."""
        connected = [c for c in self.customers if c.ws is not None and not c.slow]
        # A watcher back on a socket but not yet sent its state still holds what it saw before
        # the drop: that is no position the server showed it now, so it is not compared.
        checked = [c for c in connected if c.dropped_at is None]
        return {
            "last_seen": [(c.ticket_id, c.last_kind, c.last_place) for c in checked],
            "unchecked": len(self.customers) - len(checked),
            "awaiting_state": len(connected) - len(checked),
            "slow": sum(1 for c in self.customers if c.slow),
            "called_seqs": {c.ticket_id: c.called_seq for c in self.customers if c.called_seq},
            "first_seq": min(
                (c.first_seq for c in self.customers if c.first_seq is not None), default=None
            ),
            "frames": self.fleet.frame_counts(),
            "frames_per_connection_max": max((c.frames for c in self.customers), default=0),
            "errors": dict(self.fleet.errors),
        }

    async def samples(
        self,
        calls: list[tuple[int, float, float]],
        t0: float,
        bucket_s: float,
        buckets: int,
        window: tuple[float, float],
    ) -> dict[str, Any]:
        """Update-latency samples for `calls`; position frames per time bucket, and those that
        arrived within `window` (from the first call until the harness saw the frame totals
        move for the last time), with the last one's arrival."""
        table = [Call(*call) for call in calls]
        index, from_resp, from_req = array("i"), array("d"), array("d")
        kept = bytearray()  # per sample: 1 if its watcher kept its socket through a storm
        frame_buckets: list[int] = []
        window_frames, last_frame_at = 0, None
        for customer in self.customers:
            add_into(frame_buckets, bucket_counts(customer.times, t0, bucket_s, buckets))
            count, last = in_window(customer.times, *window)
            window_frames += count
            if last is not None and (last_frame_at is None or last > last_frame_at):
                last_frame_at = last
            if customer.slow or customer.first_seq is None:
                continue
            for k, lat_resp, lat_req in update_latencies(
                customer.seqs, customer.times, customer.first_seq, customer.end_seq, table
            ):
                index.append(k)
                from_resp.append(lat_resp)
                from_req.append(lat_req)
                kept.append(customer.kept)
        return {
            "call_index": index.tobytes(),
            "from_response_s": from_resp.tobytes(),
            "from_request_s": from_req.tobytes(),
            "kept": bytes(kept),
            "frame_buckets": frame_buckets,
            "window_frames": window_frames,
            "last_frame_at": last_frame_at,
        }

    async def disconnect(self, wait_s: float = 10.0) -> None:
        """Close every customer's socket normally (before the baseline runs on the same core)."""
        self.fleet.stopping = True
        await self.stop_churn()
        for customer in self.customers:
            if customer.ws is not None:
                customer.ws.close()
        await self.fleet.until(lambda: self.fleet.connected <= 0, wait_s)

    async def close(self) -> None:
        await self.disconnect(wait_s=2.0)
        await self.sinks.close()
        await self.http.close()


def _kind(exc: BaseException) -> str:
    if isinstance(exc, HandshakeError):
        return exc.kind
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__.lower()
