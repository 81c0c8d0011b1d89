"""One harness run: start the workers, play the scenario, settle, check, measure, report.

The scenario scripts live in `loadtest.scenarios`; the baseline in `loadtest.comparison`. Here
are the steps every run shares and the record (`Run`) they fill in for the report.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from loadtest.analysis import Call, final_mismatches
from loadtest.httpc import HttpError
from loadtest.options import Options, Scenario
from loadtest.pool import Pool
from loadtest.staff import CallRecord, Staff
from loadtest.stats import add_into
from loadtest.worker import WorkerSpec

BUCKET_S = 0.1
MAX_DRAIN = 50_000
QUIET_LIMIT_S = 30.0


class UsageError(Exception):
    """The run cannot start (bad key, unknown queue, server down); the message says why."""


class Display(Protocol):
    def phase(self, name: str) -> None: ...

    def update(self, totals: dict[str, Any], calls: int) -> None: ...


@dataclass
class Run:
    options: Options
    pool: Pool
    staff: Staff
    display: Display
    t0: float = field(default_factory=time.time)
    phases: list[tuple[str, float, float | None]] = field(default_factory=list)
    join_ms: list[float] = field(default_factory=list)
    join_at: list[float] = field(default_factory=list)
    reconnect_s: list[float] = field(default_factory=list)
    storm: dict[str, Any] = field(default_factory=dict)
    failover: dict[str, Any] = field(default_factory=dict)
    failover_s: list[float] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)
    calls_window: tuple[float, float] | None = None
    final: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] | None = None
    server_counts: dict[str, Any] = field(default_factory=dict)
    drained: int = 0

    def phase(self, name: str) -> None:
        if self.phases and self.phases[-1][2] is None:
            last = self.phases[-1]
            self.phases[-1] = (last[0], last[1], time.time())
        self.phases.append((name, time.time(), None))
        self.display.phase(name)

    async def join(self, total: int, concurrency: int | None = None) -> None:
        shares = self.options.shares(total)
        replies = await self.pool.each(
            "join", [{"count": n, "concurrency": concurrency} for n in shares]
        )
        for reply in replies:
            self.join_ms.extend(reply["latencies_ms"])
            self.join_at.extend(reply["answered_at"])

    async def watch(self) -> None:
        await self.pool.all("watch")


def worker_specs(options: Options) -> list[WorkerSpec]:
    slow = options.slow_share if options.scenario is Scenario.SLOW_READERS else 0.0
    return [
        WorkerSpec(
            index=i,
            # a failover run sends HTTP to a surviving node; else process i uses node i mod n
            base_url=options.http_url if options.failover_urls else options.node_base_url(i),
            ws_url=options.node_ws_url(i),
            queue=options.queue,
            codec=options.codec,
            local_addr=addr,
            cpus=options.harness_cpus,
            slow_share=slow,
            join_concurrency=options.join_concurrency,
            seed=options.seed * 1000 + i,
            resume_ws_urls=options.resume_ws_urls,
        )
        for i, addr in enumerate(options.source_addresses())
    ]


async def preflight(staff: Staff) -> int:
    """Fail fast, with words, on a wrong URL, queue or key; then empty the line.

    Calls of tickets the harness does not watch cannot be matched to a seq, so the line starts
    empty: the harness calls next until it is (returns how many it called).
    """
    try:
        state = await staff.queue_state()
        await staff.truth()
    except (OSError, RuntimeError, HttpError) as exc:
        raise UsageError(f"cannot use queue {staff.queue!r} at {staff.base_url}: {exc}") from None
    if state.get("state") == "paused":
        raise UsageError(f"queue {staff.queue!r} is paused: resume it first")
    waiting = int(state.get("waiting") or 0)
    if waiting > MAX_DRAIN:
        raise UsageError(f"queue {staff.queue!r} has {waiting} waiting: use an emptier queue")
    return await staff.drain(waiting + 10) if waiting else 0


async def tick_display(run: Run) -> None:
    while True:
        run.display.update(run.pool.totals(), len(run.staff.calls))
        await asyncio.sleep(0.25)


async def settle(run: Run) -> float:
    """Wait until no frame has arrived for `quiet_s` (bounded); returns when the harness saw the
    frame totals move for the last time: the workers report them every half second, so up to
    0.6 s after the last frame itself (the workers know that one: `Worker.samples`)."""
    quiet_s = run.options.quiet_s
    deadline = time.monotonic() + QUIET_LIMIT_S
    last_total, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        totals = run.pool.totals()
        total = sum(totals["frames"].values()) + totals["reconnecting"]
        if total != last_total:
            last_total, last_change = total, time.monotonic()
        elif time.monotonic() - last_change >= quiet_s + 0.5:  # progress comes every 0.5 s
            break
        await asyncio.sleep(0.1)
    return time.time() - (time.monotonic() - last_change)


async def check_final(run: Run) -> None:
    """Every connected watcher's last message against the staff list (the truth)."""
    replies = await run.pool.all("final")
    truth, total = await run.staff.truth()
    last_seen: list[tuple[str, str, int | None]] = []
    called: dict[str, int] = {}
    frames: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for reply in replies:
        last_seen.extend(reply["last_seen"])
        called.update(reply["called_seqs"])
        frames.update(reply["frames"])
        errors.update(reply["errors"])
    listed = len(truth)
    beyond = [row for row in last_seen if total > listed and _beyond(row, truth, listed)]
    checkable = [row for row in last_seen if total <= listed or not _beyond(row, truth, listed)]
    mismatches = []
    for tid, kind, position in checkable:
        mismatches.extend(final_mismatches({tid: (kind, position)}, truth))
    watched = {tid for tid, _, _ in last_seen}
    run.final = {
        "checked": len(checkable),
        "beyond_staff_list": len(beyond),
        "unchecked": sum(r["unchecked"] for r in replies),
        "awaiting_state": sum(r["awaiting_state"] for r in replies),
        "slow": sum(r["slow"] for r in replies),
        "mismatches": mismatches,
        "called_seqs": called,
        # the earliest state any watcher was shown: every call of the run comes after it
        "first_seq": min(
            (r["first_seq"] for r in replies if r["first_seq"] is not None), default=0
        ),
        "frames": dict(frames),
        "errors": errors + run.staff.errors,
        "waiting_at_end": total,
        "staff_list_length": listed,
        "calls_lost": lost_calls(run.staff.calls, watched, called),
        "calls_twice": called_twice(run.staff.calls),
    }


