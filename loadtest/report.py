"""The JSON report: every figure, its ratio to the baseline, and how each was measured."""

from __future__ import annotations

import platform
import statistics
import time
from collections import Counter
from typing import Any

import orjson

from loadtest.comparison import _peak
from loadtest.runner import BUCKET_S, Run
from loadtest.stats import Summary, histogram, log_bins, ratio, summarize

REPORT_VERSION = 1
MISMATCH_EXAMPLES = 20

METHOD = {
    "update_latency": (
        "Per (call-next, affected watcher): arrival of the first position frame whose seq is at "
        "least the call's seq, minus the time.time() at which the staff process read the "
        "call-next response. The call's seq is taken from the `called` frame its own ticket's "
        "watcher received. Watchers that joined or connected after the call, or were called or "
        "left before it, are not counted; slow readers are excluded. "
        "update_latency_from_request_ms uses the request's send time instead (an upper bound). "
        "The server may write the frames before the staff process gets to read the response: "
        "such samples are negative, kept as they are, and counted in "
        "update_latency_negative_samples. update_latency_per_call_ms: each call-next's own "
        "p99 (and max) over its watchers, as the median over the run's calls; its ratio to "
        "push_all_ms (itself a median over single broadcasts) compares one event with one event. "
        "update_latency_after_storm_ms (reconnect-storm only): the samples of the calls sent "
        "after every dropped watcher had its position back. update_latency_kept_ms "
        "(reconnect-storm with --storm-keep): only the watchers whose sockets stayed up, for "
        "the calls sent before the storm and for those sent during it (from the drop until every "
        "dropped watcher had its position back), each as update_latency_per_call_ms, from the "
        "call's response and from its request (a call sent in a storm may wait to be answered); "
        "during_over_before compares their per-call p99s: what a storm costs everyone else."
    ),
    "listen_overflows": "storm.listen_overflows and baseline.storm.listen_overflows: the "
    "host's TcpExt ListenOverflows (/proc/net/netstat) over each storm, so only with the "
    "server on this host: connections a full accept queue dropped, each retried by TCP a "
    "second later, then three. A storm's time ratio reads differently with and without them.",
    "tcp_connect_ms": "storm.tcp_connect_ms: per dropped watcher, from its drop until its new "
    "socket had TCP connected (before the handshake); baseline.storm.tcp_connect_ms: per bare "
    "socket, from the storm's start. The time up to there is the client machine's (its kernel "
    "and its event loop): the server has not seen a request yet.",
    "join_latency": "From writing POST /v1/queues/{q}/tickets on a kept-alive connection "
    "to reading the whole 201 response.",
    "frames_per_s": "Position frames received by all watchers, from the first call to the "
    "last frame's arrival (the line then went quiet), divided by that time; frames_window "
    "gives both ends, and when the harness saw the totals move for the last time (up to 0.6 s "
    "later), in seconds since the run began.",
    "baseline": "The same number of sockets on a bare websockets.broadcast() server (uvloop, "
    "same harness, same client code). push_all_ms: median over several single broadcasts of "
    "(last arrival - time.time() stamped just before broadcast()). frames_per_s: broadcast "
    "round after round for a few seconds; frames received / (last arrival - first round).",
    "final_check": "After calls and churn stop and no frame arrives for --quiet seconds, each "
    "connected watcher's last message is compared with GET /v1/queues/{q}/tickets (staff).",
    "verdict": "Passed only when no final position is wrong, every ticket a call-next answered "
    "with was told `called` on its watcher (if that watcher reads and is connected at the end), "
    "no ticket was named by two call-next answers, and no watcher that reconnected was still "
    "waiting for its state at the check (it is then not compared: it holds what it saw before "
    "its drop). The exit status is 0 only then, else 1.",
    "clock": "All cross-process times are time.time() on one host (one clock).",
    "failover": "failover.recovery_ms: per watcher on the killed node, from the moment its "
    "client saw the socket close to the arrival of its first frame on a surviving node (the "
    "ticket's whole state, read when the node registered it). The final check then compares "
    "every watcher with the truth.",
}


