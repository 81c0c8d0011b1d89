"""The `scale` bench: watchers grown over several nodes until a call-next's update p99 passes 1 s,
then the fixed 100,000 over as many nodes as that needs, then watchers through one HAProxy process.

A node is one `vqueue serve` process; the open-file limit (20,000 per process) caps each at about
18,000 sockets, so a step with W watchers runs ceil(W / 18,000) nodes on one Redis and
PostgreSQL (node 0's embedded ones) and as many harness processes, process i connected straight
to node i (a balancer would spend two descriptors a connection). No process is pinned: the nodes,
the harness and the services share the box's cores as the scheduler sees fit. Every step must
end with every final position exact. The growing steps stop at the first whose p99 passes 1 s;
the fixed 100,000 step runs whatever they reached. The balancer step runs 9,000 watchers through
one HAProxy process (two descriptors each: 18,000 under the same limit), skipped when `haproxy`
is not installed.

Run: python -m loadtest.bench_scale [--quick] [--out scale.json] [--section BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from loadtest.bench import Server, _free_port, _put_queue

NODE_WATCHERS = 18_000
P99_LIMIT_MS = 1000.0
STEPS = (10_000, 25_000, 50_000)
QUICK_STEPS = (1_000, 2_000)
FIXED, QUICK_FIXED = 100_000, 3_000  # the must-show: always run, after the growing steps
SECTION = "## Scale: several nodes, then a balancer"
BALANCER_WATCHERS, QUICK_BALANCER_WATCHERS = 9_000, 1_000
RUN_ARGS = ("--duration", "6", "--call-rate", "1", "--leave-rate", "0", "--join-rate", "0")


class Cluster:
    """Node 0 with the embedded Redis and PostgreSQL (no watchers), and fresh watcher nodes.

    Watcher nodes are started anew for every step, so each step's memory per watcher is
    measured on a process that held nothing before.
    """

    def __init__(self, work: Path) -> None:
        self.work = work
        self.services = Server(work / "node-0", _free_port(), cpu=None)
        (work / "node-0").mkdir(parents=True)
        self.services.env["VQ_LOG_LEVEL"] = "INFO"  # its log names the embedded services' URLs
        created = self.services.vqueue("venue", "create", "Scale", "--json").splitlines()[-1]
        self.key: str = orjson.loads(created)["staff_key"]
        self.services.start()
        try:
            self.shared = {
                **embedded_urls(work / "node-0"),
                "VQ_SECRET_KEY": (work / "node-0" / "secret_key").read_text().strip(),
            }
        except BaseException:  # no node 0 left running behind a failed start
            self.services.stop()
            raise
        self.nodes: list[Server] = []
        self.started = 0

    def fresh(self, count: int) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes = []
        for _ in range(count):
            self.started += 1
            folder = self.work / f"node-{self.started}"
            folder.mkdir(parents=True)
            node = Server(folder, _free_port(), cpu=None)
            node.env.update(self.shared)
            node.start()
            self.nodes.append(node)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.services.stop()


def embedded_urls(folder: Path) -> dict[str, str]:
    """REDIS_URL and DATABASE_URL of the embedded services node 0 started in `folder`.

    Its log names their ports, never their passwords: those are in the data folder (mode 0600,
    ours), where server/embedded.py keeps them.
    """
    log = (folder / "server.log").read_text()
    redis = re.search(r"embedded Redis at (\S+) ", log)
    postgres = re.search(r"embedded PostgreSQL on port (\d+) ", log)
    if redis is None or postgres is None:
        raise RuntimeError(f"node 0 did not announce its embedded services in {folder}")
    redis_password = (folder / "redis" / "redis.password").read_text().strip()
    pg_password = (folder / "postgres" / "postgres.password").read_text().strip()
    return {
        "REDIS_URL": f"redis://:{redis_password}@{redis.group(1)}/0",
        "DATABASE_URL": f"postgresql://postgres:{pg_password}@127.0.0.1:{postgres.group(1)}/vqueue",
    }


def harness(urls: list[str], cluster: Cluster, watchers: int, out: Path) -> dict[str, Any]:
    queue = f"scale-{out.stem}"
    _put_queue(urls[0], cluster.key, queue)
    processes = max(len(urls), math.ceil(watchers / NODE_WATCHERS))
    args = ["--url", ",".join(urls), "--queue", queue, "--staff-key", cluster.key]
    args += ["--watchers", str(watchers), "--processes", str(processes), *RUN_ARGS]
    first = cluster.nodes[0].proc  # the node harness process 0 watches through
    args += ["--server-pid", str(first.pid if first else 0), "--json", str(out), "--no-progress"]
    print(f"bench scale: {watchers} watchers over {len(urls)} target(s)", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "loadtest", *args], check=False, capture_output=True
    )
    # 1 means a check failed (a wrong final position): the table shows it; else no report.
    if done.returncode not in (0, 1) or not out.exists():
        raise RuntimeError(f"scale run failed:\n{done.stdout.decode()[-3000:]}")
    report: dict[str, Any] = orjson.loads(out.read_bytes())
    shown = [a if a != cluster.key else "$STAFF_KEY" for a in args]
    return summary(report, processes, len(urls), "vqueue loadtest " + " ".join(shown))


def summary(report: dict[str, Any], processes: int, nodes: int, command: str) -> dict[str, Any]:
    server = report["server"]
    on_node0 = sum(report["watchers"] // processes for i in range(processes) if i % nodes == 0)
    grown = (server["rss_after_kib"] or 0) - (server["rss_before_kib"] or 0)
    return {
        "watchers": report["watchers"],
        "connected": report["watchers_connected"],
        "nodes": nodes,
        "update_p50_ms": report["update_latency_ms"]["p50"],
        "update_p99_ms": report["update_latency_ms"]["p99"],
        "final_checked": report["final_checked"],
        "final_mismatches": report["final_position_mismatches"],
        "kib_per_watcher": round(grown / on_node0, 1) if grown > 0 and on_node0 else None,
        "command": command,
    }


def balancer_run(cluster: Cluster, watchers: int, out: Path) -> dict[str, Any] | None:
    if shutil.which("haproxy") is None:
        return None
    port = _free_port()
    servers = "".join(f"    server n{i} 127.0.0.1:{n.port}\n" for i, n in enumerate(cluster.nodes))
    config = out.with_suffix(".cfg")
    config.write_text(
        "global\n    maxconn 9500\n"
        "defaults\n    mode http\n    option forwardfor\n    timeout connect 5s\n"
        "    timeout client 60s\n    timeout server 60s\n    timeout tunnel 1h\n"
        f"frontend vqueue\n    bind 127.0.0.1:{port}\n    default_backend nodes\n"
        f"backend nodes\n    balance leastconn\n{servers}"
    )
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # haproxy binds at once; a failed start shows in poll()
        if proc.poll() is not None:
            raise RuntimeError("haproxy did not start")
        return harness([f"http://127.0.0.1:{port}"], cluster, watchers, out)
    finally:
        proc.terminate()
        proc.wait(10)


def run(quick: bool, work: Path, max_watchers: int | None = None) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    cluster = Cluster(work)
    try:
        for watchers in QUICK_STEPS if quick else STEPS:
            if max_watchers is not None and watchers > max_watchers:
                break
            steps.append(step(cluster, watchers))
            if (steps[-1]["update_p99_ms"] or 0) > P99_LIMIT_MS:
                break
        fixed = step(cluster, QUICK_FIXED if quick else FIXED)
        count = QUICK_BALANCER_WATCHERS if quick else BALANCER_WATCHERS
        cluster.fresh(1)
        balanced = balancer_run(cluster, count, work / "balancer.json")
    finally:
        cluster.stop()
    return {"p99_limit_ms": P99_LIMIT_MS, "steps": steps, "fixed": fixed, "balancer": balanced}


def step(cluster: Cluster, watchers: int) -> dict[str, Any]:
    """`watchers` over as many fresh nodes as the open-file limit needs, each harness process
    connected straight to its node."""
    cluster.fresh(math.ceil(watchers / NODE_WATCHERS))
    urls = [n.url for n in cluster.nodes]
    return harness(urls, cluster, watchers, cluster.work / f"step-{watchers}.json")


def render(result: dict[str, Any]) -> str:
    lines = [
        SECTION,
        "",
        "Watchers grown until a call-next's update p99 passes 1 s, then the fixed "
        f"{result['fixed']['watchers']:,} (`python -m loadtest.bench_scale`). A node that holds no "
        "watchers runs the embedded Redis and PostgreSQL; each watcher node is one fresh process "
        "under the 20,000 open-file limit, harness process i connects straight to node i, and no "
        "process is pinned to a core. Memory per watcher is the first node's RSS growth over the "
        "watchers it held; behind HAProxy (one node, two descriptors a watcher in the balancer) "
        "the node holds them all."
        + (f" Load average before / after: {result['load']}." if result.get("load") else ""),
        "",
        "| watchers | nodes | update p50 / p99 (ms) | final checked / wrong | KiB per watcher |",
        "|---|---|---|---|---|",
    ]
    rows = [*result["steps"], {**result["fixed"], "watchers_shown": "fixed"}]
    if result["balancer"] is not None:
        rows.append({**result["balancer"], "nodes": "1 HAProxy"})
    for row in rows:
        label = f"{row['watchers']:,}" + (" (fixed)" if row.get("watchers_shown") else "")
        lines.append(
            f"| {label} | {row['nodes']} | {row['update_p50_ms']} / "
            f"{row['update_p99_ms']} | {row['final_checked']:,} / {row['final_mismatches']} | "
            f"{row['kib_per_watcher']} |"
        )
    lines += ["", "Commands:", ""]
    lines += [f"- `{row['command']}`" for row in rows]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Put `section` in the Markdown file at `path`, in place of an earlier one (or at the end)."""
    text = path.read_text() if path.exists() else ""
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("\n" + text[end + 1 :] if end >= 0 else "")
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_scale", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small steps, for trying it out")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    parser.add_argument(
        "--max-watchers",
        type=int,
        default=None,
        help="skip the growing steps above this (the fixed step still runs)",
    )
    parser.add_argument(
        "--section", type=Path, default=None, help="write the table into this Markdown file"
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="vqueue-scale-"))
    before = os.getloadavg()
    result = run(args.quick, work, args.max_watchers)
    after = os.getloadavg()
    result["load"] = f"{before[0]:.1f} / {after[0]:.1f}"
    if args.out is not None:
        args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    section = render(result)
    if args.section is not None:
        write_section(args.section, section)
    print(section)
    runs = [*result["steps"], result["fixed"], result["balancer"] or {}]
    return 1 if any(r.get("final_mismatches") for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
