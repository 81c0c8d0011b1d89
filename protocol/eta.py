"""Wait estimates from a queue's recent call rate.

The estimator keeps an exponentially weighted mean of the time between calls. Until it has seen
`min_calls` calls the honest answer is "don't know" (None). A long silence since the last call
stretches the interval (people are not being called as fast as before) rather than pretending the
old rate still holds. All times are seconds passed in by the caller.

Time while the queue is paused or closed is not service time: nobody can be called then, so it
says nothing about how fast staff work. The caller reports state changes (`set_state`) and the
estimator measures gaps and silences on an "open clock" that stands still meanwhile, so the
estimate right after a resume is what it was before the pause.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.ticket import MAX_CALL_INTERVAL_S

DEFAULT_ALPHA = 0.2
DEFAULT_MIN_CALLS = 3


@dataclass(slots=True)
class EtaEstimator:
    alpha: float = DEFAULT_ALPHA
    min_calls: int = DEFAULT_MIN_CALLS
    interval_s: float | None = None
    calls: int = 0
    last_call_s: float | None = field(default=None)  # on the open clock
    stopped_since_s: float | None = None  # when the queue stopped being open (wall clock)
    stopped_total_s: float = 0.0  # paused or closed time before `stopped_since_s`

    def set_state(self, state: str, at_s: float) -> None:
        """The queue became `state` ("open", "paused" or "closed") at `at_s`."""
        if state != "open" and self.stopped_since_s is None:
            self.stopped_since_s = at_s
        elif state == "open" and self.stopped_since_s is not None:
            self.stopped_total_s += max(0.0, at_s - self.stopped_since_s)
            self.stopped_since_s = None

    def open_clock(self, at_s: float) -> float:
        """`at_s` minus every paused or closed second before it."""
        stopped = self.stopped_total_s
        if self.stopped_since_s is not None:
            stopped += max(0.0, at_s - self.stopped_since_s)
        return at_s - stopped

    def record_call(self, at_s: float) -> None:
        at_s = self.open_clock(at_s)
        if self.last_call_s is not None and at_s >= self.last_call_s:
            gap = at_s - self.last_call_s
            if gap <= MAX_CALL_INTERVAL_S:
                if self.interval_s is None:
                    self.interval_s = gap
                else:
                    self.interval_s += self.alpha * (gap - self.interval_s)
        if self.last_call_s is None or at_s > self.last_call_s:
            self.last_call_s = at_s
        self.calls += 1

    def seed(self, interval_s: float, calls: int, last_call_s: float | None) -> None:
        """Start from history (e.g. the event log) instead of from nothing (`last_call_s` on
        the open clock)."""
        self.interval_s = interval_s
        self.calls = calls
        self.last_call_s = last_call_s

    def current_interval_s(self, now_s: float) -> float | None:
        if self.interval_s is None or self.calls < self.min_calls or self.last_call_s is None:
            return None
        silence = self.open_clock(now_s) - self.last_call_s
        if silence > MAX_CALL_INTERVAL_S:
            return None
        return max(self.interval_s, silence)

    def estimate_s(self, position: int, now_s: float) -> int | None:
        """Seconds until the ticket at `position` is called, or None if we cannot say."""
        return eta_for(position, self.current_interval_s(now_s))


def eta_for(position: int, interval_s: float | None) -> int | None:
    """The estimate for `position` given the current interval between calls (None: unknown).

    Split out so a flush can read the interval once and apply it to thousands of positions.
    """
    if interval_s is None or position < 1:
        return None
    return int(position * interval_s + 0.5)  # interval >= 0: rounds half up, never negative


def etas_for(positions: list[int], interval_s: float | None) -> list[int | None]:
    """`eta_for` of each of `positions` (each 1 or more), as a flush needs them: thousands at
    once, without a call per position."""
    if interval_s is None:
        return [None] * len(positions)
    return [int(position * interval_s + 0.5) for position in positions]
