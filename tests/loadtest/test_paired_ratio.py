"""Interleaved comparisons (the limits, the joins beside a bare join, metrics and notifier on vs
off) are judged by the median of each round's own ratio, not by the ratio of the arms' medians
(the joins' section: tests/loadtest/test_bench_joins.py)."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest import bench_limits, bench_metrics
from loadtest.benchdoc import paired_ratio

# Joins a second in the `make bench` of 2026-12-04 18:56, each arm in its run order (the rounds
# alternate A B, B A, ...): the machine ran slow in some rounds and fast in others, on both arms
# alike, and switched within the third round.
LIMITS = [3907.0, 3598.0, 3627.0, 5488.0, 6050.0]
OFF = [3626.0, 3643.0, 5691.0, 5708.0, 6397.0]


def test_a_slow_spell_moves_only_the_round_it_falls_in() -> None:
    ratio, low, high = paired_ratio(LIMITS, OFF)
    # Rounds: 1.077, 0.988, 0.637 (slow, then fast), 0.961, 0.946.
    assert ratio == pytest.approx(5488 / 5708)
    assert (low, high) == (pytest.approx(3627 / 5691), pytest.approx(3907 / 3626))
    # The ratio of the medians compares a slow run with a fast one: 0.687.
    assert ratio > 0.9 > 3907 / 5691


def test_rounds_must_pair_up() -> None:
    with pytest.raises(ValueError):
        paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        paired_ratio([], [])
    with pytest.raises(ValueError):
        paired_ratio([1.0], [0.0])


def test_the_limits_section_is_judged_by_the_rounds() -> None:
    result = {
        "runs": 5,
        "joins": 30000,
        "rates": {"limits": LIMITS, "off": OFF},
        "median": {"limits": 3627.0, "off": 5691.0},
        "ratio": paired_ratio(LIMITS, OFF),
        "ratio_of_medians": 3627.0 / 5691.0,
    }
    text = bench_limits.section(result)
    assert "Ratio limits/off: **0.961**" in text
    assert "the ratio of the two medians above: 0.637" in text
    assert "join throughput: met)." in text
    slow = dict(result, ratio=paired_ratio([3600.0] * 5, OFF))
    assert "NOT met" in bench_limits.section(slow)


def _fanout(fps: float, p99: float, per_cpu: float) -> dict[str, Any]:
    return {
        "frames_per_s": fps,
        "update_latency_ms": {"p99": p99},
        "server": {"frames_per_cpu_s": per_cpu},
        "bench_command": "vqueue loadtest ...",
    }


def test_metrics_on_over_off_is_judged_by_the_rounds() -> None:
    # Rounds alternate on/off, off/on...: the machine is fast in rounds 1-2 and slow after.
    on = [_fanout(f, 100.0, f) for f in (80_000, 79_000, 50_000, 51_000, 50_500)]
    off = [_fanout(f, 100.0, f) for f in (81_000, 80_000, 80_500, 52_000, 51_000)]
    s = bench_metrics.summary({"on": on, "off": off})
    # Medians 51,000 against 80,000 (0.64); round by round 0.988, 0.988, 0.621, 0.981, 0.990.
    assert s["frames_ratio"] == pytest.approx(79_000 / 80_000)
    assert s["met"] is True
    assert s["cpu_ratio"] == pytest.approx(79_000 / 80_000)
    assert s["p99_ratio"] == pytest.approx(1.0)
    no_cpu = [dict(r, server={"frames_per_cpu_s": None}) for r in off]
    assert bench_metrics.summary({"on": on, "off": no_cpu})["cpu_ratio"] is None
