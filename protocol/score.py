"""The line's order as one number: a sorted-set score encoding (priority, order).

Priorities run 0..9, higher first. Each priority owns a band of `BAND` scores; priority 9's band
is the lowest, so it is called first. Inside a band the order is FIFO: a ticket placed at the
tail of its band gets the band's last score plus `GAP` (or `MID` into an empty band), and a
ticket inserted between two others gets the midpoint, so nobody else's score changes. When two
neighbours are too close for a midpoint the script re-spaces the band and says so in its notice
(`rs`); a mirror then reloads from a snapshot. Every score is an integer below 2**53, so a
double, Lua and Redis all hold it exactly. `server/scripts/common.lua` implements the same rules.
"""

from __future__ import annotations

MAX_PRIORITY = 9
BAND = 2.0**49  # scores per priority
MID = 2.0**48  # the first tail placement into an empty band
GAP = 2.0**20  # between consecutive tail placements: 20 halvings before a re-space


def band_base(priority: int) -> float:
    return (MAX_PRIORITY - priority) * BAND


def priority_of(score: float) -> int:
    """The priority whose band holds `score`."""
    return MAX_PRIORITY - min(MAX_PRIORITY, max(0, int(score // BAND)))


def tail_score(priority: int, last_in_band: float | None) -> float:
    """Where a ticket placed at the end of its priority goes."""
    return band_base(priority) + MID if last_in_band is None else last_in_band + GAP
