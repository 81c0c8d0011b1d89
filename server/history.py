"""A queue's persisted history: the staff events and statistics routes, and ETA seeding.

Both routes read PostgreSQL only (they answer while Redis is away) and need a staff key of the
queue's venue. The events API never returns a ticket's nonce: only the fields in
`PUBLIC_FIELDS` leave `queue_events.data`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from protocol.eta import EtaEstimator
from protocol.names import is_slug, ticket_id
from server.access import require_owner, staff_venue
from server.db.events import EventLog, LoggedEvent, to_ms, to_time
from server.errors import ApiError, Unavailable
from server.httpio import JSONResponse
from server.services import services

log = logging.getLogger(__name__)

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
DEFAULT_WINDOW_MS = 24 * 3600 * 1000
PUBLIC_FIELDS = (
    "waiting",
    "name",
    "counter",
    "waited_ms",
    "service_ms",
    "priority",
    "reason",
    "was",
    "to_queue",
    "from_queue",
    "boundary",
    "key_id",
)
COUNTED = {
    "joined": "joins",
    "called": "called",
    "served": "served",
    "no_show": "no_shows",
    "left": "left",
    "removed": "removed",
    "transferred": "transferred",
    "recalled": "recalled",
    "requeued": "requeued",
}
SEED_CALLS = 50
STATE_AFTER_EVENT = {
    "paused": "paused",
    "closed": "closed",
    "resumed": "open",
    "opened": "open",
    "archived": "closed",
}
MAX_INT = 2**63 - 1  # PostgreSQL's bigint
# Years 1 to 9999, the range of Python's datetime, in Unix milliseconds.
MIN_TIME_MS = to_ms(datetime(1, 1, 2, tzinfo=UTC))
MAX_TIME_MS = to_ms(datetime(9999, 12, 30, tzinfo=UTC))
SEED_TIMEOUT_S = 1.0
MAX_INT64 = 2**63 - 1  # seq is a PostgreSQL bigint
# Times a response can still write as ISO 8601 (an out-of-range one is refused with 400).
EARLIEST_MS = to_ms(datetime(1, 1, 1, tzinfo=UTC))
LATEST_MS = to_ms(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC))


def iso(ms: int) -> str:
    return to_time(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bad_query(message: str) -> ApiError:
    return ApiError(400, "invalid_query", message)


def _int_param(request: Request, name: str, default: int, low: int, high: int = MAX_INT) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if len(raw) > 20:  # int() of a huge string is slow, and no such value is in range anyway
        raise _bad_query(f"'{name}' must be between {low} and {high}")
    try:
        value = int(raw)
    except ValueError:
        raise _bad_query(f"'{name}' must be an integer") from None
    if not low <= value <= high:
        raise _bad_query(f"'{name}' must be between {low} and {high}")
    return value


def _time_param(request: Request, name: str, default_ms: int) -> int:
    """A time as ISO 8601 (UTC unless it says otherwise) or as Unix seconds."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default_ms
    try:
        if raw.lstrip("-").replace(".", "", 1).isdigit():
            return _time_in_range(name, int(float(raw) * 1000))
        at = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except (ValueError, OverflowError):
        raise _bad_query(f"'{name}' must be an ISO 8601 time or Unix seconds") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    try:
        ms = to_ms(at)
    except OverflowError:
        ms = MAX_TIME_MS + 1
    return _time_in_range(name, ms)


def _time_in_range(name: str, ms: int) -> int:
    if not MIN_TIME_MS <= ms <= MAX_TIME_MS:
        raise _bad_query(f"'{name}' must be a time in the years 1 to 9999")
    return ms


async def _venue_queue(request: Request) -> tuple[EventLog, str]:
    """The queue of the path, owned by the caller's venue (checked in PostgreSQL)."""
    svc = services(request)
    venue = await staff_venue(request, svc)
    queue = request.path_params["queue"]
    if not is_slug(queue):
        raise ApiError.from_code("queue_not_found")
    row = await svc.db.queue(queue)
    require_owner(None if row is None else row.venue_id, venue)
    return EventLog(svc.db), queue


