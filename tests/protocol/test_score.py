from __future__ import annotations

import pytest

from protocol.score import BAND, GAP, MID, band_base, priority_of, tail_score


@pytest.mark.parametrize("priority", range(10))
def test_band_round_trip(priority: int) -> None:
    first = tail_score(priority, None)
    assert priority_of(first) == priority
    assert priority_of(band_base(priority)) == priority
    assert priority_of(band_base(priority) + BAND - 1) == priority


def test_higher_priority_scores_lower() -> None:
    assert tail_score(9, None) < tail_score(8, None) < tail_score(0, None)


def test_tail_follows_the_last_in_its_band() -> None:
    assert tail_score(3, band_base(3) + MID) == band_base(3) + MID + GAP


def test_scores_are_exact_doubles() -> None:
    top = tail_score(0, None) + (BAND / 2 - GAP)
    assert top < 2**53 and float(int(top)) == top
