"""What hot and foreign paths count, with no import of the rest of the server (the fan-out, the
rate limiter and the handlers can all import this without cycles). `server.metrics` exposes it.

- `Tally`: plain integers a handler bumps (`Tally.joins += 1`): no lock, no label lookup.
  (Requests refused by the rate limits are counted by `server.limits.Refused`.)
- `observe_push(seconds)`: the fan-out's one call per flush, with the age of the oldest change
  notice that flush serves (received from Redis -> frames written). Never once per frame.
"""

from __future__ import annotations

from typing import ClassVar

from prometheus_client import Histogram

PUSH_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Not registered at import: each app registers it in its own registry (server.metrics), so two
# apps in one process (tests) do not collide.
PUSH_LATENCY = Histogram(
    "vqueue_push_latency_seconds",
    "From a queue change notice received to the frames it caused written, per flush",
    buckets=PUSH_BUCKETS_S,
    registry=None,
)


class Tally:
    enabled: ClassVar[bool] = True  # False with VQ_METRICS=false: observe_push does nothing
    joins: ClassVar[int] = 0  # join answers (201) from this node
    calls: ClassVar[int] = 0  # call-next answers that called a ticket (200, not 204)


def observe_push(seconds: float) -> None:
    if Tally.enabled:
        PUSH_LATENCY.observe(seconds)
