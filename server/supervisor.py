"""Keep the embedded Redis and PostgreSQL running under `vqueue serve`.

A child that dies (a crash, the OOM killer, `kill -9`) is reaped at once, so no zombie stays,
and started again from its data folder on the same port: the node's clients (redis-py's pool,
asyncpg's pool, the pub/sub reader) reconnect to the URL they already hold. Redis replays its
AOF; PostgreSQL runs its crash recovery from the WAL. A child that keeps dying is restarted
after a growing pause, so a broken data folder does not turn into a busy loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from server.embedded import EmbeddedServiceError, LifelongThread, _Service

log = logging.getLogger(__name__)

POLL_S = 0.1  # how soon a death is noticed; restarts must land within 5 s
BACKOFF_S = (0.0, 0.5, 1.0, 2.0, 4.0)  # pause before the 1st, 2nd... restart in a row
STABLE_S = 5.0  # a child that ran this long was healthy: restart it at once if it dies


def _pause(failures: int) -> float:
    """The wait before the next start of a child that failed `failures` (>= 1) times in a row."""
    return BACKOFF_S[min(failures, len(BACKOFF_S)) - 1]


@dataclass(eq=False)
class _Watched:
    service: _Service
    failures: int = 0  # deaths or failed starts in a row, each soon after the last start
    up_since: float = 0.0
    retry_at: float | None = None  # dead, to be started again at this monotonic time
    died_at: float = 0.0
    status: int = 0  # the exit status it died with


class Supervisor:
    """One thread that restarts whichever of `services` dies, until `stop()`."""

    def __init__(self, services: Sequence[_Service]) -> None:
        now = time.monotonic()
        self._watched = [_Watched(service, up_since=now) for service in services]
        self._stopping = threading.Event()
        self._thread = LifelongThread(target=self._run, name="vqueue-supervisor", daemon=True)
        self.restarts = 0
        self.failed_starts = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; the caller stops the services (they stay up until then)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(POLL_S):
            for watched in self._watched:
                try:
                    self._check(watched, time.monotonic())
                except Exception:  # the supervisor itself must not die: log and keep watching
                    log.exception("supervising %s failed", watched.service.name)

    def _check(self, watched: _Watched, now: float) -> None:
        service = watched.service
        with service.lock:
            if self._stopping.is_set():
                return
            if watched.retry_at is None:
                status = service.reap()
                if status is None:
                    return
                stable = now - watched.up_since >= STABLE_S
                watched.failures = 1 if stable else watched.failures + 1
                watched.retry_at = now + _pause(watched.failures)
                watched.died_at, watched.status = now, status
            if now < watched.retry_at:
                return
            self._restart(watched)

    def _restart(self, watched: _Watched) -> None:
        service = watched.service
        try:
            service.start()
        except EmbeddedServiceError as exc:
            self.failed_starts += 1
            watched.failures += 1
            pause = _pause(watched.failures)
            watched.retry_at = time.monotonic() + pause
            log.error("%s did not restart (%s); trying again in %.1f s", service.name, exc, pause)
            return
        watched.retry_at = None
        watched.up_since = time.monotonic()
        self.restarts += 1
        log.warning(
            "%s died (exit status %d); restarted from its data folder on port %d in %.2f s",
            service.name,
            watched.status,
            service.port,
            watched.up_since - watched.died_at,
        )