def event_json(queue: str, event: LoggedEvent) -> dict[str, Any]:
    out: dict[str, Any] = {
        "seq": event.seq,
        "type": event.kind,
        "ticket_id": None if event.ticket is None else ticket_id(queue, event.ticket),
        "at": iso(event.at_ms),
        "at_ms": event.at_ms,
        "epoch": event.epoch,
    }
    for key in PUBLIC_FIELDS:
        if key in event.data:
            out[key] = event.data[key]
    data = event.data
    if "numbers" in data:  # a bulk removal
        out["ticket_ids"] = [ticket_id(queue, int(n)) for n in str(data["numbers"]).split(",")]
    if "to_ticket" in data and "to_queue" in data:
        out["to_ticket_id"] = ticket_id(str(data["to_queue"]), int(data["to_ticket"]))
    if "from_ticket" in data and "from_queue" in data:
        out["from_ticket_id"] = ticket_id(str(data["from_queue"]), int(data["from_ticket"]))
    if "settings" in data:
        out["settings"] = orjson.loads(str(data["settings"]))
    return out


async def list_events(request: Request) -> Response:
    after_seq = _int_param(request, "after_seq", 0, 0)
    limit = min(_int_param(request, "limit", DEFAULT_LIMIT, 1), MAX_LIMIT)
    log_, queue = await _venue_queue(request)
    events = await log_.page(queue, after_seq, limit)
    return JSONResponse(
        {
            "queue": queue,
            "events": [event_json(queue, e) for e in events],
            "next_after_seq": events[-1].seq if events else after_seq,
        }
    )


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def queue_stats(request: Request) -> Response:
    now_ms = int(time.time() * 1000)
    since = _time_param(request, "since", now_ms - DEFAULT_WINDOW_MS)
    until = _time_param(request, "until", now_ms + 1000)
    if since >= until:
        raise _bad_query("'since' must be before 'until'")
    log_, queue = await _venue_queue(request)
    raw = await log_.stats(queue, since, until)
    totals = dict.fromkeys(COUNTED.values(), 0)
    per_hour = []
    for hour, counts in raw["hours"]:
        row: dict[str, Any] = {"hour": hour.isoformat().replace("+00:00", "Z")}
        for kind, name in COUNTED.items():
            row[name] = counts.get(kind, 0)
            totals[name] += row[name]
        row["waiting"] = counts.get("waiting")  # None: no event of that hour logged it
        per_hour.append(row)
    eta = raw["eta"]
    return JSONResponse(
        {
            "queue": queue,
            "since": iso(since),
            "until": iso(until),
            **totals,
            "avg_wait_s": _seconds(raw["wait_avg_s"]),
            "p90_wait_s": _seconds(raw["wait_p90_s"]),
            "avg_service_s": _seconds(raw["service_avg_s"]),
            "avg_call_interval_s": _seconds(raw["call_interval_avg_s"]),
            "throughput_per_hour": per_hour,
            "eta_error": {
                "samples": eta["samples"],
                "mean_s": _seconds(eta["mean"]),
                "mean_abs_s": _seconds(eta["mean_abs"]),
                "p90_abs_s": _seconds(eta["p90_abs"]),
            },
        }
    )


def eta_seeder(log_: EventLog) -> Callable[[str, EtaEstimator], Awaitable[None]]:
    """What the fan-out awaits when it first loads a queue: its estimator primed from history."""

    async def seed(queue: str, eta: EtaEstimator) -> None:
        try:
            history = await asyncio.wait_for(log_.eta_history(queue, SEED_CALLS), SEED_TIMEOUT_S)
        except (Unavailable, TimeoutError):
            return  # no history now: the estimate starts from live calls
        if eta.calls:
            return  # live calls came in meanwhile; they are newer than any history
        for kind, at_ms in history:
            if kind == "called":
                eta.record_call(at_ms / 1000.0)
            else:  # paused or closed time is not service time
                eta.set_state(STATE_AFTER_EVENT[kind], at_ms / 1000.0)

    return seed


ROUTES = [
    Route("/v1/queues/{queue}/events", list_events, methods=["GET"]),
    Route("/v1/queues/{queue}/stats", queue_stats, methods=["GET"]),
]
