"""`vqueue loadtest`: options, the run, the reports. `server.cli` delegates here."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from pathlib import Path
from typing import Any

from loadtest.display import Progress, print_summary
from loadtest.options import BACKLOG, Options, Scenario
from loadtest.pool import RemoteError
from loadtest.runner import UsageError

EPILOG = """\
examples:
  vqueue loadtest --url http://127.0.0.1:8000 --queue demo --staff-key vqk_...
  vqueue loadtest --url http://127.0.0.1:8000 --queue demo --staff-key vqk_... \\
      --scenario reconnect-storm --watchers 5000 --processes 4 --baseline --html run.html

update latency is measured from the moment the staff process reads a call-next response to
the arrival of each affected watcher's first position frame that reflects that call (matched by
seq); see the report's "method" section.

The harness owns the queue while it runs: it first calls next until the line is empty (calls of
tickets it does not watch could not be matched to a seq), then calls next at --call-rate, and
leaves the tickets it created behind. Point it at a queue meant for testing.

exit status: 0 when every check held; 1 when a watcher ended at a wrong position, a called
ticket's watcher was never told, a ticket was called twice, or a worker failed; 2 on a usage
error (bad options, unknown queue or key, server down).

The harness joins thousands of tickets and opens thousands of sockets from one address: start
the server with its abuse limits off for that address, e.g. VQ_RATE_EXEMPT=127.0.0.0/8,::1 (or
VQ_JOIN_RATE_IP=off VQ_WS_PER_IP=off), or the run is refused with 429s.
"""


def _backlog(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 65535; got {text!r}")
    return value


def _cpus(text: str) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected CPU numbers like 1 or 0,1; got {text!r}"
        ) from None


TARGET, RUN, SCALE, OUTPUT = "target (required)", "the run", "scale and placement", "output"

# (group, flag, argparse keywords): every option, in the order --help shows them.
OPTIONS: list[tuple[str, str, dict[str, Any]]] = [
    (TARGET, "--url", {"required": True,
                       "help": "the server's base URL, e.g. http://127.0.0.1:8000, or several "
                               "nodes' (or a balancer's) separated by commas: process i "
                               "connects to node i mod n"}),
    (TARGET, "--queue", {"required": True, "help": "queue slug to load (it must exist)"}),
    (TARGET, "--staff-key", {"required": True, "help": "a staff key of the queue's venue"}),
    (RUN, "--scenario", {"choices": [s.value for s in Scenario], "default": "steady",
                         "help": "steady | join-spike | reconnect-storm | slow-readers | "
                                 "failover | priority-join (default: steady)"}),
    (RUN, "--failover-url", {"dest": "failover_urls", "action": "append", "default": [],
                             "metavar": "URL",
                             "help": "failover: another node of the same deployment (repeat "
                                     "for several); joins and calls go to the first, dropped "
                                     "watchers reconnect to one at random"}),
    (RUN, "--kill-pid", {"type": int, "default": None,
                         "help": "failover: pid of the local `vqueue serve` at --url, killed "
                                 "with SIGKILL a third of the way into the calls"}),
    (RUN, "--watchers", {"type": int, "default": 500,
                         "help": "customers that join and watch (default: 500)"}),
    (RUN, "--duration", {"type": float, "default": 30.0,
                         "help": "seconds of staff calls (default: 30)"}),
    (RUN, "--call-rate", {"type": float, "default": 2.0,
                          "help": "call-next per second (default: 2)"}),
    (RUN, "--leave-rate", {"type": float, "default": 0.2,
                           "help": "customers leaving per second (default: 0.2)"}),
    (RUN, "--join-rate", {"type": float, "default": None,
                          "help": "customers joining per second during the calls "
                                  "(default: call rate + leave rate)"}),
    (RUN, "--slow-share", {"type": float, "default": 0.1,
                           "help": "slow-readers: share of watchers that stop reading after "
                                   "their first frame (default: 0.1)"}),
    (RUN, "--storm-keep", {"type": int, "default": 0,
                           "help": "reconnect-storm: watchers whose sockets stay up through "
                                   "the storm (whole harness processes first, each one's picked "
                                   "at random over the line); the report compares a call's "
                                   "update latency to them during the storm with before it "
                                   "(default: 0, every socket drops)"}),
    (RUN, "--codec", {"choices": ["vq1.json", "vq1.msgpack"], "default": "vq1.json",
                      "help": "WebSocket subprotocol (default: vq1.json)"}),
    (RUN, "--quiet", {"type": float, "default": 1.5,
                      "help": "seconds without frames before the final position check "
                              "(default: 1.5)"}),
    (RUN, "--seed", {"type": int, "default": 1, "help": "random seed (default: 1)"}),
    (SCALE, "--processes", {"type": int, "default": 1,
                            "help": "harness worker processes; each takes its own 127.0.0.x "
                                    "source address on a loopback target and must stay under "
                                    "20,000 open files (default: 1)"}),
    (SCALE, "--join-concurrency", {"type": int, "default": 32,
                                   "help": "HTTP connections per process for joins "
                                           "(default: 32)"}),
    (SCALE, "--harness-cpus", {"type": _cpus, "default": None,
                               "help": "pin the harness to these CPUs, e.g. 1"}),
    (SCALE, "--baseline-cpus", {"type": _cpus, "default": None,
                                "help": "pin the baseline server to these CPUs, e.g. 0"}),
    (SCALE, "--backlog", {"type": _backlog, "default": BACKLOG,
                          "help": "the bare server's listen backlog: the server's "
                                  f"VQ_LISTEN_BACKLOG (default {BACKLOG}, as vqueue's)"}),
    (SCALE, "--server-pid", {"type": int, "default": None,
                             "help": "pid of a local server process: its memory per watcher "
                                     "and CPU per frame are reported"}),
    (OUTPUT, "--baseline", {"action": "store_true",
                            "help": "also run the same watcher count against a bare "
                                    "websockets.broadcast() server started by the harness, "
                                    "and report ratios"}),
    (OUTPUT, "--json", {"dest": "json_path", "type": Path, "metavar": "PATH",
                        "help": "write the JSON report here"}),
    (OUTPUT, "--html", {"dest": "html_path", "type": Path, "metavar": "PATH",
                        "help": "write the HTML report here"}),
    (OUTPUT, "--no-progress", {"action": "store_true",
                               "help": "no live display (plain lines instead)"}),
]  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vqueue loadtest",
        description="Load-test a vqueue server: customers join over HTTP and watch over "
        "WebSocket, staff call next, customers leave; reports latency, throughput and whether "
        "every watcher ended at its true position.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for group, flag, keywords in OPTIONS:
        if group not in groups:
            groups[group] = p.add_argument_group(group)
        groups[group].add_argument(flag, **keywords)
    return p


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        url=args.url,
        queue=args.queue,
        staff_key=args.staff_key,
        scenario=Scenario(args.scenario),
        watchers=args.watchers,
        duration_s=args.duration,
        call_rate=args.call_rate,
        processes=args.processes,
        json_path=args.json_path,
        html_path=args.html_path,
        baseline=args.baseline,
        join_rate=args.join_rate,
        leave_rate=args.leave_rate,
        slow_share=args.slow_share,
        storm_keep=args.storm_keep,
        codec=args.codec,
        join_concurrency=args.join_concurrency,
        harness_cpus=args.harness_cpus,
        baseline_cpus=args.baseline_cpus,
        backlog=args.backlog,
        server_pid=args.server_pid,
        quiet_s=args.quiet,
        progress=not args.no_progress,
        seed=args.seed,
        failover_urls=tuple(args.failover_urls),
        kill_pid=args.kill_pid,
    )


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    options = options_from(args)
    problem = options.check()
    if problem is not None:
        print(f"vqueue loadtest: {problem}", file=sys.stderr)
        return 2
    command = "vqueue loadtest " + shlex.join(_masked(argv))
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    from loadtest.scenarios import execute, write_reports

    if options.harness_cpus:
        import os

        os.sched_setaffinity(0, options.harness_cpus)
    progress = Progress(options.scenario.value, options.watchers, options.progress)
    try:
        with progress:
            result = asyncio.run(execute(options, progress, command))
    except UsageError as exc:
        print(f"vqueue loadtest: {exc}", file=sys.stderr)
        return 2
    except RemoteError as exc:
        print(f"vqueue loadtest: a worker failed: {exc}", file=sys.stderr)
        return 1
    write_reports(result, options.json_path, options.html_path)
    print_summary(result)
    if not result["verdict"]["passed"]:
        failed = ", ".join(result["verdict"]["failed"])
        print(f"vqueue loadtest: FAILED: {failed}", file=sys.stderr)
        return 1
    return 0


def _masked(argv: list[str]) -> list[str]:
    """The command line with the staff key hidden (reports get shared)."""
    out, hide = [], False
    for arg in argv:
        if hide:
            out.append("$STAFF_KEY")
            hide = False
        elif arg == "--staff-key":
            out.append(arg)
            hide = True
        elif arg.startswith("--staff-key="):
            out.append("--staff-key=$STAFF_KEY")
        else:
            out.append(arg)
    return out
