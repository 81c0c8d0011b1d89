"""Opening hours: a weekly schedule in a time zone, and the instants where it opens or closes.

Pure arithmetic: every function takes `now` (an aware datetime) from the caller, like arq's
`cron.next_cron`. A schedule is `{"tz": "Europe/Paris", "weekly": {"mon": [["09:00", "17:00"]],
...}, "at_close": "keep" | "clear"}`. Times are `HH:MM` or `HH:MM:SS`; an interval lies within
one day (`24:00` ends it at midnight). A local time that a daylight-saving change skips means
the first instant after the gap; a time that happens twice means the first of the two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIME_RE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9]))?|24:00(?::00)?")
MAX_INTERVALS_PER_DAY = 12
LOOKBACK_DAYS = 8  # a week and a day: the last boundary of any non-empty schedule is within it


class HoursError(ValueError):
    """A schedule that cannot be used; the message says which part."""


@dataclass(frozen=True, slots=True)
class Boundary:
    at: datetime  # UTC
    action: str  # "open" | "close"


@dataclass(frozen=True, slots=True)
class Hours:
    tz: ZoneInfo
    weekly: dict[str, tuple[tuple[int, int], ...]]  # day -> (start s, end s) since midnight
    at_close: str  # "keep" | "clear"

    @classmethod
    def parse(cls, raw: Any) -> Hours:
        if not isinstance(raw, dict):
            raise HoursError("'hours' must be an object")
        unknown = set(raw) - {"tz", "weekly", "at_close"}
        if unknown:
            raise HoursError(f"'hours' has unknown fields: {', '.join(sorted(unknown))}")
        tz = raw.get("tz")
        if not isinstance(tz, str) or not tz or len(tz) > 64:
            raise HoursError("'hours.tz' must be an IANA time zone name")
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise HoursError(f"'hours.tz': unknown time zone {tz!r}") from None
        at_close = raw.get("at_close", "keep")
        if at_close not in ("keep", "clear"):
            raise HoursError("'hours.at_close' must be 'keep' or 'clear'")
        weekly = raw.get("weekly")
        if not isinstance(weekly, dict):
            raise HoursError("'hours.weekly' must be an object of days")
        days: dict[str, tuple[tuple[int, int], ...]] = {}
        for day, intervals in weekly.items():
            if day not in DAYS:
                raise HoursError(f"'hours.weekly': unknown day {day!r} (use {', '.join(DAYS)})")
            days[day] = _intervals(day, intervals)
        return cls(zone, days, at_close)

    def to_json(self) -> dict[str, Any]:
        return {
            "tz": self.tz.key,
            "weekly": {
                day: [[_clock(a), _clock(b)] for a, b in self.weekly[day]]
                for day in DAYS
                if day in self.weekly
            },
            "at_close": self.at_close,
        }

    def boundaries_on(self, day: date) -> list[Boundary]:
        """The day's boundaries (by its local weekday), in time order."""
        out: list[Boundary] = []
        for start_s, end_s in self.weekly.get(DAYS[day.weekday()], ()):
            out.append(Boundary(local_instant(day, start_s, self.tz), "open"))
            out.append(Boundary(local_instant(day, end_s, self.tz), "close"))
        return out

    def last_boundary(self, now: datetime) -> Boundary | None:
        """The latest boundary at or before `now`, or None for an empty schedule."""
        today = now.astimezone(self.tz).date()
        for back in range(LOOKBACK_DAYS + 1):
            past = [b for b in self.boundaries_on(today - timedelta(days=back)) if b.at <= now]
            if past:
                return past[-1]
        return None

    def next_boundary(self, now: datetime) -> Boundary | None:
        """The first boundary after `now`, or None for an empty schedule."""
        today = now.astimezone(self.tz).date()
        for ahead in range(LOOKBACK_DAYS + 1):
            future = [b for b in self.boundaries_on(today + timedelta(days=ahead)) if b.at > now]
            if future:
                return future[0]
        return None


def _seconds(text: Any, where: str) -> int:
    match = TIME_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise HoursError(f"{where}: times are 'HH:MM' or 'HH:MM:SS' (00:00 to 24:00)")
    if text.startswith("24"):
        return 24 * 3600
    return int(match.group(1)) * 3600 + int(match.group(2)) * 60 + int(match.group(3) or 0)


def _intervals(day: str, raw: Any) -> tuple[tuple[int, int], ...]:
    where = f"'hours.weekly.{day}'"
    if not isinstance(raw, list) or len(raw) > MAX_INTERVALS_PER_DAY:
        raise HoursError(f"{where} must be a list of at most {MAX_INTERVALS_PER_DAY} intervals")
    out: list[tuple[int, int]] = []
    for item in raw:
        if not isinstance(item, list) or len(item) != 2:
            raise HoursError(f"{where}: each interval is [start, end]")
        start, end = _seconds(item[0], where), _seconds(item[1], where)
        if start >= end:
            raise HoursError(f"{where}: an interval must end after it starts, within the day")
        out.append((start, end))
    out.sort()
    for (_, end), (start, _) in pairwise(out):
        if start < end:
            raise HoursError(f"{where}: intervals overlap")
    return tuple(out)


def _clock(seconds: int) -> str:
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}" if s == 0 else f"{h:02d}:{m:02d}:{s:02d}"


def local_instant(day: date, seconds: int, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time; in a DST gap, the first instant after the gap."""
    if seconds >= 24 * 3600:
        day, seconds = day + timedelta(days=1), seconds - 24 * 3600
    wall = datetime.combine(day, time(seconds // 3600, seconds // 60 % 60, seconds % 60))
    first = wall.replace(tzinfo=tz, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant  # it exists (the first of two, when it happens twice)
    # Skipped: the gap's end is the transition, between the two readings of the wall time.
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = instant
    offset = low.astimezone(tz).utcoffset()
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(tz).utcoffset() == offset:
            low = mid
        else:
            high = mid
    return high.replace(microsecond=0)
