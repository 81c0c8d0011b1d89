"""What the metrics cost the fan-out: the same run against a server with `VQ_METRICS=true` and
one with `VQ_METRICS=false`, interleaved, for `make bench`.

Two `vqueue serve` processes, each with its own embedded stores, both pinned to the server CPU
(only one is under load at a time). Each round runs the fan-out once against each, in an order
that alternates (on/off, then off/on, ...) so that a machine growing busier or quieter during
the run does not favour one side. The figures are the median over the rounds, with the spread
(lowest and highest), and the ratio on/off as the median of each round's own ratio; the target
is frames/s with metrics on at least 95% of frames/s with metrics off.

Run alone: python -m loadtest.bench_metrics [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from loadtest.benchdoc import paired_ratio

TARGET_RATIO = 0.95
SIDES = ("on", "off")


def _spec(quick: bool) -> Any:
    from loadtest.bench import Spec

    watchers = "2000" if quick else "10000"
    args = (
        *("--scenario", "steady", "--watchers", watchers, "--processes", "4"),
        *("--duration", "8", "--call-rate", "20", "--leave-rate", "0", "--join-rate", "0"),
    )
    return Spec("metrics", args, False, server_figures=True)


def measure(
    work: Path, rounds: int, quick: bool, variable: str = "VQ_METRICS", name: str = "metrics"
) -> dict[str, list[dict[str, Any]]]:
    """{"on": [report per round], "off": [...]}, each report the harness's JSON; `variable` is
    set to true on one server and false on the other (also used by `bench_notify`)."""
    from loadtest.bench import Server, _free_port, run_one

    servers = {}
    for side in SIDES:
        server = Server(work / f"{name}-{side}", _free_port())
        server.data_dir.mkdir(parents=True, exist_ok=True)
        server.env[variable] = "true" if side == "on" else "false"
        created = server.vqueue("venue", "create", "Bench", "--json").strip().splitlines()[-1]
        servers[side] = (server, _staff_key(created))
    out_dir = work / f"{name}-reports"
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    spec = _spec(quick)
    try:
        for server, _ in servers.values():
            server.start()
        for round_ in range(rounds):
            order = SIDES if round_ % 2 == 0 else SIDES[::-1]
            for side in order:
                server, key = servers[side]
                named = replace(spec, name=f"{name}-{side}")
                results[side].append(run_one(server, key, named, round_ + 1, out_dir))
    finally:
        for server, _ in servers.values():
            server.stop()
    return results


def _staff_key(created_json: str) -> str:
    import orjson

    key: str = orjson.loads(created_json)["staff_key"]
    return key


def _spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def _compare(
    results: dict[str, list[dict[str, Any]]], figure: Callable[[dict[str, Any]], float]
) -> tuple[dict[str, tuple[float, float, float]], float | None]:
    """One figure of every run: each side's median (lowest, highest), and on over off as the
    median of each round's own ratio (`benchdoc.paired_ratio`; None without a reading of every
    run)."""
    values = {side: [figure(r) for r in results[side]] for side in SIDES}
    spreads = {side: _spread(v) for side, v in values.items()}
    try:
        return spreads, paired_ratio(values["on"], values["off"])[0]
    except ValueError:  # a side without a reading of every run
        return spreads, None


def summary(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    fps, fps_ratio = _compare(results, lambda r: float(r["frames_per_s"]))
    cpu, cpu_ratio = _compare(results, lambda r: float(r["server"]["frames_per_cpu_s"] or 0.0))
    p99, p99_ratio = _compare(results, lambda r: float(r["update_latency_ms"]["p99"]))
    return {
        "rounds": len(results["on"]),
        "frames_per_s": fps,
        "frames_per_cpu_s": cpu,
        "update_p99_ms": p99,
        "frames_ratio": fps_ratio,
        "cpu_ratio": cpu_ratio,
        "p99_ratio": p99_ratio,
        "met": None if fps_ratio is None else fps_ratio >= TARGET_RATIO,
        "commands": [r["bench_command"] for side in SIDES for r in results[side][:1]],
    }


def row(name: str, figures: dict[str, tuple[float, float, float]], ratio: float | None) -> str:
    """A table row: each side's median (lowest-highest), then the ratio on / off."""
    cells = [f"{m:,.1f} ({lo:,.1f}-{hi:,.1f})" for m, lo, hi in (figures[x] for x in SIDES)]
    return f"| {name} | {cells[0]} | {cells[1]} | {'-' if ratio is None else f'{ratio:.3f}x'} |"


def rows(s: dict[str, Any]) -> list[str]:
    """The fan-out's rows of a `summary`, as this section and the notifier's show them."""
    return [
        row("position frames delivered per second", s["frames_per_s"], s["frames_ratio"]),
        row(
            "frames per server CPU-second (not the target: immune to other load)",
            s["frames_per_cpu_s"],
            s["cpu_ratio"],
        ),
        row("update latency p99, ms", s["update_p99_ms"], s["p99_ratio"]),
    ]


def section(s: dict[str, Any]) -> str:
    met = {None: "-", True: "**yes**", False: "**NO**"}[s["met"]]
    lines = [
        "## Metrics on vs off (fan-out)",
        "",
        f"The same fan-out run, {s['rounds']} interleaved rounds against a server with "
        "`VQ_METRICS=true` and one with `VQ_METRICS=false`: median (lowest-highest); on / off is"
        " the median of each round's own ratio.",
        "",
        "| | metrics on | metrics off | on / off |",
        "|---|---:|---:|---:|",
        *rows(s),
        "",
        f"Target: frames/s with metrics on >= {TARGET_RATIO:.2f}x metrics off: {met}.",
        "",
        "```",
        *s["commands"],
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_metrics", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2,000 watchers instead of 10,000")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="vqueue-bench-metrics-"))
    print(section(summary(measure(work, args.rounds, args.quick))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
