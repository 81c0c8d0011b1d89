"""`make bench`: a fixed set of harness runs against a fresh local server, into BENCHMARKS.md.

The server is one `vqueue serve` process pinned to CPU 0 (its embedded Redis and PostgreSQL,
started before the pinning, stay free to use either core); the harness and the baseline's
clients run on CPU 1, the baseline server on CPU 0 like the server it stands beside. With
REDIS_URL and DATABASE_URL set, those are used instead of embedded ones.

Run: python -m loadtest.bench [--out BENCHMARKS.md] [--repeat 3] [--quick] [--persist JSON]
(`make bench` first runs `python -m server.bench_persist`, whose JSON `--persist` reads.)
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from loadtest.benchdoc import render
from loadtest.httpc import HttpClient, Reply

START_TIMEOUT_S = 90.0
SERVER_CPU, HARNESS_CPU = "0", "1"


STORMS = ("storm", "reconnect-storm", "storm-calls")


@dataclass(frozen=True)
class Spec:
    name: str
    args: tuple[str, ...]
    target: bool  # one of the runs the targets are judged on
    # The server's CPU and memory read too (`--server-pid`): every target run, and the sections
    # that compare two servers by frames per server CPU-second.
    server_figures: bool = False


def specs(quick: bool) -> list[Spec]:
    """The fixed set: two target runs at 10,000 watchers, then each scenario at 5,000."""
    big, mid = ("2000", "1000") if quick else ("10000", "5000")
    kept = "500" if quick else "2500"  # one harness process's watchers of four
    fixed = ("--leave-rate", "0", "--join-rate", "0", "--baseline")
    target = ("--scenario", "steady", "--watchers", big, "--processes", "4")
    scenario = ("--watchers", mid, "--processes", "2", "--duration", "12")
    return [
        Spec("latency", (*target, "--duration", "10", "--call-rate", "1", *fixed), True),
        Spec("fanout", (*target, "--duration", "8", "--call-rate", "20", *fixed), True),
        # A connect storm of `big` watchers beside a bare server's storm (its own target).
        Spec("storm", ("--scenario", "reconnect-storm", "--watchers", big, "--processes", "4",
                       "--duration", "12", "--call-rate", "1", "--baseline"), False),
        Spec("reconnect-storm", ("--scenario", "reconnect-storm", *scenario, "--call-rate", "1",
                                 "--baseline"), False),
        # Calls during a storm, timed at the watchers that keep their sockets through it (one
        # harness process's: its CPU is not busy reconnecting the others).
        Spec("storm-calls", ("--scenario", "reconnect-storm", "--watchers", big, "--storm-keep",
                             kept, "--processes", "4", "--duration", "12", "--call-rate", "2",
                             "--leave-rate", "0", "--join-rate", "0"), False),
        Spec("join-spike", ("--scenario", "join-spike", *scenario, "--call-rate", "1"), False),
        Spec("slow-readers", ("--scenario", "slow-readers", *scenario, "--call-rate", "2"), False),
    ]  # fmt: skip


def runs_of(spec: Spec, repeat: int) -> int:
    """`repeat` runs (a median and its spread) of each run with a target, the storms included
    (theirs are their own); one of every other scenario."""
    return repeat if spec.target or spec.name in STORMS else 1


class Server:
    """A `vqueue serve` child process on a free port, pinned to SERVER_CPU (or to `cpu`; None: not
    pinned)."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        extra_env: dict[str, str] | None = None,
        cpu: str | None = SERVER_CPU,  # None: not pinned, the scheduler spreads it
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.cpu = cpu
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "VQ_DATA_DIR": str(data_dir),
            "VQ_DEMO": "0",
            "VQ_LOG_LEVEL": "WARNING",
            # The harness joins and watches from loopback: the abuse limits must not count it.
            "VQ_RATE_EXEMPT": "127.0.0.0/8,::1",
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def vqueue(self, *args: str) -> str:
        cmd = [sys.executable, "-m", "server", *args]
        return subprocess.run(cmd, env=self.env, check=True, capture_output=True).stdout.decode()

    def start(self) -> None:
        log = (self.data_dir / "server.log").open("ab")
        cmd = [sys.executable, "-m", "server", "serve", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.data_dir / 'server.log'}")
            if _get(f"{self.url}/healthz") == 200:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("the server did not start in time")
        if self.cpu is None:
            return
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():  # every thread
            os.sched_setaffinity(int(task.name), {int(self.cpu)})

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 30)


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout_s`."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _request(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    key: str | None = None,
    timeout_s: float = 30.0,
) -> Reply:
    """One request from synchronous code, on a client of its own."""
    import asyncio

    async def once() -> Reply:
        client = HttpClient(base_url, 1, timeout_s=timeout_s)
        try:
            return await client.request(method, path, body, key)
        finally:
            await client.close()

    return asyncio.run(once())


def _get(url: str) -> int | None:
    parts = url.split("/", 3)
    try:
        return _request("/".join(parts[:3]), "GET", "/" + parts[3], timeout_s=2.0).status
    except Exception:  # not up yet: any failure means "try again"
        return None


def _fanout_loop(url: str) -> str | None:
    """Which write loop the node's fan-out runs, "c" or "python" (its `/readyz` details, which
    a loopback client gets)."""
    body = _request(url, "GET", "/readyz").body
    loop = body.get("fanout_loop") if isinstance(body, dict) else None
    return loop if isinstance(loop, str) else None


def _put_queue(url: str, key: str, queue: str) -> None:
    reply = _request(url, "PUT", f"/v1/queues/{queue}", {"name": queue}, key)
    if reply.status not in (200, 201):
        raise RuntimeError(f"PUT /v1/queues/{queue} answered {reply.status}")


def run_one(server: Server, key: str, spec: Spec, rep: int, out_dir: Path) -> dict[str, Any]:
    queue = f"bench-{spec.name}-{rep}"
    _put_queue(server.url, key, queue)
    stem = out_dir / f"{spec.name}-{rep}"
    args = [
        "--url",
        server.url,
        "--queue",
        queue,
        "--staff-key",
        "$STAFF_KEY",
        *spec.args,
        "--harness-cpus",
        HARNESS_CPU,
        "--baseline-cpus",
        SERVER_CPU,
        "--json",
        f"{stem}.json",
        "--html",
        f"{stem}.html",
        "--no-progress",
    ]
    if spec.target or spec.server_figures:
        args[args.index("--no-progress") : args.index("--no-progress")] = [
            "--server-pid",
            str(server.proc.pid if server.proc else 0),
        ]
    shown = "vqueue loadtest " + shlex.join(args).replace("'$STAFF_KEY'", "$STAFF_KEY")
    real = [a if a != "$STAFF_KEY" else key for a in args]
    print(f"bench: {spec.name} #{rep}: {shown}", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "loadtest", *real], capture_output=True, check=False
    )
    # 1 means a check failed (wrong positions, lost calls): the report says which, and
    # BENCHMARKS.md shows it; anything else means there is no report to show.
    if done.returncode not in (0, 1) or not Path(f"{stem}.json").exists():
        raise RuntimeError(
            f"{spec.name} failed:\n{done.stdout.decode()[-3000:]}{done.stderr.decode()[-3000:]}"
        )
    report: dict[str, Any] = orjson.loads(Path(f"{stem}.json").read_bytes())
    report["bench_command"] = shown
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--repeat", type=int, default=3, help="runs of each target run (median)")
    parser.add_argument("--quick", action="store_true", help="small runs, for trying it out")
    parser.add_argument("--keep", type=Path, default=None, help="keep JSON/HTML reports here")
    parser.add_argument(
        "--persist",
        type=Path,
        default=None,
        help="the JSON that `python -m server.bench_persist` wrote, for its section",
    )
    parser.add_argument(
        "--metrics-rounds", type=int, default=5, help="interleaved metrics on/off rounds"
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="vqueue-bench-"))
    out_dir = args.keep or work / "reports"
    out_dir.mkdir(parents=True, exist_ok=True)
    server = Server(work / "data", _free_port())
    started = time.time()
    load_before = os.getloadavg()
    # The embedded services announce themselves on stdout too: the JSON is the last line.
    created = server.vqueue("venue", "create", "Bench", "--json").strip().splitlines()[-1]
    key = orjson.loads(created)["staff_key"]
    server.start()
    fanout_loop = _fanout_loop(server.url)
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        for spec in specs(args.quick):
            reps = runs_of(spec, args.repeat)
            results[spec.name] = [run_one(server, key, spec, r + 1, out_dir) for r in range(reps)]
    finally:
        server.stop()
    persist = _persistence(args.persist)
    from loadtest import bench_metrics  # it builds on this module's Server and run_one

    overhead = bench_metrics.measure(work, args.metrics_rounds, args.quick)
    from loadtest import bench_priority  # likewise

    priority = bench_priority.measure(work, args.quick)
    text = render(results, started, load_before, os.getloadavg(), args.quick, persist, fanout_loop)
    text += "\n" + _limits(work / "limits.md", args.quick)
    text += "\n" + _joins(work / "joins.md", args.quick)
    from loadtest.bench_scale import render as render_scale  # it builds on this module

    text += "\n" + render_scale(_scale(work / "scale.json", args.quick))
    text += "\n" + bench_metrics.section(bench_metrics.summary(overhead))
    text += "\n" + bench_priority.section(priority)
    from loadtest import bench_notify  # it builds on this module and on bench_metrics

    text += "\n" + _notify(work, args.metrics_rounds, args.quick, bench_notify)
    text += "".join(_kept_section(args.out, heading) for heading in KEPT_HEADINGS)
    args.out.write_text(text)
    print(f"bench: wrote {args.out} in {time.time() - started:.0f} s (reports in {out_dir})")
    return 0


# Sections written by hand, not by a run: the profile (py-spy, callgrind of
# `server.bench_flush`) and the scenarios' rounds with the drift check off.
KEPT_HEADINGS = ("## Profile", "## Exactness under the scenarios")


def _kept_section(path: Path, heading: str) -> str:
    """The section of the BENCHMARKS.md being replaced whose heading starts with `heading`,
    carried over as it is."""
    if not path.exists():
        return ""
    old = path.read_text()
    start = old.find("\n" + heading)
    if start < 0:
        return ""
    end = old.find("\n## ", start + len(heading) + 2)
    return "\n" + (old[start + 1 :] if end < 0 else old[start + 1 : end + 1])


def _persistence(path: Path | None) -> dict[str, Any] | None:
    """The persistence benchmark's result (`python -m server.bench_persist`, its own step of
    `make bench`: it imports `server`, which `loadtest/` never does), if there is one."""
    if path is None:
        return None
    if not path.exists():
        raise SystemExit(f"bench: no persistence result at {path}: run server.bench_persist first")
    result: dict[str, Any] = orjson.loads(path.read_bytes())
    return result


def _scale(out: Path, quick: bool) -> dict[str, Any]:
    """Run the scale bench (its own nodes, Redis and PostgreSQL) and return its result."""
    argv = [sys.executable, "-m", "loadtest.bench_scale", *(["--quick"] if quick else [])]
    # Exit 1 is a wrong final position: its table shows it. No JSON means it did not run.
    subprocess.run([*argv, "--out", str(out)], check=False, stdout=subprocess.DEVNULL)
    if not out.exists():
        raise RuntimeError("the scale bench wrote no result")
    result: dict[str, Any] = orjson.loads(out.read_bytes())
    return result


def _limits(out: Path, quick: bool) -> str:
    """Run the join-throughput comparison with and without the abuse limits; its section."""
    # 30,000 joins a run (about 4 s): at 10,000 a run lasted a second once joins took the script
    # lane, and one arm's runs spread over 6,600-9,500/s.
    runs, joins = ("3", "500") if quick else ("5", "30000")
    return _section_of("loadtest.bench_limits", ["--runs", runs, "--joins", joins], out)


def _joins(out: Path, quick: bool) -> str:
    """Run the joins-per-second comparison with the bare join; its section."""
    runs, seconds = ("1", "3") if quick else ("3", "8")
    return _section_of("loadtest.bench_joins", ["--runs", runs, "--seconds", seconds], out)


def _section_of(module: str, args: list[str], out: Path) -> str:
    """Run a bench module that writes its BENCHMARKS.md section to `--out`; that section."""
    argv = [sys.executable, "-m", module, *args, "--out", str(out)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return out.read_text()


def _notify(work: Path, rounds: int, quick: bool, bench_notify: Any) -> str:
    """The notifier's section: the "your turn" mail lag, and the fan-out with it on vs off."""
    tickets, calls = (2_000, 500) if quick else (10_000, 3_000)
    section: str = bench_notify.run(work, tickets, calls, 50.0, rounds, quick)
    return section


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


if __name__ == "__main__":
    sys.exit(main())
