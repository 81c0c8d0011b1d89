"""The collector's pacing in a connect storm: the decision without a loop, then on a real loop
with the thresholds it sets recorded."""

from __future__ import annotations

import asyncio

from server.gcpacing import CollectorPacer, Pacing

NORMAL = (50_000, 20, 20)


def test_a_burst_within_one_window_starts_one_hold() -> None:
    pacing = Pacing(burst=3, window_s=1.0)
    assert [pacing.opened(t) for t in (0.0, 0.1, 0.2, 0.3, 0.4)] == [
        False,
        False,
        True,  # the third within a second
        False,  # already held
        False,
    ]
    assert pacing.held


def test_the_same_handshakes_spread_over_windows_never_hold() -> None:
    pacing = Pacing(burst=3, window_s=1.0)
    assert not any(pacing.opened(t) for t in (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0))
    assert not pacing.held


def test_a_hold_lasts_while_each_window_sees_a_burst_and_ends_after_the_first_that_does_not() -> (
    None
):
    pacing = Pacing(burst=3, window_s=1.0)
    for t in (0.0, 0.1, 0.2):
        pacing.opened(t)
    for t in (0.5, 0.6, 0.7):  # three more before the first check
        pacing.opened(t)
    assert pacing.check()  # still storming
    pacing.opened(1.5)
    pacing.opened(1.6)  # two: under the burst
    assert not pacing.check()
    assert not pacing.held
    # A straggler a window later does not start a hold again; a new burst does.
    assert not pacing.opened(3.0)
    assert [pacing.opened(t) for t in (5.0, 5.1, 5.2)] == [False, False, True]


async def test_the_pacer_holds_young_passes_back_during_a_storm_and_restores_them_after() -> None:
    set_to: list[tuple[int, int, int]] = []
    pacer = CollectorPacer(
        NORMAL,
        Pacing(burst=5, window_s=0.05),
        held_young=1_000_000,
        set_threshold=lambda a, b, c: set_to.append((a, b, c)),
    )
    for _ in range(4):
        pacer.opened()
    assert set_to == []  # four is no storm
    pacer.opened()
    assert set_to == [(1_000_000, 20, 20)]
    for _ in range(50):  # quiet from here: the next check ends the hold
        if len(set_to) == 2:
            break
        await asyncio.sleep(0.05)
    assert set_to == [(1_000_000, 20, 20), NORMAL]
    assert pacer.holds == 1


async def test_closing_a_pacer_mid_storm_puts_the_usual_thresholds_back() -> None:
    set_to: list[tuple[int, int, int]] = []
    pacer = CollectorPacer(
        NORMAL, Pacing(burst=2, window_s=10.0), set_threshold=lambda *t: set_to.append(t)
    )
    pacer.opened()
    pacer.opened()
    pacer.close()
    assert set_to[-1] == NORMAL
    assert not pacer.pacing.held
