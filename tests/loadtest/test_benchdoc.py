"""BENCHMARKS.md's targets table judges each figure against the fan-out's bar; its Connect storms
table shows each side's storm with the clients' own wait."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.benchdoc import _header, _storm_calls, _storms, _targets
from loadtest.comparison import _storm as bare_storm


def _results(fps_ratio: float, p99_ratio: float, rss: float, storm: float) -> dict[str, Any]:
    latency = {
        "watchers": 10_000,
        "update_latency_per_call_ms": {"p99_median": 100.0 * p99_ratio},
        "update_latency_ms": {"p99": 120.0},
        "baseline": {"push_all_ms": 100.0, "rss_per_watcher_kib": 13.0},
        "ratios": {"per_call_p99_over_push_all": p99_ratio, "update_p99_over_push_all": 1.2},
        "server": {"rss_per_watcher_kib": rss},
    }
    fanout = {
        "frames_per_s": 60_000.0 * fps_ratio,
        "baseline": {"frames_per_s": 60_000.0},
        "ratios": {"frames_per_s": fps_ratio, "frames_per_cpu_s": fps_ratio},
    }
    storms = {"watchers": 10_000, "ratios": {"storm_time": storm}}
    reconnect = {
        "watchers": 5_000,
        "ratios": {"storm_time": storm},
        "update_latency_after_storm_ms": {"p99": 80.0},
    }
    return {
        "latency": [latency] * 3,
        "fanout": [fanout] * 3,
        "storm": [storms] * 3,
        "reconnect-storm": [reconnect] * 3,
    }


def _verdicts(table: list[str]) -> dict[str, str]:
    rows = [r for r in table if r.startswith("| ") and not r.startswith("| figure")]
    return {r.split("|")[1].strip()[:24]: r.rstrip(" |").rsplit("|", 1)[1].strip() for r in rows}


@pytest.mark.parametrize(
    ("fps", "p99", "rss", "storm", "met"),
    [
        (1.25, 0.80, 15.0, 1.1, "**yes**"),
        (1.15, 0.90, 17.0, 1.3, "**NO**"),  # 1.15x frames and a 1.3x storm time fall short
    ],
)
def test_each_target_row_is_judged_against_the_fan_outs_bar(
    fps: float, p99: float, rss: float, storm: float, met: str
) -> None:
    verdicts = _verdicts(_targets(_results(fps, p99, rss, storm)))
    judged = {k: v for k, v in verdicts.items() if v in ("**yes**", "**NO**")}
    assert sorted(judged) == sorted(
        [
            "position frames delivere",
            "update latency p99 of on",
            "server RSS per idle watc",
            "watchers brought to thei",
            "reconnect storm of 5,000",
        ]
    )
    assert set(judged.values()) == {met}


def test_each_storm_row_shows_when_the_clients_last_socket_connected() -> None:
    """The Connect storms table puts beside each run's storm time the clients' own wait: the
    last socket's TCP connect, vqueue's and the bare server's ("-" in a report without it)."""
    run = {
        "watchers": 5_000,
        "reconnect_ms": {"max": 5_010.0},
        "storm": {"tcp_connect_ms": {"max": 4_620.0}},
        "baseline": {"storm": {"time_s": 1.78, "tcp_connect_ms": {"max": 410.0}}},
        "ratios": {"storm_time": 2.81},
        "update_latency_ms": {"p99": 900.0},
        "update_latency_after_storm_ms": {"p99": 78.0},
        "final_position_mismatches": 0,
        "errors": {},
    }
    older = {**run, "storm": {}, "baseline": {"storm": {"time_s": 1.78}}}
    rows = [r for r in _storms({"reconnect-storm": [run, older]}) if r.startswith("| reconnect")]
    header = next(r for r in _storms({}) if r.startswith("| run"))
    column = [c.strip() for c in header.split("|")].index("last TCP connect s (vqueue / bare)")
    assert [[c.strip() for c in r.split("|")][column] for r in rows[:2]] == [
        "4.62 / 0.41",
        "- / -",
    ]


def test_the_bare_storm_reports_when_each_socket_connected() -> None:
    replies = [
        {"t0": 100.0, "firsts": [100.5, 100.9], "failed": 0, "connects": [100.2, 100.4]},
        {"t0": 100.1, "firsts": [101.0], "failed": 1, "connects": [100.45]},
    ]
    storm = bare_storm(replies)
    assert storm["tcp_connect_ms"]["count"] == 3
    # from the storm's start (the first worker's), as its time is
    assert storm["tcp_connect_ms"]["max"] == pytest.approx(450.0)
    assert storm["time_s"] == pytest.approx(1.0)


def _kept_run(before_ms: float, during_ms: float) -> dict[str, Any]:
    side = {"calls": 8, "p99_median": before_ms}
    later = {"calls": 6, "p99_median": during_ms}
    kept = {"before": side, "during": later, "during_over_before": during_ms / before_ms}
    return {
        "storm": {"dropped": 8_000},
        "update_latency_kept_ms": {"watchers": 2_000, "from_request": kept, "from_response": kept},
        "calls": {"round_trip_ms": {"max": 900.0}},
        "final_position_mismatches": 0,
        "errors": {},
    }


@pytest.mark.parametrize(
    ("during_ms", "ratio", "met"), [(220.0, "1.10x", "**yes**"), (500.0, "2.50x", "**NO**")]
)
def test_a_call_during_a_storm_is_judged_by_its_kept_watchers(
    during_ms: float, ratio: str, met: str
) -> None:
    """The `storm-calls` runs: a call's p99 at the watchers that kept their sockets, during the
    storm over before it, as the median of the runs, judged against 1.2x."""
    results = {"storm-calls": [_kept_run(200.0, during_ms), _kept_run(200.0, during_ms)]}
    row = next(r for r in _targets(results) if r.startswith("| a call-next during"))
    assert "storm of 8,000, to the 2,000 watchers" in row
    assert f"| {ratio} (" in row and row.rstrip(" |").endswith(met)
    section = _storm_calls(results)
    assert section[0] == "## A call during a storm"
    assert [r for r in section if r.startswith("| 1 |")] == [
        f"| 1 | 8,000 / 2,000 | 8 / 6 | 200.0 / {during_ms:,.1f} | {during_ms / 200:.2f} "
        f"| 200.0 / {during_ms:,.1f} | {during_ms / 200:.2f} | 900.0 | 0 | none |"
    ]
    assert _storm_calls({}) == []  # an older bench without the runs: no section


@pytest.mark.parametrize(
    ("loop", "said"),
    [
        ("c", "with the loop in C (`server/_straight.c`)."),
        ("python", "with the loop in Python."),
        (None, "The node did not say which loop"),
    ],
)
def test_the_header_says_which_write_loop_the_node_ran(loop: str | None, said: str) -> None:
    header = " ".join(_header(0.0, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), False, loop))
    assert said in header
