"""The joins comparison's reading of wrk and its server-CPU-per-join lines."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.bench_joins import cpu_lines, cpu_per_join_us, parse_wrk, section
from loadtest.benchdoc import paired_ratio

# What wrk 4 printed here against a local HTTP server (the second: a path it answered 404).
CLEAN = """Running 1s test @ http://127.0.0.1:18777/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.53ms  611.92us   5.69ms   75.58%
    Req/Sec     1.27k   149.75     1.51k    81.82%
  1385 requests in 1.10s, 1.54MB read
Requests/sec:   1257.91
Transfer/sec:      1.40MB
"""
REFUSED = """Running 1s test @ http://127.0.0.1:18777/nonexistent
  1 threads and 2 connections
  1877 requests in 1.00s, 0.93MB read
  Non-2xx or 3xx responses: 1877
Requests/sec:   1876.34
Transfer/sec:      0.93MB
"""


def test_wrk_gives_its_rate_and_request_count() -> None:
    run = parse_wrk(CLEAN)
    assert run is not None
    assert (run.rate, run.requests) == (1257.91, 1385)


@pytest.mark.parametrize(
    "output",
    [
        REFUSED,
        CLEAN.replace("Requests/sec", "Socket errors: connect 0, read 3, write 0\nRequests/sec"),
        CLEAN.replace("  1385 requests in 1.10s, 1.54MB read\n", ""),
    ],
    ids=["non-2xx", "socket errors", "no count"],
)
def test_a_run_that_is_not_comparable_is_refused(output: str) -> None:
    assert parse_wrk(output) is None


def test_cpu_per_join_is_the_cpu_time_over_the_joins() -> None:
    assert cpu_per_join_us(10.0, 11.5, 7500) == pytest.approx(200.0)
    assert cpu_per_join_us(10.0, 10.0, 0) == 0.0  # a run that joined nothing does not divide by 0


def _result(
    cpu_us: dict[str, list[float]], rates: dict[str, list[float]] | None = None
) -> dict[str, Any]:
    rates = rates or {"vqueue": [4000.0, 4200.0, 3900.0], "bare": [5000.0, 5100.0, 4900.0]}
    return {
        "runs": 3,
        "seconds": 8,
        "rates": rates,
        "median": {"vqueue": 4000.0, "bare": 5000.0},
        "ratio": paired_ratio(rates["vqueue"], rates["bare"]),
        "ratio_of_medians": 0.8,
        "cpu_us": cpu_us,
        "load": (1.0, 1.0, 1.0),
    }


def test_the_section_shows_joins_per_server_cpu_second_as_vqueue_over_bare() -> None:
    # vqueue spends 160 us a join (median), the bare join 128: 0.8 of the bare's joins per
    # CPU-second.
    text = section(_result({"vqueue": [150.0, 160.0, 170.0], "bare": [120.0, 128.0, 140.0]}))
    assert "| vqueue | 160 | 150-170 | 150, 160, 170 |" in text
    assert "| bare | 128 | 120-140 | 120, 128, 140 |" in text
    assert "Joins per server CPU-second, vqueue/bare: **0.800**, the median of each" in text


def test_without_a_cpu_reading_of_both_sides_there_is_no_cpu_table() -> None:
    assert cpu_lines({"vqueue": [150.0], "bare": []}) == []
    # A run that joined nothing reads 0 us per join: no ratio to take, and no crash either.
    assert cpu_lines({"vqueue": [150.0, 0.0], "bare": [120.0, 130.0]}) == []
    assert "us per join" not in section(_result({}))


def test_the_section_pairs_rates_and_cpu_by_round() -> None:
    rates = {"vqueue": [4000.0, 6000.0, 4100.0], "bare": [5000.0, 7000.0, 5000.0]}
    cpu = {"vqueue": [200.0, 160.0, 150.0], "bare": [150.0, 130.0, 140.0]}
    text = section(_result(cpu, rates))
    # Rounds 0.800, 0.857, 0.820.
    assert "Ratio vqueue/bare: **0.820**, the median of each round's own ratio (0.800-0.857" in text
    assert "(target: at least 0.8: met)" in text
    # Joins per CPU-second, vqueue over bare, by round: 0.750, 0.8125, 0.933.
    assert "Joins per server CPU-second, vqueue/bare: **0.812**" in text
    # A reading missed on one side: the rounds no longer pair up, so no CPU table.
    assert "us per join" not in section(_result({**cpu, "bare": [1.0]}, rates))