def build(run: Run, command: str) -> dict[str, Any]:
    from_resp = [x * 1000.0 for x in run.latency["from_response_s"]]
    from_req = [x * 1000.0 for x in run.latency["from_request_s"]]
    update = summarize(from_resp)
    frames_per_s, buckets, frames_window = _frames_per_s(run)
    per_call = _per_call(run, from_resp)
    result: dict[str, Any] = {
        **_identity(run, command),
        "join_latency_ms": summarize(run.join_ms),
        "update_latency_ms": update,
        "update_latency_from_request_ms": summarize(from_req),
        # A frame can arrive before the staff process has read the response that caused it.
        "update_latency_negative_samples": sum(1 for x in from_resp if x < 0),
        "update_latency_per_call_ms": _per_call_summary(per_call),
        "update_latency_after_storm_ms": _after_storm(run, from_resp),
        "update_latency_kept_ms": _kept_through_storm(run, from_resp, from_req),
        "frames_per_s": frames_per_s,
        "frames_window": frames_window,
        "peak_frames_per_s": _peak(buckets),
        "frames": run.final["frames"],
        "calls": _calls(run),
        "reconnect_ms": summarize(x * 1000.0 for x in run.reconnect_s) if run.reconnect_s else None,
        "storm": run.storm or None,
        "failover": _failover(run),
        "errors": dict(sorted(Counter(run.final["errors"]).items())),
        **_final(run),
        "verdict": verdict(run),
        "server": _server(run, frames_window["frames"]),
        "machine": machine(),
        "method": METHOD,
        "series": {"bucket_s": BUCKET_S, "frames": buckets, "per_call": per_call},
        "histogram": _histogram(from_resp, run.baseline),
    }
    if run.baseline is not None:
        hidden = ("push_latency_samples", "frame_buckets")
        result["baseline"] = {k: v for k, v in run.baseline.items() if k not in hidden}
        result["series"]["baseline_frames"] = run.baseline["frame_buckets"]
        result["ratios"] = _ratios(update, frames_per_s, result)
    return result


def _identity(run: Run, command: str) -> dict[str, Any]:
    """What was run, where, when, and its phases."""
    options = run.options
    return {
        "tool": "vqueue loadtest",
        "report_version": REPORT_VERSION,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(run.t0)),
        "command": command,
        "scenario": options.scenario.value,
        "url": options.url,
        "queue": options.queue,
        "watchers": options.watchers,
        "watchers_connected": run.memory.get("watchers"),
        "processes": options.processes,
        "duration_s": options.duration_s,
        "call_rate": options.call_rate,
        "drained_before_start": run.drained,
        "phases": [
            {"name": n, "start_s": round(a - run.t0, 3), "end_s": _since(b, run.t0)}
            for n, a, b in run.phases
        ],
    }


def _since(t: float | None, t0: float) -> float | None:
    return None if t is None else round(t - t0, 3)


def _final(run: Run) -> dict[str, Any]:
    """The end-of-run position check."""
    mismatches = run.final["mismatches"]
    return {
        "final_position_mismatches": len(mismatches),
        "final_checked": run.final["checked"],
        "final_unchecked": run.final["unchecked"],
        "final_beyond_staff_list": run.final["beyond_staff_list"],
        "slow_readers": run.final["slow"],
        "waiting_at_end": run.final["waiting_at_end"],
        "mismatch_examples": [_mismatch(m) for m in mismatches[:MISMATCH_EXAMPLES]],
    }


def _failover(run: Run) -> dict[str, Any] | None:
    """The node kill: how many watched, and per watcher, loss to state again (ms)."""
    if not run.failover:
        return None
    recovery = summarize(x * 1000.0 for x in run.failover_s)
    return {**run.failover, "recovered": len(run.failover_s), "recovery_ms": recovery}


def verdict(run: Run) -> dict[str, Any]:
    """Whether every check held: `vqueue loadtest` exits 0 only then, 1 otherwise."""
    checks = {
        "final_position_mismatches": len(run.final["mismatches"]),
        "calls_lost": len(run.final["calls_lost"]),
        "calls_twice": len(run.final["calls_twice"]),
        # reconnected but never sent their state before the check: exactness not shown
        "awaiting_state": run.final["awaiting_state"],
        # dropped by a storm and never back on a socket: never checked, so never shown exact
        "storm_not_resumed": run.final["errors"].get("storm_not_resumed", 0),
    }
    if run.failover:
        checks["failover_not_recovered"] = run.failover["not_recovered"]
    return {
        "passed": not any(checks.values()),
        "failed": sorted(name for name, count in checks.items() if count),
        "checks": checks,
        "calls_lost_examples": run.final["calls_lost"][:MISMATCH_EXAMPLES],
        "calls_twice_examples": run.final["calls_twice"][:MISMATCH_EXAMPLES],
    }


