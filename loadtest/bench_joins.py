"""Joins per second on one core, beside the bare join (`loadtest.barejoin`) in the same run.

One `vqueue serve` process (its persister included) and the bare reference, a Starlette endpoint
under the same uvicorn that parses the body and runs one Lua script with the writes a join needs,
both pinned to the server CPU; the bare one uses the vqueue server's embedded Redis (database 1),
so both talk to the same Redis. wrk (Debian's package, `make bench-deps`) drives them from the
harness CPU with 64 kept-alive connections, a POST of `{}` each time, for `seconds` per run. Runs
alternate between the two (vqueue, bare, bare, vqueue, ...) after a warm-up of each, so a slow
moment of the shared machine falls on both; each side's median of `runs` runs is reported with
its spread, and the ratio vqueue/bare as the median of each round's own ratio
(`benchdoc.paired_ratio`). Target: at least 0.8.

Beside each run's rate, the CPU its server process spent per join (`cpu_lines` says why).

Run: python -m loadtest.bench_joins [--runs 3] [--seconds 8] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from loadtest.bench import (
    HARNESS_CPU,
    SERVER_CPU,
    Server,
    _free_port,
    _put_queue,
    stop_process,
)
from loadtest.bench_scale import embedded_urls
from loadtest.benchdoc import arm_rows, paired_ratio
from loadtest.procinfo import cpu_s

CONNECTIONS = 64
TARGET = 0.8
SETTLE_S = 0.5
WRK_SCRIPT = """wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
"""


class Bare:
    """`python -m loadtest.barejoin` on a free port, pinned to the server CPU."""

    def __init__(self, redis_url: str, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "loadtest.barejoin", "--port", str(self.port)]
        out = log.open("ab")
        self.proc = subprocess.Popen(
            [*cmd, "--redis", redis_url], stdout=out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while not _listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bare join server did not start; see {log}")
            time.sleep(0.1)
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            os.sched_setaffinity(int(task.name), {int(SERVER_CPU)})

    def stop(self) -> None:
        stop_process(self.proc, 10)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True, slots=True)
class WrkRun:
    rate: float  # requests per second
    requests: int


def parse_wrk(output: str) -> WrkRun | None:
    """wrk's rate and request count; None for a run with any non-2xx answer or socket error."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    requests = re.search(r"(\d+) requests in ", output)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    if rate is None or requests is None or bad is not None or errors is not None:
        return None
    return WrkRun(float(rate.group(1)), int(requests.group(1)))


def wrk(url: str, seconds: float, script: Path) -> WrkRun:
    """What wrk measured (joins per second, joins); a run with an error answer is refused."""
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "-s", str(script), url]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {int(HARNESS_CPU)}),
    )
    run = parse_wrk(done.stdout)
    if run is None:
        raise RuntimeError(f"wrk against {url}: the run is not comparable:\n{done.stdout}")
    return run


def cpu_per_join_us(cpu_before_s: float, cpu_after_s: float, joins: int) -> float:
    return (cpu_after_s - cpu_before_s) * 1e6 / max(joins, 1)


def measure(runs: int, seconds: float, work: Path) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("bench_joins needs wrk on PATH: run `make bench-deps`")
    script = work / "join.lua"
    script.write_text(WRK_SCRIPT)
    server = Server(work / "vqueue", _free_port())
    created = server.vqueue("venue", "create", "Bench", "--json").strip().splitlines()[-1]
    key = str(orjson.loads(created)["staff_key"])
    server.start()
    bare: Bare | None = None
    rates: dict[str, list[float]] = {"vqueue": [], "bare": []}
    cpu_us: dict[str, list[float]] = {"vqueue": [], "bare": []}
    try:
        redis_url = embedded_urls(work / "vqueue")["REDIS_URL"].rsplit("/", 1)[0] + "/1"
        bare = Bare(redis_url, work / "bare.log")
        urls = {"vqueue": server.url, "bare": bare.url}
        pids = {"vqueue": server.proc.pid if server.proc else None, "bare": bare.proc.pid}

        def one(arm: str, queue: str, length: float) -> tuple[WrkRun, float | None]:
            if arm == "vqueue":
                _put_queue(server.url, key, queue)
            before = cpu_s(pids[arm])
            done = wrk(f"{urls[arm]}/v1/queues/{queue}/tickets", length, script)
            # The persister and notifier finish the run's last events before the CPU is read.
            time.sleep(SETTLE_S)
            after = cpu_s(pids[arm])
            if before is None or after is None:
                return done, None
            return done, cpu_per_join_us(before, after, done.requests)

        for arm in urls:  # warm-up: imports, caches, the first connections
            one(arm, "joins-warm", 2)
        for run in range(runs):
            order = ("vqueue", "bare") if run % 2 == 0 else ("bare", "vqueue")
            for arm in order:
                measured, cpu = one(arm, f"joins-{run}", seconds)
                rates[arm].append(measured.rate)
                if cpu is not None:
                    cpu_us[arm].append(cpu)
                shown = "" if cpu is None else f", {cpu:.0f} us of server CPU a join"
                print(f"bench: joins run {run + 1} {arm}: {measured.rate:.0f}/s{shown}", flush=True)
    finally:
        if bare is not None:
            bare.stop()
        server.stop()
    medians = {arm: statistics.median(values) for arm, values in rates.items()}
    return {
        "runs": runs,
        "seconds": seconds,
        "rates": rates,
        "median": medians,
        "ratio": paired_ratio(rates["vqueue"], rates["bare"]),
        "ratio_of_medians": medians["vqueue"] / medians["bare"],
        "cpu_us": cpu_us,
        "load": os.getloadavg(),
    }


