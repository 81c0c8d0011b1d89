"""When to flush coalesced position updates: leading edge, then at most once per interval.

An isolated change goes out at once; during a burst each watcher gets at most one frame per
`interval_s`, carrying the latest position. Times are seconds passed in by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class FlushPolicy:
    interval_s: float
    last_flush_s: float = float("-inf")

    def delay_s(self, now_s: float) -> float:
        """How long to wait before flushing a change that happened at `now_s`."""
        return max(0.0, self.last_flush_s + self.interval_s - now_s)

    def flushed(self, now_s: float) -> None:
        self.last_flush_s = now_s