def _mismatch(m: Any) -> dict[str, str]:
    return {"ticket_id": m.ticket_id, "seen": m.seen, "truth": m.truth}


def _frames_per_s(run: Run) -> tuple[float | None, list[int], dict[str, Any]]:
    """Position frames from the first call to the last frame's own arrival, over that time (as
    the baseline's last arrival ends its rounds); the window's counts per bucket; the window.

    The calls window ends when the harness saw the frame totals move for the last time: its
    workers report them every half second, so that end falls up to 0.6 s after the last frame
    (BENCHMARKS.md, "Profile"), and once stretched the time frames per second divide by."""
    assert run.calls_window is not None
    start, end = run.calls_window
    buckets = run.latency["frame_buckets"]
    first = int((start - run.t0) / BUCKET_S)
    last = int((end - run.t0) / BUCKET_S)
    in_calls = buckets[first : last + 1]
    counted, last_at = run.latency["window_frames"], run.latency["last_frame_at"]
    window = {
        "frames": counted,
        "first_call_s": round(start - run.t0, 3),
        "last_frame_s": None if last_at is None else round(last_at - run.t0, 3),
        "last_change_seen_s": round(end - run.t0, 3),
    }
    if not counted or last_at is None:
        return None, in_calls, window
    return round(counted / max(last_at - start, BUCKET_S), 1), in_calls, window


def _calls(run: Run) -> dict[str, Any]:
    calls = run.staff.calls
    answered = [c for c in calls if c.status == 200]
    window = run.options.duration_s
    return {
        "made": len(calls),
        "called_a_ticket": len(answered),
        "line_empty": sum(1 for c in calls if c.status == 204),
        "achieved_rate_per_s": round(len(calls) / window, 2) if window else None,
        "attributed": len(run.latency["calls"]),
        "unattributed": run.latency["unattributed_calls"],
        "round_trip_ms": summarize((c.answered_at - c.sent_at) * 1000.0 for c in calls),
    }


def _server(run: Run, position_frames: int) -> dict[str, Any]:
    """Memory and CPU of the server process (with --server-pid), and its frame counter."""
    memory = run.memory
    before, after = memory.get("rss_before_kib"), memory.get("rss_after_kib")
    watchers = memory.get("watchers") or 0
    per = round((after - before) / watchers, 2) if before and after and watchers else None
    sent_before = run.server_counts.get("frames_sent_before")
    sent_after = run.server_counts.get("frames_sent_after")
    sent = None if sent_before is None or sent_after is None else sent_after - sent_before
    received = sum(run.final["frames"].values())
    cpu = memory.get("cpu_s_calls")
    assert run.calls_window is not None
    window_s = run.calls_window[1] - run.calls_window[0]
    harness = memory.get("harness_cpu_s_calls")
    return {
        "pid": run.options.server_pid,
        "cpu_s_calls": None if cpu is None else round(cpu, 3),
        "frames_per_cpu_s": round(position_frames / cpu, 1) if cpu else None,
        # Near 1.0 the harness's own core, not the server, limited frames per second.
        "harness_cpu_share": round(harness / window_s, 3) if harness and window_s > 0 else None,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "rss_per_watcher_kib": per,
        "frames_sent": sent,
        "frames_received": received,
        "frames_received_minus_sent": None if sent is None else received - sent,
    }


def _per_call(run: Run, from_resp: list[float]) -> list[list[float]]:
    """[seconds since the first call, p50, p99, max] per attributed call."""
    by_call: dict[int, list[float]] = {}
    for k, value in zip(run.latency["call_index"], from_resp, strict=True):
        by_call.setdefault(k, []).append(value)
    rows = []
    for k, values in sorted(by_call.items()):
        s = summarize(values)
        assert run.calls_window is not None
        at = run.latency["calls"][k].answered_at - run.calls_window[0]
        rows.append([round(at, 3), s["p50"] or 0.0, s["p99"] or 0.0, s["max"] or 0.0])
    return rows


def _storm_window(run: Run) -> tuple[float, float] | None:
    """From a reconnect storm's drop until every dropped watcher had its position back."""
    for name, start, end in run.phases:
        if name == "calls+storm" and end is not None:
            return start, end
    return None


