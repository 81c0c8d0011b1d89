"""What the abuse limits cost a join: joins per second with the limits counted and with them off.

Two `vqueue serve` processes run side by side (each with its own embedded Redis and PostgreSQL,
both pinned to the server CPU): one counts every join against a per-address and a per-queue limit
too high to refuse anything (loopback not exempt), the other has the limits `off`. After a
warm-up of each, runs alternate between them (A B, B A, A B ...), so a slow moment of the
shared machine falls on both arms; each arm's median of `runs` runs is reported with its spread, and
the ratio limited/off as the median of each round's own ratio (`benchdoc.paired_ratio`).

Run: python -m loadtest.bench_limits [--runs 5] [--joins 10000] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from loadtest.bench import HARNESS_CPU, Server, _free_port, _put_queue
from loadtest.benchdoc import arm_rows, paired_ratio
from loadtest.httpc import HttpClient

# Counted but never reached: what is measured is the cost of counting, not of refusing.
UNREACHABLE = "999999999/hour"
ARMS: dict[str, dict[str, str]] = {
    "limits": {
        "VQ_JOIN_RATE_IP": UNREACHABLE,
        "VQ_JOIN_RATE_QUEUE": UNREACHABLE,
        "VQ_RATE_EXEMPT": "",
    },
    "off": {"VQ_JOIN_RATE_IP": "off", "VQ_JOIN_RATE_QUEUE": "off"},
}
CONNECTIONS = 32


async def joins_per_second(url: str, queue: str, joins: int) -> float:
    client = HttpClient(url, CONNECTIONS, timeout_s=30.0)
    refused = 0

    async def worker(count: int) -> None:
        nonlocal refused
        for _ in range(count):
            reply = await client.request("POST", f"/v1/queues/{queue}/tickets", {})
            refused += reply.status != 201

    try:
        started = time.perf_counter()
        share = joins // CONNECTIONS
        await asyncio.gather(*(worker(share) for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - started
    finally:
        await client.close()
    if refused:
        raise RuntimeError(f"{refused} joins were not answered 201: the run is not comparable")
    return share * CONNECTIONS / elapsed


def measure(runs: int, joins: int, work: Path) -> dict[str, Any]:
    servers = {}
    for arm, env in ARMS.items():
        server = Server(work / arm, _free_port(), env)
        created = server.vqueue("venue", "create", "Bench", "--json").strip().splitlines()[-1]
        servers[arm] = (server, str(orjson.loads(created)["staff_key"]))
        server.start()
    rates: dict[str, list[float]] = {arm: [] for arm in ARMS}
    try:
        for server, key in servers.values():  # warm-up: the first joins of a process are slow
            _put_queue(server.url, key, "joins-warm")
            asyncio.run(joins_per_second(server.url, "joins-warm", min(joins, 1000)))
        for run in range(runs):
            order = list(servers) if run % 2 == 0 else list(servers)[::-1]  # A B, B A, ...
            for arm in order:
                server, key = servers[arm]
                queue = f"joins-{run}"
                _put_queue(server.url, key, queue)
                rates[arm].append(asyncio.run(joins_per_second(server.url, queue, joins)))
                print(
                    f"bench: limits run {run + 1} {arm}: {rates[arm][-1]:.0f} joins/s", flush=True
                )
    finally:
        for server, _ in servers.values():
            server.stop()
    medians = {arm: statistics.median(values) for arm, values in rates.items()}
    return {
        "runs": runs,
        "joins": joins,
        "rates": rates,
        "median": medians,
        "ratio": paired_ratio(rates["limits"], rates["off"]),
        "ratio_of_medians": medians["limits"] / medians["off"],
    }


def section(result: dict[str, Any]) -> str:
    """The BENCHMARKS.md section for one measurement."""
    lines = [
        "## What the abuse limits cost a join",
        "",
        f"`python -m loadtest.bench_limits --runs {result['runs']} --joins {result['joins']}`"
        f" (part of `make bench`): {result['joins']} joins per run over {CONNECTIONS} kept-alive"
        " connections, after a warm-up, runs alternating (A B, B A, ...) between a server that"
        " counts every join against a"
        " per-address and a per-queue limit (too high to refuse any) and one with the limits"
        " `off`; both servers pinned to the same CPU, the client on the other.",
        "",
        "| arm | median joins/s | spread (min-max) | runs |",
        "|---|---|---|---|",
    ]
    lines += arm_rows(result["rates"], result["median"])
    ratio, low, high = result["ratio"]
    verdict = "met" if ratio >= 0.9 else "NOT met"
    lines += [
        "",
        f"Ratio limits/off: **{ratio:.3f}**, the median of each round's own ratio ({low:.3f}-"
        f"{high:.3f}; the ratio of the two medians above: {result['ratio_of_medians']:.3f})"
        f" (target: at least 0.90, i.e. the limits cost at most 10% of join throughput:"
        f" {verdict}).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_limits", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--joins", type=int, default=10_000)  # runs of a few seconds each
    parser.add_argument("--out", type=Path, default=None, help="write the section here")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {int(HARNESS_CPU)})
    result = measure(args.runs, args.joins, Path(tempfile.mkdtemp(prefix="vqueue-limits-")))
    text = section(result)
    if args.out is not None:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
