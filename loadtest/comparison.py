"""The baseline half of a run: the same watcher count against a bare `websockets.broadcast()`.

Push-all time: the baseline server stamps time.time() just before one `broadcast()` call, and
each sink stamps its arrival the way the customers' sockets do; the push-all time is the last
arrival minus that stamp (the same clock, the same client path as vqueue's update latency).
It is measured `PUSHES` times, a pause apart, and the median is reported.

Connect storm: after the broadcasts, every worker opens its share of the sockets all at once,
and the time until the last one has the frame the bare server sends at open is the storm time
that vqueue's reconnect storm (the last watcher to have its position back) is compared with.

Frames per second: the server broadcasts round after round for a few seconds (pausing only
while sockets hold more than 64 KiB unsent, so no buffer grows without bound), and the sinks
count frames per 0.1 s; frames/s is the frames received divided by the time from the first
round to the last arrival, exactly as vqueue's figure over its calls window.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from array import array
from typing import Any

from loadtest.pool import Remote, start_baseline
from loadtest.procinfo import cpu_s, listen_backlog, listen_overflows, rss_kib
from loadtest.runner import BUCKET_S, Run
from loadtest.stats import bucket_counts, summarize

PUSHES = 7
PUSH_GAP_S = 0.6
BURST_S = 4.0
BURST_FIRST_SEQ = 1_000_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def measure(run: Run) -> dict[str, Any]:
    options = run.options
    port = _free_port()
    server = await start_baseline(port, options.baseline_cpus, options.backlog)
    try:
        rss_before = rss_kib(server.process.pid)
        shares = options.shares(options.watchers)
        url = f"ws://127.0.0.1:{port}/"
        replies = await run.pool.each(
            "baseline_connect", [{"url": url, "count": n} for n in shares]
        )
        connected = sum(r["connected"] for r in replies)
        await asyncio.sleep(1.0)
        rss_after = rss_kib(server.process.pid)
        pushes = await _pushes(server)
        cpu_before, harness_before = cpu_s(server.process.pid), run.pool.cpu_s()
        burst = await server.call(
            "burst", duration_s=min(BURST_S, options.duration_s), first_seq=BURST_FIRST_SEQ
        )
        cpu_after = cpu_s(server.process.pid)
        await asyncio.sleep(1.0)  # let the last round arrive
        harness_cpu = run.pool.cpu_s() - harness_before
        collected = await run.pool.all("baseline_collect")
        await run.pool.all("baseline_close")
        await asyncio.sleep(1.0)  # the server lets the closed sockets go
        overflows = listen_overflows()  # the bare server runs on this host
        backlog = listen_backlog(port)  # as the kernel has it (`--backlog`, capped)
        storm = await run.pool.each("baseline_storm", [{"url": url, "count": n} for n in shares])
        after = listen_overflows()
    finally:
        await server.stop()
    seqs, times = array("q"), array("d")
    for reply in collected:
        seqs.frombytes(reply["seqs"])
        times.frombytes(reply["times"])
    result = _analyse(seqs, times, pushes, burst, connected)
    if cpu_before is not None and cpu_after is not None and cpu_after > cpu_before:
        result["frames_per_cpu_s"] = round(burst["sent"] / (cpu_after - cpu_before), 1)
    if rss_before is not None and rss_after is not None and connected:
        result["rss_per_watcher_kib"] = round((rss_after - rss_before) / connected, 2)
    result["storm"] = _storm(storm)
    result["storm"]["listen_backlog"] = backlog
    if overflows is not None and after is not None:
        result["storm"]["listen_overflows"] = after - overflows
    result["sink_errors"] = sum(r["errors"] for r in collected)
    # Near 1.0 the harness's own core, not the server, limited frames per second.
    window = result["burst"]["window_s"] + 1.0
    result["harness_cpu_share"] = round(harness_cpu / window, 3)
    return result


async def _pushes(server: Remote) -> list[dict[str, Any]]:
    pushes = []
    for seq in range(1, PUSHES + 1):
        push = await server.call("push", seq=seq)
        push["seq"] = seq
        pushes.append(push)
        await asyncio.sleep(PUSH_GAP_S)
    return pushes


def _analyse(
    seqs: array[int],
    times: array[float],
    pushes: list[dict[str, Any]],
    burst: dict[str, Any],
    watchers: int,
) -> dict[str, Any]:
    by_push: dict[int, list[float]] = {p["seq"]: [] for p in pushes}
    t0_of = {p["seq"]: p["t0"] for p in pushes}
    burst_times: list[float] = []
    for seq, t in zip(seqs, times, strict=True):
        if seq in by_push:
            by_push[seq].append((t - t0_of[seq]) * 1000.0)
        elif seq >= BURST_FIRST_SEQ:
            burst_times.append(t)
    push_all = [max(lat) for lat in by_push.values() if lat]
    missing = sum(watchers - len(lat) for lat in by_push.values())
    all_latencies = [x for lat in by_push.values() for x in lat]
    start = burst["t0"]
    end = max(burst_times, default=start + 1e-3)
    size = int((end - start) / BUCKET_S) + 1
    buckets = bucket_counts(burst_times, start, BUCKET_S, size)
    return {
        "watchers": watchers,
        "push_all_ms": round(statistics.median(push_all), 2) if push_all else None,
        "push_all_ms_each": [round(x, 2) for x in push_all],
        "push_latency_ms": summarize(all_latencies),
        "push_latency_samples": all_latencies,
        "push_frames_missing": missing,
        "broadcast_call_ms": [round(p["call_s"] * 1000.0, 2) for p in pushes],
        "frames_per_s": round(len(burst_times) / (end - start), 1) if burst_times else None,
        "peak_frames_per_s": _peak(buckets),
        "burst": {**burst, "received": len(burst_times), "window_s": round(end - start, 3)},
        "frame_buckets": buckets,
        "measured_at": time.time(),
    }


def _storm(replies: list[dict[str, Any]]) -> dict[str, Any]:
    """The bare connect storm: every socket at once, until the last has its frame at open."""
    started = min(r["t0"] for r in replies)
    firsts = [t for r in replies for t in r["firsts"]]
    last_s = (max(firsts) - started) if firsts else None
    return {
        "watchers": len(firsts),
        "failed": sum(r["failed"] for r in replies),
        "first_frame_ms": summarize([(t - started) * 1000.0 for t in firsts]),
        # when each socket had TCP connected: the wait the client machine made
        "tcp_connect_ms": summarize(
            [(t - started) * 1000.0 for r in replies for t in r.get("connects", ())]
        ),
        "time_s": None if last_s is None else round(last_s, 3),
        "watchers_per_s": round(len(firsts) / last_s, 1) if last_s else None,
    }


def _peak(buckets: list[int], window: int = 10) -> float | None:
    """The best 1 s (ten buckets) of a per-0.1 s series, in frames per second."""
    if len(buckets) < window:
        return None
    best = max(sum(buckets[i : i + window]) for i in range(len(buckets) - window + 1))
    return float(best) / (window * BUCKET_S)
