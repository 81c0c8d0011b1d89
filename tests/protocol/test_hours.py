"""Opening-hours arithmetic in tables, with real time zones (zoneinfo)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from protocol.hours import Boundary, Hours, HoursError, local_instant

PARIS = ZoneInfo("Europe/Paris")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("day", "clock_s", "expected"),
    [
        (date(2026, 12, 2), 9 * 3600, utc(2026, 12, 2, 8)),  # winter: UTC+1
        (date(2026, 7, 1), 9 * 3600, utc(2026, 7, 1, 7)),  # summer: UTC+2
        # spring forward: 02:00-03:00 does not exist; 02:30 means 03:00 local = 01:00 UTC
        (date(2026, 3, 29), 2 * 3600 + 1800, utc(2026, 3, 29, 1)),
        (date(2026, 3, 29), 2 * 3600, utc(2026, 3, 29, 1)),
        (date(2026, 3, 29), 3 * 3600, utc(2026, 3, 29, 1)),
        # fall back: 02:30 happens twice; the first is 00:30 UTC
        (date(2026, 10, 25), 2 * 3600 + 1800, utc(2026, 10, 25, 0, 30)),
        # 24:00 is the next midnight
        (date(2026, 3, 28), 24 * 3600, utc(2026, 3, 28, 23)),
    ],
)
def test_local_instants(day: date, clock_s: int, expected: datetime) -> None:
    assert local_instant(day, clock_s, PARIS) == expected


def test_gap_in_a_zone_with_a_half_hour_change() -> None:
    # Lord Howe moves 30 minutes: 02:00 -> 02:30 on 2026-10-04; 02:15 means 02:30 local.
    tz = ZoneInfo("Australia/Lord_Howe")
    got = local_instant(date(2026, 10, 4), 2 * 3600 + 15 * 60, tz)
    assert got.astimezone(tz).replace(tzinfo=None) == datetime(2026, 10, 4, 2, 30)


WEEKDAYS: dict[str, Any] = {
    "tz": "Europe/Paris",
    "weekly": {"mon": [["09:00", "12:00"], ["14:00", "17:30"]], "sat": [["10:00", "13:00"]]},
    "at_close": "clear",
}


@pytest.mark.parametrize(
    ("now", "last", "following"),
    [
        # Monday 2026-11-30, 10:00 Paris: opened at 09:00, closes at 12:00
        (
            utc(2026, 11, 30, 9),
            Boundary(utc(2026, 11, 30, 8), "open"),
            Boundary(utc(2026, 11, 30, 11), "close"),
        ),
        # exactly at a boundary: it counts as passed
        (
            utc(2026, 11, 30, 11),
            Boundary(utc(2026, 11, 30, 11), "close"),
            Boundary(utc(2026, 11, 30, 13), "open"),
        ),
        # Thursday: the last boundary was Monday's close, the next Saturday's open
        (
            utc(2026, 12, 3, 12),
            Boundary(utc(2026, 11, 30, 16, 30), "close"),
            Boundary(utc(2026, 12, 5, 9), "open"),
        ),
    ],
)
def test_last_and_next_boundary(now: datetime, last: Boundary, following: Boundary) -> None:
    hours = Hours.parse(WEEKDAYS)
    assert hours.last_boundary(now) == last
    assert hours.next_boundary(now) == following


def test_empty_schedule_has_no_boundary() -> None:
    hours = Hours.parse({"tz": "UTC", "weekly": {}})
    assert hours.last_boundary(utc(2026, 1, 1)) is None
    assert hours.next_boundary(utc(2026, 1, 1)) is None


def test_round_trip_and_seconds() -> None:
    raw = {"tz": "UTC", "weekly": {"tue": [["08:00:30", "24:00"]]}, "at_close": "keep"}
    assert Hours.parse(raw).to_json() == raw
    whole = {"tz": "UTC", "weekly": {"tue": [["13:00:00", "14:00:05"], ["09:00", "10:00"]]}}
    assert Hours.parse(whole).to_json()["weekly"] == {
        "tue": [["09:00", "10:00"], ["13:00", "14:00:05"]]
    }


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        {"tz": "Mars/Olympus", "weekly": {}},
        {"tz": "", "weekly": {}},
        {"tz": "UTC"},
        {"tz": "UTC", "weekly": {"monday": []}},
        {"tz": "UTC", "weekly": {"mon": [["17:00", "09:00"]]}},
        {"tz": "UTC", "weekly": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}},
        {"tz": "UTC", "weekly": {"mon": [["9:00", "12:00"]]}},
        {"tz": "UTC", "weekly": {"mon": [["24:30", "12:00"]]}},
        {"tz": "UTC", "weekly": {"mon": [["09:00"]]}},
        {"tz": "UTC", "weekly": {"mon": "09:00-17:00"}},
        {"tz": "UTC", "weekly": {}, "at_close": "drop"},
        {"tz": "UTC", "weekly": {}, "extra": 1},
        {"tz": "../../etc/passwd", "weekly": {}},
    ],
)
def test_bad_schedules_are_refused(raw: Any) -> None:
    with pytest.raises(HoursError):
        Hours.parse(raw)
