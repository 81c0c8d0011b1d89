"""Summaries of measured samples: percentiles, histograms, counts per time bucket.

Pure functions over plain sequences, so the report, the HTML plots and the tests share them.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from typing import TypedDict

PERCENTILES = (50.0, 90.0, 99.0)


class Summary(TypedDict):
    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    mean: float | None


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending sequence: always a value that was measured."""
    if not ordered:
        raise ValueError("no samples")
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(samples: Iterable[float], digits: int = 2) -> Summary:
    ordered = sorted(samples)
    if not ordered:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    return {
        "count": len(ordered),
        "p50": round(percentile(ordered, 50.0), digits),
        "p90": round(percentile(ordered, 90.0), digits),
        "p99": round(percentile(ordered, 99.0), digits),
        "max": round(ordered[-1], digits),
        "mean": round(math.fsum(ordered) / len(ordered), digits),
    }


def log_bins(low: float, high: float, per_decade: int = 10) -> list[float]:
    """Bin edges spaced evenly on a log scale, covering [low, high]."""
    low = max(low, 1e-3)
    high = max(high, low * 1.0001)
    start = math.floor(math.log10(low) * per_decade)
    stop = math.ceil(math.log10(high) * per_decade)
    return [10 ** (i / per_decade) for i in range(start, stop + 1)]


def histogram(samples: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts per bin [edges[i], edges[i+1]); values outside fall into the first or last bin."""
    from bisect import bisect_right

    counts = [0] * max(1, len(edges) - 1)
    last = len(counts) - 1
    for value in samples:
        index = bisect_right(edges, value) - 1
        counts[min(max(index, 0), last)] += 1
    return counts


def bucket_counts(times: Iterable[float], start: float, width_s: float, size: int) -> list[int]:
    """How many of `times` fall in each of `size` buckets of `width_s` from `start`."""
    counts = [0] * size
    for t in times:
        index = int((t - start) // width_s)
        if 0 <= index < size:
            counts[index] += 1
    return counts


def in_window(times: Sequence[float], start: float, end: float) -> tuple[int, float | None]:
    """How many of the ascending `times` fall in [start, end], and the last of them."""
    first, past = bisect_left(times, start), bisect_right(times, end)
    return past - first, (times[past - 1] if past > first else None)


def add_into(total: list[int], part: Sequence[int]) -> list[int]:
    if len(total) < len(part):
        total.extend([0] * (len(part) - len(total)))
    for i, value in enumerate(part):
        total[i] += value
    return total


def ratio(value: float | None, reference: float | None, digits: int = 3) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return round(value / reference, digits)