def section(result: dict[str, Any]) -> str:
    """The BENCHMARKS.md section for one measurement."""
    lines = [
        "## Joins per second on one core, beside a bare join",
        "",
        f"`python -m loadtest.bench_joins --runs {result['runs']} --seconds"
        f" {result['seconds']:g}` (part of `make bench`): wrk with {CONNECTIONS} kept-alive"
        f" connections on the harness CPU, {result['seconds']:g} s per run, runs alternating"
        " between one `vqueue serve` (its persister on the same core) and the bare join"
        " (`loadtest/barejoin.py`: a Starlette endpoint under the same uvicorn that parses the"
        " body and runs one Lua script: INCR, ZADD, HSET, XADD, PUBLISH; 201), both pinned to the"
        " server CPU and using the same Redis.",
        "",
        "| server | median joins/s | spread (min-max) | runs |",
        "|---|---:|---|---|",
    ]
    lines += arm_rows(result["rates"], result["median"])
    ratio, low, high = result["ratio"]
    verdict = "met" if ratio >= TARGET else "NOT met"
    load = " / ".join(f"{x:.2f}" for x in result["load"])
    lines += [
        "",
        f"Ratio vqueue/bare: **{ratio:.3f}**, the median of each round's own ratio ({low:.3f}-"
        f"{high:.3f}; the ratio of the two medians above: {result['ratio_of_medians']:.3f})"
        f" (target: at least {TARGET}: {verdict}). Load average after: {load}.",
        "",
    ]
    lines += cpu_lines(result.get("cpu_us") or {})
    return "\n".join(lines)


def cpu_lines(cpu_us: dict[str, list[float]]) -> list[str]:
    """The server CPU per join of each side, and the ratio of joins per CPU-second."""
    try:  # joins a CPU-second: the inverse of CPU per join, so bare over vqueue
        per_cpu_s = paired_ratio(cpu_us.get("bare") or [], cpu_us.get("vqueue") or [])
    except ValueError:  # a reading missed, or a run joined nothing: the rounds do not pair up
        return []
    medians = {arm: statistics.median(values) for arm, values in cpu_us.items()}
    lines = [
        "Server CPU per join (user + system of the server process over each run and the"
        f" {SETTLE_S:g} s after it, divided by the joins wrk counted; the persister and notifier"
        " are in vqueue's): what each side's own code spends, apart from where the scheduler"
        " ran the Redis both use and vqueue's PostgreSQL, which moves the rates above.",
        "",
        "| server | median us per join | spread (min-max) | runs |",
        "|---|---:|---|---|",
    ]
    lines += arm_rows(cpu_us, medians)
    lines += [
        "",
        f"Joins per server CPU-second, vqueue/bare: **{per_cpu_s[0]:.3f}**, the median of each"
        f" round's own ratio ({per_cpu_s[1]:.3f}-{per_cpu_s[2]:.3f}).",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_joins", description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=None, help="write the section here")
    args = parser.parse_args(argv)
    result = measure(args.runs, args.seconds, Path(tempfile.mkdtemp(prefix="vqueue-joins-")))
    text = section(result)
    if args.out is not None:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
