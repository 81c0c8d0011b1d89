from __future__ import annotations

import pytest

from protocol.eta import EtaEstimator
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
