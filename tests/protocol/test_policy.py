from __future__ import annotations

import pytest

from protocol.eta import EtaEstimator, eta_for, etas_for
from protocol.flush import FlushPolicy
from protocol.names import is_slug, parse_ticket_id, ticket_id
from protocol.ticket import MAX_CALL_INTERVAL_S


def test_eta_unknown_until_enough_calls() -> None:
    eta = EtaEstimator(min_calls=3)
    eta.record_call(100.0)
    eta.record_call(160.0)
    assert eta.estimate_s(2, 161.0) is None
    eta.record_call(220.0)
    assert eta.estimate_s(2, 221.0) == 120


def test_eta_stretches_with_silence_and_gives_up_after_a_break() -> None:
    eta = EtaEstimator(min_calls=3)
    for t in (0.0, 10.0, 20.0):
        eta.record_call(t)
    assert eta.estimate_s(3, 21.0) == 30
    assert eta.estimate_s(3, 60.0) == 120  # 40 s since the last call: slower than we thought
    assert eta.estimate_s(3, 20.0 + MAX_CALL_INTERVAL_S + 1) is None


def test_eta_moves_towards_new_rate() -> None:
    eta = EtaEstimator(alpha=0.5, min_calls=1)
    for t in (0.0, 10.0, 40.0):
        eta.record_call(t)
    assert eta.interval_s == pytest.approx(20.0)


def test_eta_seed() -> None:
    eta = EtaEstimator()
    eta.seed(30.0, 10, 1000.0)
    assert eta.estimate_s(2, 1001.0) == 60


@pytest.mark.parametrize(
    ("last", "now", "delay"),
    [(float("-inf"), 5.0, 0.0), (5.0, 5.02, 0.03), (5.0, 5.2, 0.0)],
)
def test_flush_leading_edge_then_interval(last: float, now: float, delay: float) -> None:
    policy = FlushPolicy(0.05, last)
    assert policy.delay_s(now) == pytest.approx(delay)


@pytest.mark.parametrize(
    ("slug", "ok"),
    [
        ("a", True),
        ("front-desk", True),
        ("0q", True),
        ("-a", False),
        ("A", False),
        ("a" * 65, False),
        ("a_b", False),
        ("", False),
        ("a" * 64, True),
    ],
)
def test_slugs(slug: str, ok: bool) -> None:
    assert is_slug(slug) is ok


def test_ticket_ids() -> None:
    assert ticket_id("front-desk", 42) == "front-desk.42"
    assert parse_ticket_id("front-desk.42") == ("front-desk", 42)
    for bad in ("front-desk", "x.0", "x.-1", "X.1", "x.1.2", "x.01", ""):
        assert parse_ticket_id(bad) is None


def _steady(eta: EtaEstimator, calls: int, every_s: float, start_s: float = 1000.0) -> float:
    """`calls` calls `every_s` apart; the time of the last one."""
    at = start_s
    for i in range(calls):
        at = start_s + i * every_s
        eta.record_call(at)
    return at


@pytest.mark.parametrize("stop", ["paused", "closed"])
def test_eta_after_a_ten_minute_pause_stays_within_20_percent(stop: str) -> None:
    eta = EtaEstimator()
    last = _steady(eta, 10, 60.0)
    before = eta.estimate_s(5, last + 30)  # mid-way between calls, just before the pause
    assert before is not None
    eta.set_state(stop, last + 30)
    eta.set_state("open", last + 30 + 600)
    after = eta.estimate_s(5, last + 30 + 600 + 1)  # right after the resume
    assert after is not None
    assert abs(after - before) <= 0.2 * before, (before, after)


def test_calls_after_a_pause_measure_open_time_only() -> None:
    eta = EtaEstimator(alpha=1.0)
    last = _steady(eta, 5, 60.0)
    eta.set_state("paused", last + 20)
    eta.set_state("open", last + 20 + 900)
    eta.record_call(last + 60 + 900)  # 60 s of open time after the previous call
    assert eta.current_interval_s(last + 60 + 900) == pytest.approx(60.0)


def test_state_reports_are_idempotent() -> None:
    eta = EtaEstimator()
    eta.set_state("paused", 100.0)
    eta.set_state("closed", 150.0)  # still stopped since 100
    eta.set_state("open", 200.0)
    eta.set_state("open", 300.0)
    assert eta.open_clock(400.0) == 300.0


@pytest.mark.parametrize("interval_s", [None, 0.0, 0.5, 1.5, 2.25, 31.7, 600.0])
def test_a_flush_gets_each_position_the_estimate_of_one(interval_s: float | None) -> None:
    positions = list(range(1, 400))  # 0.5 and 2.25 make halves: they round up, never to even
    assert etas_for(positions, interval_s) == [eta_for(p, interval_s) for p in positions]
