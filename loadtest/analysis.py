"""How the harness turns what it recorded into latencies and a verdict, with no I/O.

Update latency. The call-next response carries no `seq`, but the `called` frame that the called
ticket's own watcher receives does: that gives each call k its queue seq S_k. A call moves every
ticket still waiting behind it, so for each watcher that was already watching before S_k (its
first frame has a seq below S_k) and still waiting at S_k (its own `called`/`status` frame, if
any, has a seq above S_k), the update reached it with the first `position` frame whose seq is at
least S_k. Its latency is that frame's arrival time minus the call's anchor time (the moment the
staff process read the call-next response; see `Call`). Position frames are coalesced, so one
frame can carry several calls: each call gets its own sample, the older ones a longer latency.
Correlating by seq rather than by time order means a frame that a leave or a join caused is
never mistaken for a call's, and no frame is attributed to a call it does not reflect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Call:
    """One call-next as the staff process saw it. Times are time.time() (one clock per host)."""

    seq: int  # the queue seq of the call, from the called ticket's `called` frame
    sent_at: float  # the request was written
    answered_at: float  # the response was read: the anchor of update latency


def update_latencies(
    seqs: Sequence[int],
    times: Sequence[float],
    first_seq: int,
    end_seq: int | None,
    calls: Sequence[Call],
) -> list[tuple[int, float, float]]:
    """(call index, latency from response s, latency from request s) for one watcher.

    `seqs`/`times` are the watcher's position frames in arrival order (seq never decreases);
    `calls` are sorted by seq.
    """
    out: list[tuple[int, float, float]] = []
    frame, frames = 0, len(seqs)
    for index, call in enumerate(calls):
        if call.seq <= first_seq:
            continue
        if end_seq is not None and call.seq >= end_seq:
            break
        while frame < frames and seqs[frame] < call.seq:
            frame += 1
        if frame == frames:
            break
        arrived = times[frame]
        out.append((index, arrived - call.answered_at, arrived - call.sent_at))
    return out


@dataclass(frozen=True, slots=True)
class Mismatch:
    ticket_id: str
    seen: str  # what the watcher last received, e.g. "position 3" or "called"
    truth: str  # what the staff list says, e.g. "position 2" or "not waiting"


def final_mismatches(
    last_seen: Mapping[str, tuple[str, int | None]], waiting: Mapping[str, int]
) -> list[Mismatch]:
    """Compare each watcher's last message with the true line (ticket id -> position).

    `last_seen` maps ticket id to ("position", n), or to the type of its last non-position
    message ("called", "left", ...) with None. A ticket watched on several connections is
    checked once per connection by the caller.
    """
    out: list[Mismatch] = []
    for tid, (kind, position) in last_seen.items():
        true_position = waiting.get(tid)
        truth = "not waiting" if true_position is None else f"position {true_position}"
        seen = kind if position is None else f"{kind} {position}"
        if kind == "position":
            if position != true_position:
                out.append(Mismatch(tid, seen, truth))
        elif true_position is not None:
            out.append(Mismatch(tid, seen, truth))
    return out
