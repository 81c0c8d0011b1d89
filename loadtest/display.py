"""What a person sees while a run goes on, and the summary at the end.

On a terminal: a live panel (rich) refreshed four times a second. Elsewhere (CI, `make bench`):
one line per phase and a progress line every few seconds, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

PLAIN_EVERY_S = 5.0


class Progress:
    def __init__(self, scenario: str, watchers: int, live: bool) -> None:
        self.console = Console(stderr=True)
        self.scenario = scenario
        self.watchers = watchers
        self.started = time.monotonic()
        self.phase_name = "start"
        self._rate = _Rate()
        self._live: Live | None = None
        self._last_plain = 0.0
        self._state: tuple[dict[str, Any], int] = ({}, 0)
        if live and self.console.is_terminal:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4)

    def __enter__(self) -> Progress:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def phase(self, name: str) -> None:
        self.phase_name = name
        if self._live is None:
            self.console.print(f"[{self._elapsed():6.1f}s] phase: {name}", highlight=False)

    def update(self, totals: dict[str, Any], calls: int) -> None:
        self._state = (totals, calls)
        frames = totals.get("frames", {}).get("position", 0) + totals.get("baseline_frames", 0)
        self._rate.add(frames)
        if self._live is not None:
            self._live.update(self._render())
        elif time.monotonic() - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = time.monotonic()
            self.console.print(self._plain(), highlight=False)

    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    def _plain(self) -> str:
        totals, calls = self._state
        errors = sum(totals.get("errors", {}).values())
        return (
            f"[{self._elapsed():6.1f}s] {self.phase_name}: joined {totals.get('joined', 0)}, "
            f"connected {totals.get('connected', 0)}/{self.watchers}, calls {calls}, "
            f"frames/s {self._rate.per_s:,.0f}, errors {errors}"
        )

    def _render(self) -> Group:
        totals, calls = self._state
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        frames = totals.get("frames", {})
        rows = [
            ("scenario", f"{self.scenario}   phase: [cyan]{self.phase_name}[/]"),
            ("elapsed", f"{self._elapsed():.1f} s"),
            ("joined", f"{totals.get('joined', 0):,}"),
            ("connected", f"{totals.get('connected', 0):,} / {self.watchers:,}"),
            ("reconnecting", f"{totals.get('reconnecting', 0):,}"),
            ("calls", f"{calls:,}"),
            ("frames", ", ".join(f"{k} {v:,}" for k, v in sorted(frames.items())) or "-"),
            ("frames/s", f"{self._rate.per_s:,.0f}"),
        ]
        for name, value in rows:
            table.add_row(name, Text.from_markup(value))
        errors = totals.get("errors", {})
        top = sorted(errors.items(), key=lambda kv: -kv[1])[:4]
        table.add_row(
            "errors",
            Text(
                ", ".join(f"{k} {v}" for k, v in top) or "none", style="red" if errors else "green"
            ),
        )
        return Group(Text("vqueue loadtest", style="bold magenta"), table)


class _Rate:
    """Frames per second over the last couple of seconds of progress updates."""

    def __init__(self) -> None:
        self.points: list[tuple[float, int]] = []
        self.per_s = 0.0

    def add(self, total: int) -> None:
        now = time.monotonic()
        self.points.append((now, total))
        self.points = [(t, v) for t, v in self.points if now - t <= 2.0]
        (t0, v0), (t1, v1) = self.points[0], self.points[-1]
        self.per_s = (v1 - v0) / (t1 - t0) if t1 > t0 else 0.0


def summary(result: dict[str, Any]) -> Table:
    """The figures of a finished run, with the baseline beside them when there is one."""
    table = Table(title=f"vqueue loadtest: {result['scenario']}, {result['watchers']:,} watchers")
    for name in ("figure", "vqueue", "baseline", "ratio"):
        table.add_column(name, justify="left" if name == "figure" else "right")
    for row in _summary_rows(result):
        table.add_row(*row)
    return table


def _summary_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    base, ratios = result.get("baseline") or {}, result.get("ratios") or {}
    up, jl = result["update_latency_ms"], result["join_latency_ms"]
    push_all = _fmt(base.get("push_all_ms"))
    one, server = result["update_latency_per_call_ms"], result["server"]
    rows = [
        (
            f"update latency {pct} (ms)",
            _fmt(up[pct]),
            push_all if pct != "p90" else "",
            _fmt(ratios.get(f"update_{pct}_over_push_all")),
        )
        for pct in ("p50", "p90", "p99", "max")
    ]
    rows += [
        (
            "one call-next p99, median (ms)",
            _fmt(one["p99_median"]),
            push_all,
            _fmt(ratios.get("per_call_p99_over_push_all")),
        ),
        (
            "frames/s",
            _fmt(result["frames_per_s"]),
            _fmt(base.get("frames_per_s")),
            _fmt(ratios.get("frames_per_s")),
        ),
        ("join latency p50 / p99 (ms)", f"{_fmt(jl['p50'])} / {_fmt(jl['p99'])}", "", ""),
        (
            "server RSS per watcher (KiB)",
            _fmt(server["rss_per_watcher_kib"]),
            _fmt(base.get("rss_per_watcher_kib")),
            _fmt(ratios.get("rss_per_watcher")),
        ),
        ("final position mismatches", str(result["final_position_mismatches"]), "", ""),
        ("calls lost / called twice", _calls_checked(result["verdict"]["checks"]), "", ""),
        ("verdict", "passed" if result["verdict"]["passed"] else "FAILED", "", ""),
        ("errors", ", ".join(f"{k} {v}" for k, v in result["errors"].items()) or "none", "", ""),
    ]
    if result.get("reconnect_ms"):
        rc = result["reconnect_ms"]
        rows.append(("reconnect p50 / p99 (ms)", f"{_fmt(rc['p50'])} / {_fmt(rc['p99'])}", "", ""))
        after = result.get("update_latency_after_storm_ms") or {}
        if after.get("count"):
            shown = f"{_fmt(after['p50'])} / {_fmt(after['p99'])}"
            rows.append(("update p50 / p99 after the storm (ms)", shown, "", ""))
    if result.get("failover"):
        fo = result["failover"]
        rc = fo["recovery_ms"]
        rows.append(
            (
                f"failover: {fo['recovered']}/{fo['watching']} back, p50 / p99 / max (ms)",
                f"{_fmt(rc['p50'])} / {_fmt(rc['p99'])} / {_fmt(rc['max'])}",
                "",
                "",
            )
        )
    return rows  # fmt: skip


def _calls_checked(checks: dict[str, int]) -> str:
    return f"{checks['calls_lost']} / {checks['calls_twice']}"


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return str(value)


def print_summary(result: dict[str, Any]) -> None:
    Console(file=sys.stdout).print(summary(result))
