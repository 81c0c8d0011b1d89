"""What a change that moves every watcher costs: priority joins at 10,000 watchers (`make bench`).

One harness run of the `priority-join` scenario against its own `vqueue serve` (pinned to the
server CPU like the fixed set's): 10,000 customers join and watch, then staff join at the top
priority once a second, each join going ahead of every customer, so every watcher's position
changes. Its update latency (each join's p99 over its watchers, median over the joins) is set
against the bare `websockets.broadcast()` baseline's push-all time at the same watcher count,
measured in the same run. The run fails its check unless every watcher's final position is
exact.

Run alone: python -m loadtest.bench_priority [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson


def _spec(quick: bool) -> Any:
    from loadtest.bench import Spec

    watchers = "2000" if quick else "10000"
    args = (
        *("--scenario", "priority-join", "--watchers", watchers, "--processes", "4"),
        *("--duration", "10", "--call-rate", "1", "--leave-rate", "0", "--join-rate", "0"),
        "--baseline",
    )
    return Spec("priority-join", args, False)


def measure(work: Path, quick: bool) -> dict[str, Any]:
    """The harness's JSON report of one priority-join run, with the load average around it."""
    from loadtest.bench import Server, _free_port, run_one

    server = Server(work / "priority", _free_port())
    server.data_dir.mkdir(parents=True, exist_ok=True)
    created = server.vqueue("venue", "create", "Bench", "--json").strip().splitlines()[-1]
    key = orjson.loads(created)["staff_key"]
    out_dir = work / "priority-reports"
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    server.start()
    try:
        report = run_one(server, key, _spec(quick), 1, out_dir)
    finally:
        server.stop()
    report["load_around"] = [load_before, os.getloadavg()]
    return report


def _n(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def section(r: dict[str, Any]) -> str:
    per_join, base = r["update_latency_per_call_ms"], r.get("baseline") or {}
    ratios, every = r.get("ratios") or {}, r["update_latency_ms"]
    checked, off = r["final_checked"], r["final_position_mismatches"]
    exact = checked == r["watchers"] and off == 0 and not r["final_unchecked"]
    before, after = r["load_around"]
    lines = [
        "## A priority join that moves every watcher",
        "",
        f"{r['watchers']:,} customers watch; staff join at the top priority once a second "
        f"({per_join.get('calls', 0)} joins), each one ahead of every customer, so every "
        "watcher's position changes at each join. Update latency: from the join's response "
        "to the watcher's frame with that seq. Baseline: a bare `websockets.broadcast()` to as "
        "many sockets, same run, same client path.",
        "",
        "| figure | ms |",
        "|---|---:|",
        f"| one join's p99 over its watchers (median over the joins) | {_n(per_join.get('p99_median'))} |",  # noqa: E501
        f"| one join's slowest watcher (median over the joins) | {_n(per_join.get('max_median'))} |",  # noqa: E501
        f"| every sample: p50 / p99 | {_n(every['p50'])} / {_n(every['p99'])} |",
        f"| baseline push-all (median of {len(base.get('push_all_ms_each') or [])}) "
        f"| {_n(base.get('push_all_ms'))} |",
        "",
        f"Ratio, one join's p99 / baseline push-all: "
        f"**{_n(ratios.get('per_call_p99_over_push_all'), 2)}x**; all samples' p99 / push-all: "
        f"{_n(ratios.get('update_p99_over_push_all'), 2)}x.",
        "",
        f"Final positions: {checked:,} watchers checked against the staff list, "
        f"{off} off ({'all exact' if exact else '**NOT exact**'}). "
        f"Load average (1 min) {before[0]:.2f} before, {after[0]:.2f} after.",
        "",
        "```",
        r["bench_command"],
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_priority", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2,000 watchers instead of 10,000")
    parser.add_argument("--out", type=Path, default=None, help="write the section here too")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="vqueue-bench-priority-"))
    text = section(measure(work, args.quick))
    if args.out is not None:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
