"""`python -m server.bench_flush`: its workload is the fan-out's, in either layout."""

from __future__ import annotations

import pytest

from server.bench_flush import _SCATTERS, Scatter, build, one_round
from server.outbox import SENT


@pytest.mark.parametrize("scattered", [False, True])
def test_every_round_reaches_everyone_behind_the_call(scattered: bool) -> None:
    fanout, q = build(300, scattered)
    for r in range(3):
        sent = SENT.value
        compute_s, write_s = one_round(fanout, q, 2 + r, 1 + r, 300 - 1 - r)
        # A position to each ticket behind the called one, `called` to that one.
        assert SENT.value - sent == 300 - r
        assert compute_s > 0 and write_s > 0
    assert q.watch.mirror is not None and q.watch.mirror.numbers[0] == 4


def test_scattered_watchers_connect_out_of_line_order() -> None:
    """The layout the option stands for: a connect order other than the line's, each watcher's
    objects among others."""
    _, in_a_row = build(300)
    _, scattered = build(300, scattered=True)
    assert list(in_a_row.watch.watched()) == sorted(in_a_row.watch.watched())
    order = list(scattered.watch.watched())
    assert sorted(order) == list(range(1, 301)) and order != sorted(order)
    others = _SCATTERS[-1].kept  # allocated between the watchers', half of them freed since
    assert len(others) == 300 * Scatter.OBJECTS_PER_WATCHER
    assert others.count(None) == len(others) // 2
