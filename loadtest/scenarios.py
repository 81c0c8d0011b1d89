"""The scenarios, and the order of a whole run.

Every scenario first fills the line (joins over HTTP, then a WebSocket per customer), then runs
staff calls for `--duration` with churn (customers joining and leaving). What differs:
- steady: nothing else.
- join-spike: the line starts at a fifth of `--watchers`; a quarter of the way in, the rest
  join all at once (eight times the usual join concurrency) and watch.
- reconnect-storm: a third of the way in, every watcher's socket drops at once and resumes.
- slow-readers: `--slow-share` of the watchers stop reading after their first frame.
- failover: every watcher is on the node at `--url`; joins and calls go to the first
  `--failover-url`. A third of the way in, the harness kills `--kill-pid` with SIGKILL; each
  watcher reconnects with jittered backoff to a surviving node, and the time from losing its
  socket to its first frame there (its state, read when it registered) is its recovery time.
- priority-join: instead of calling, staff join at the top priority at `--call-rate`: each join
  goes ahead of every customer and moves every watcher back by one. Each join stands where a
  call stands in the report (its seq read from the events API), so the update latency is that
  of a change that moves everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loadtest import comparison, report
from loadtest.options import Options, Scenario
from loadtest.pool import Pool
from loadtest.procinfo import (
    cpu_s,
    listen_backlog,
    listen_overflows,
    rss_kib,
    server_frames_sent,
)
from loadtest.runner import (
    Display,
    Run,
    check_final,
    measure_latency,
    preflight,
    settle,
    tick_display,
    worker_specs,
)
from loadtest.staff import Staff
from loadtest.stats import summarize

SETTLE_S = 1.0


async def execute(options: Options, display: Display, command: str) -> dict[str, Any]:
    """Run the whole thing; returns the report."""
    staff = Staff(options.http_url, options.queue, options.staff_key)
    try:
        drained = await preflight(staff)
        pool = Pool(worker_specs(options))
    except BaseException:
        await staff.close()
        raise
    run = Run(options, pool, staff, display, drained=drained)
    ticker = asyncio.get_running_loop().create_task(tick_display(run))
    try:
        await pool.started()
        await _measure(run)
    finally:
        ticker.cancel()
        await pool.stop()
        await staff.close()
    return report.build(run, command)


async def _measure(run: Run) -> None:
    options = run.options
    run.server_counts["frames_sent_before"] = await server_frames_sent(options.urls)
    rss_before = rss_kib(options.server_pid)
    initial = options.watchers
    if options.scenario is Scenario.JOIN_SPIKE:
        initial = max(1, options.watchers // 5)
    run.phase("join")
    await run.join(initial)
    run.phase("watch")
    await run.watch()
    await asyncio.sleep(SETTLE_S)
    run.memory = {"rss_before_kib": rss_before, "rss_after_kib": rss_kib(options.server_pid)}
    run.memory["watchers"] = run.pool.totals()["connected"]
    cpu_before, harness_before = cpu_s(options.server_pid), run.pool.cpu_s()
    await _calls(run)
    run.phase("settle")
    last_change_seen = await settle(run)
    cpu_after, harness_after = cpu_s(options.server_pid), run.pool.cpu_s()
    if cpu_before is not None and cpu_after is not None:
        run.memory["cpu_s_calls"] = cpu_after - cpu_before
    run.memory["harness_cpu_s_calls"] = harness_after - harness_before
    assert run.calls_window is not None
    run.calls_window = (run.calls_window[0], max(last_change_seen, run.calls_window[0] + 0.001))
    run.phase("check")
    await check_final(run)
    # The log has every call's seq, each after the first state a watcher was shown.
    await run.staff.read_seqs(after=run.final["first_seq"])
    run.server_counts["frames_sent_after"] = await server_frames_sent(options.urls)
    await measure_latency(run)
    if options.baseline:
        await run.pool.all("disconnect")
        run.phase("baseline")
        run.baseline = await comparison.measure(run)
    run.phase("done")


async def _calls(run: Run) -> None:
    """Staff calls for the duration, with churn and the scenario's own event."""
    options = run.options
    run.phase("calls")
    started = time.time()
    run.calls_window = (started, started)
    share = 1.0 / options.processes  # churn rates are split evenly over the workers
    await run.pool.all(
        "churn", join_rate=options.churn_join_rate * share, leave_rate=options.leave_rate * share
    )
    event = asyncio.get_running_loop().create_task(_event(run))
    try:
        priority = options.scenario is Scenario.PRIORITY_JOIN
        await run.staff.call_at_rate(options.call_rate, options.duration_s, priority)
        await event
    finally:
        event.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await event
        await run.pool.all("stop_churn")


async def _event(run: Run) -> None:
    options = run.options
    if options.scenario is Scenario.JOIN_SPIKE:
        await asyncio.sleep(options.duration_s / 4)
        run.phase("calls+spike")
        rest = options.watchers - max(1, options.watchers // 5)
        await run.join(rest, concurrency=options.join_concurrency * 8)
        await run.watch()
        run.phase("calls")
    elif options.scenario is Scenario.RECONNECT_STORM:
        await asyncio.sleep(options.duration_s / 3)
        run.phase("calls+storm")
        overflows = listen_overflows() if options.loopback else None
        replies = await run.pool.each("storm", [{"keep": n} for n in options.kept_per_process()])
        run.storm = {"dropped": sum(r["dropped"] for r in replies)}
        port = urlsplit(options.base_url).port
        if options.loopback and port is not None:
            # As the kernel has it; `--backlog` gives the bare server the same.
            run.storm["listen_backlog"] = listen_backlog(port)
        after = listen_overflows() if overflows is not None else None
        if overflows is not None and after is not None:
            # Connections the server's full accept queue dropped: each waits for TCP's retry.
            run.storm["listen_overflows"] = after - overflows
        for reply in replies:
            run.reconnect_s.extend(reply["reconnect_s"])
        connects = [x * 1000.0 for reply in replies for x in reply["connect_s"]]
        run.storm["tcp_connect_ms"] = summarize(connects)
        run.phase("calls")
    elif options.scenario is Scenario.FAILOVER:
        await asyncio.sleep(options.duration_s / 3)
        await _failover(run)


async def _failover(run: Run) -> None:
    """Kill the node the watchers are on; wait until every one holds its state again."""
    assert run.options.kill_pid is not None
    run.phase("calls+failover")
    watching = sum(await run.pool.all("arm_failover"))
    killed_at = time.time()
    os.kill(run.options.kill_pid, signal.SIGKILL)
    replies = await run.pool.all("await_failover")
    for reply in replies:
        run.failover_s.extend(reply["recovery_s"])
    run.failover = {
        "killed_pid": run.options.kill_pid,
        "killed_at_s": round(killed_at - run.t0, 3),
        "watching": watching,
        "not_recovered": sum(r["not_recovered"] for r in replies),
    }
    run.phase("calls")


def write_reports(result: dict[str, Any], json_path: Path | None, html_path: Path | None) -> None:
    from loadtest import htmlreport
    from loadtest.runner import write_text

    if json_path is not None:
        write_text(json_path, report.to_json(result))
    if html_path is not None:
        write_text(html_path, htmlreport.render(result))
