"""Holds the cyclic collector's young passes back while WebSockets open in a burst.

A connect storm (a node restarted and every customer comes back at once) leaves tens of long-lived
objects per socket, and each young pass walks those made since the last one while the sockets
behind them wait for their first position: with the thresholds `server/app.py` sets, a storm of
10,000 spent about 1.2 s of its 7.6 s collecting (BENCHMARKS.md, "Profile"). While at least
`burst` WebSocket upgrade requests arrive within a window, young passes wait for `held_young`
allocations instead (a bound on the cyclic garbage kept meanwhile); once a window sees fewer, the
usual thresholds are back and the next allocation runs the pass that waited. That pass walks only
what is still alive (what died in between left the young generation with its reference count), so
the storm's work is moved past its end, not added to.

`Pacing` is the decision, driven by the clock it is given; `CollectorPacer` runs it on the event
loop and sets the collector's thresholds.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

BURST = 100  # WebSocket upgrade requests within one window that make a storm
WINDOW_S = 0.5
# Young passes during a storm: every 1,000,000 allocations (about 13,000 sockets' worth), not
# every 50,000. The pass that follows the storm walks at most this many objects.
HELD_YOUNG = 1_000_000


class Pacing:
    """Counts upgrade requests; says when to hold the collector back and when to let it go.

    A hold begins when `burst` of them arrive within `window_s`; then `check()`, called every
    `window_s`, ends it once fewer than `burst` arrived since the check before.
    """

    __slots__ = ("_arrivals", "_since_check", "_window_start", "burst", "held", "window_s")

    def __init__(self, burst: int = BURST, window_s: float = WINDOW_S) -> None:
        self.burst = burst
        self.window_s = window_s
        self.held = False
        self._arrivals = 0  # in the window that began at _window_start
        self._window_start = float("-inf")
        self._since_check = 0  # while held: arrivals since the hold began or the last check

    def opened(self, now: float) -> bool:
        """One upgrade request at `now`; True when it starts a hold (call `check()` each window)."""
        if now - self._window_start >= self.window_s:
            self._window_start = now
            self._arrivals = 0
        self._arrivals += 1
        self._since_check += 1
        if self.held or self._arrivals < self.burst:
            return False
        self.held = True
        self._since_check = 0
        return True

    def check(self) -> bool:
        """One window of a hold is over; False when it saw fewer than `burst` requests."""
        if self._since_check < self.burst:
            self.held = False
        self._since_check = 0
        return self.held


class CollectorPacer:
    """Runs `Pacing` on the event loop: `opened()` per WebSocket upgrade request."""

    def __init__(
        self,
        normal: tuple[int, int, int],
        pacing: Pacing | None = None,
        held_young: int = HELD_YOUNG,
        set_threshold: Callable[[int, int, int], None] = gc.set_threshold,
    ) -> None:
        self.normal = normal
        self.pacing = pacing or Pacing()
        self.held_young = held_young
        self._set_threshold = set_threshold
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self.holds = 0  # storms seen, for the logs and tests

    def opened(self) -> None:
        if self.pacing.opened(self._loop.time()):
            self.holds += 1
            self._set_threshold(self.held_young, self.normal[1], self.normal[2])
            self._timer = self._loop.call_later(self.pacing.window_s, self._check)

    def _check(self) -> None:
        if self.pacing.check():
            self._timer = self._loop.call_later(self.pacing.window_s, self._check)
        else:
            self._timer = None
            self._set_threshold(*self.normal)

    def close(self) -> None:
        """Stop pacing and put the usual thresholds back."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.pacing.held:
            self.pacing.held = False
            self._set_threshold(*self.normal)


def install(pacer: CollectorPacer | None) -> None:
    """Make `pacer` the one `opened()` reports to (None: none). The collector is one per
    process, and so is its pacer."""
    current = _INSTALLED[0]
    if current is not None and current is not pacer:
        current.close()
    _INSTALLED[0] = pacer


def opened() -> None:
    """A WebSocket upgrade request arrived (server.httpprotocol calls this)."""
    pacer = _INSTALLED[0]
    if pacer is not None:
        pacer.opened()


_INSTALLED: list[CollectorPacer | None] = [None]
