"""A queue's settings: validated from `PUT /v1/queues/{queue}`, stored in its Redis meta hash,
shown in its summary.

| setting | default | meaning |
|---|---|---|
| `max_waiting` | null (no limit) | a join when this many wait: 409 `queue_full` |
| `board_names` | false | the public board shows names, not only numbers |
| `notify_ahead` | 3 | "almost your turn" when the position first reaches this or less |
| `channels` | push and email on, SMS off | the notification channels the queue uses |
| `hours` | null | opening hours (`protocol/hours.py`); acted on by `server/scheduler.py` |
"""

from __future__ import annotations

from typing import Any

import orjson

from protocol.hours import Hours, HoursError
from server.errors import ApiError

MAX_WAITING_LIMIT = 1_000_000
MAX_NOTIFY_AHEAD = 1000
DEFAULT_NOTIFY_AHEAD = 3
DEFAULT_CHANNELS = {"push": True, "email": True, "sms": False}
SETTING_NAMES = ("max_waiting", "board_names", "notify_ahead", "channels", "hours")


def _bad(message: str) -> ApiError:
    return ApiError(400, "invalid_body", message)


def _count(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(f"'{name}' must be an integer from {low} to {high}")
    return value


def _channels(value: Any) -> dict[str, bool]:
    if not isinstance(value, dict) or not set(value) <= set(DEFAULT_CHANNELS):
        raise _bad("'channels' must be an object with 'push', 'email' and/or 'sms'")
    if not all(isinstance(v, bool) for v in value.values()):
        raise _bad("'channels' values must be true or false")
    return {**DEFAULT_CHANNELS, **value}


def parse_settings(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(the change as logged, the meta fields to write: '' clears one) from a PUT body."""
    change: dict[str, Any] = {}
    fields: dict[str, str] = {}
    if "max_waiting" in data:
        value = data["max_waiting"]
        if value is not None:
            value = _count(value, "max_waiting", 1, MAX_WAITING_LIMIT)
        change["max_waiting"] = value
        fields["max_waiting"] = "" if value is None else str(value)
    if "board_names" in data:
        if not isinstance(data["board_names"], bool):
            raise _bad("'board_names' must be true or false")
        change["board_names"] = data["board_names"]
        fields["board_names"] = "1" if data["board_names"] else "0"
    if "notify_ahead" in data:
        value = _count(data["notify_ahead"], "notify_ahead", 0, MAX_NOTIFY_AHEAD)
        change["notify_ahead"] = value
        fields["notify_ahead"] = str(value)
    if "channels" in data:
        change["channels"] = _channels(data["channels"])
        fields["channels"] = orjson.dumps(change["channels"]).decode()
    if "hours" in data:
        hours = None
        if data["hours"] is not None:
            try:
                hours = Hours.parse(data["hours"]).to_json()
            except HoursError as exc:
                raise _bad(str(exc)) from None
        change["hours"] = hours
        fields["hours"] = "" if hours is None else orjson.dumps(hours).decode()
    return change, fields


def settings_view(meta: dict[str, str]) -> dict[str, Any]:
    """Every setting of a queue, defaults filled in, from its meta hash."""
    max_waiting = meta.get("max_waiting")
    channels = meta.get("channels")
    hours = meta.get("hours")
    return {
        "max_waiting": None if not max_waiting else int(max_waiting),
        "board_names": meta.get("board_names") == "1",
        "notify_ahead": int(meta.get("notify_ahead") or DEFAULT_NOTIFY_AHEAD),
        "channels": dict(DEFAULT_CHANNELS) if not channels else orjson.loads(channels),
        "hours": None if not hours else orjson.loads(hours),
    }