def lost_calls(calls: list[CallRecord], watched: set[str], told: dict[str, int]) -> list[str]:
    """Tickets called (200) whose reading watcher, connected at the end, was never told."""
    return [
        c.ticket_id
        for c in calls
        if c.status == 200 and c.ticket_id in watched and c.ticket_id not in told
    ]


def called_twice(calls: list[CallRecord]) -> list[str]:
    """Tickets that two call-next answers both named."""
    counts = Counter(c.ticket_id for c in calls if c.status == 200 and c.ticket_id)
    return sorted(tid for tid, n in counts.items() if n > 1)


def _beyond(row: tuple[str, str, int | None], truth: dict[str, int], listed: int) -> bool:
    """A watcher the truncated staff list cannot vouch for: not listed, last seen past its end."""
    tid, kind, position = row
    return tid not in truth and kind == "position" and position is not None and position > listed


def call_table(run: Run) -> tuple[list[Call], int]:
    """The calls whose seq the called ticket's watcher saw, sorted by seq; and how many not."""
    seqs = {**run.final["called_seqs"], **run.staff.seqs}  # the log's, where it has one
    table, unknown = [], 0
    for record in run.staff.calls:
        if record.ticket_id is None:
            continue
        seq = seqs.get(record.ticket_id)
        if seq is None:
            unknown += 1
        else:
            table.append(Call(seq, record.sent_at, record.answered_at))
    table.sort(key=lambda call: call.seq)
    return table, unknown


async def measure_latency(run: Run) -> None:
    table, unknown = call_table(run)
    buckets = int((time.time() - run.t0) / BUCKET_S) + 2
    assert run.calls_window is not None
    args = {
        "calls": [(c.seq, c.sent_at, c.answered_at) for c in table],
        "t0": run.t0,
        "window": run.calls_window,
    }
    replies = await run.pool.all("samples", bucket_s=BUCKET_S, buckets=buckets, **args)
    index, from_resp, from_req = array("i"), array("d"), array("d")
    kept = bytearray()
    frames: list[int] = []
    arrivals = [r["last_frame_at"] for r in replies if r["last_frame_at"] is not None]
    for reply in replies:
        index.frombytes(reply["call_index"])
        from_resp.frombytes(reply["from_response_s"])
        from_req.frombytes(reply["from_request_s"])
        kept += reply["kept"]
        add_into(frames, reply["frame_buckets"])
    run.latency = {
        "calls": table,
        "unattributed_calls": unknown,
        "call_index": index,
        "from_response_s": from_resp,
        "from_request_s": from_req,
        "kept": kept,
        "frame_buckets": frames,
        "window_frames": sum(reply["window_frames"] for reply in replies),
        "last_frame_at": max(arrivals, default=None),
    }


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