def _after_storm(run: Run, from_resp: list[float]) -> dict[str, Any] | None:
    """Update latency of the calls made once a reconnect storm was over (every dropped watcher
    had its position back): what customers feel after a node restart, without the calls whose
    watchers were still reconnecting (those wait for their socket, not for the fan-out)."""
    storm = _storm_window(run)
    if storm is None:
        return None
    ended = storm[1]
    calls = run.latency["calls"]
    after = [
        value
        for k, value in zip(run.latency["call_index"], from_resp, strict=True)
        if calls[k].sent_at >= ended
    ]
    return {**summarize(after), "calls": sum(1 for c in calls if c.sent_at >= ended)}


def _kept_through_storm(
    run: Run, from_resp: list[float], from_req: list[float]
) -> dict[str, Any] | None:
    """The watchers that kept their sockets through a reconnect storm (`--storm-keep`): the
    update latency of the calls sent during the storm beside that of the calls before it, from
    the call's response (the fan-out) and from its request (a staff call waits in the storm
    too)."""
    storm = _storm_window(run)
    kept = run.latency.get("kept")
    if storm is None or not kept or not any(kept):
        return None
    start, end = storm
    calls = run.latency["calls"]
    result: dict[str, Any] = {"watchers": run.options.storm_keep}
    for name, samples in (("from_response", from_resp), ("from_request", from_req)):
        before: dict[int, list[float]] = {}
        during: dict[int, list[float]] = {}
        for k, value, is_kept in zip(run.latency["call_index"], samples, kept, strict=True):
            sent = calls[k].sent_at
            if is_kept and sent <= end:
                (before if sent < start else during).setdefault(k, []).append(value)
        b, d = _calls_summary(before), _calls_summary(during)
        ratio_ = ratio(d["p99_median"], b["p99_median"])
        result[name] = {"before": b, "during": d, "during_over_before": ratio_}
    return result


def _calls_summary(by_call: dict[int, list[float]]) -> dict[str, Any]:
    """Each call's p99 and max over its samples, as the median over the calls; all samples."""
    per_call = [[0.0, 0.0, summarize(v)["p99"] or 0.0, max(v)] for v in by_call.values()]
    every = [x for values in by_call.values() for x in values]
    return {**_per_call_summary(per_call), "samples": summarize(every)}


def _per_call_summary(per_call: list[list[float]]) -> dict[str, Any]:
    """The p99 and max of one call-next's samples, as the median over the calls."""
    if not per_call:
        return {"calls": 0, "p99_median": None, "max_median": None}
    return {
        "calls": len(per_call),
        "p99_median": round(statistics.median(row[2] for row in per_call), 2),
        "max_median": round(statistics.median(row[3] for row in per_call), 2),
    }


def _histogram(samples: list[float], baseline: dict[str, Any] | None) -> dict[str, Any]:
    base = baseline["push_latency_samples"] if baseline else []
    values = samples + base
    if not values:
        return {"edges_ms": [], "counts": [], "baseline_counts": []}
    edges = log_bins(max(min(values), 0.1), max(values))
    return {
        "edges_ms": [round(e, 3) for e in edges],
        "counts": histogram(samples, edges),
        "baseline_counts": histogram(base, edges) if base else [],
    }


def _ratios(update: Summary, frames_per_s: float | None, result: dict[str, Any]) -> dict[str, Any]:
    base = result["baseline"]
    push_all = base.get("push_all_ms")
    return {
        "frames_per_s": ratio(frames_per_s, base.get("frames_per_s")),
        "update_p50_over_push_all": ratio(update["p50"], push_all),
        "update_p99_over_push_all": ratio(update["p99"], push_all),
        "update_max_over_push_all": ratio(update["max"], push_all),
        "per_call_p99_over_push_all": ratio(
            result["update_latency_per_call_ms"]["p99_median"], push_all
        ),
        "rss_per_watcher": ratio(
            result["server"]["rss_per_watcher_kib"], base.get("rss_per_watcher_kib")
        ),
        "frames_per_cpu_s": ratio(
            result["server"]["frames_per_cpu_s"], base.get("frames_per_cpu_s")
        ),
        # A reconnect storm's time until the last watcher has its position back, over a bare
        # server's storm of as many sockets until the last has its frame at open.
        "storm_time": ratio(_storm_s(result), (base.get("storm") or {}).get("time_s")),
    }


def _storm_s(result: dict[str, Any]) -> float | None:
    reconnect = result.get("reconnect_ms")
    if not reconnect or reconnect.get("max") is None:
        return None
    return float(reconnect["max"]) / 1000.0


def machine() -> dict[str, Any]:
    import os
    from importlib.metadata import version

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "websockets": version("websockets"),
    }


def to_json(result: dict[str, Any]) -> str:
    return orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
