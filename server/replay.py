"""A queue's live state rebuilt from its event log: events in, state out, no I/O.

`server/recovery.py` reads the events (PostgreSQL merged with the Redis stream) and writes the
result with `restore.lua`. Each event type is applied as its script changed Redis: placements
(joined, requeued, transfer_in) at the score they logged, so priorities and requeued places come
back exactly; a logged re-spacing is redone the way `common.lua` does it; a transferred ticket
keeps where it went, so its old token still follows it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from protocol.score import BAND, GAP, MID, band_base, priority_of, tail_score
from protocol.ticket import FINISHED_KEEP_MS, TicketRecord

log = logging.getLogger(__name__)

STATE_AFTER = {
    "paused": "paused",
    "resumed": "open",
    "closed": "closed",
    "opened": "open",
    "archived": "closed",
}
FINAL = frozenset({"served", "no_show", "left"})  # finished by their own event type
PLACEMENTS = frozenset({"joined", "requeued", "transfer_in"})


@dataclass(frozen=True, slots=True)
class Event:
    """One logged event, from PostgreSQL or from the stream."""

    seq: int
    kind: str
    ticket: int | None
    at_ms: int
    data: Mapping[str, Any]


@dataclass
class LiveQueue:
    """A queue's live state, built by applying its events in seq order."""

    now_ms: int
    state: str = "open"
    seq: int = 0
    next_number: int = 0
    tickets: dict[int, TicketRecord] = field(default_factory=dict)
    line: dict[int, float] = field(default_factory=dict)  # waiting number -> score
    called: dict[int, int] = field(default_factory=dict)
    finished: dict[int, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    hours_ms: int = 0  # the last opening-hours boundary acted on
    archived_ms: int = 0  # when an admin archived the queue (0: not archived)
    missing_seqs: int = 0  # events the log never got (lost with Redis before being persisted)
    new_nonces: int = 0  # tickets whose nonce was not logged: their tokens no longer work

    def apply(self, event: Event) -> None:
        if event.seq <= self.seq:
            return  # already applied (the same event from PostgreSQL and from the stream)
        self.missing_seqs += event.seq - self.seq - 1
        self.seq = event.seq
        number, kind, data = event.ticket, event.kind, event.data
        if kind in STATE_AFTER:
            self.state = STATE_AFTER[kind]
            if "boundary" in data:
                self.hours_ms = max(self.hours_ms, int(data["boundary"]))
            if kind == "archived":  # as archive.lua: closed for good, no schedule
                self.archived_ms = event.at_ms
                self.settings.pop("hours", None)
        elif kind == "settings":
            self._settings(event)
        elif kind == "removed" and "numbers" in data:
            for n in str(data["numbers"]).split(","):
                self._finish(int(n), "removed", event.at_ms)
        elif number is None:
            log.warning("ignoring a %s event with no ticket (seq %d)", kind, event.seq)
        elif kind in PLACEMENTS:
            self._place(number, event)
        elif kind == "called":
            self._call(number, event.at_ms, data)
        elif kind == "recalled":
            self._recall(number, data)
        elif kind in FINAL or kind == "removed":
            self._finish(number, kind, event.at_ms)
        elif kind == "transferred":
            self._transferred(number, event.at_ms, data)
        else:
            log.warning("ignoring an event of unknown type %r (seq %d)", kind, event.seq)

    def ordered_line(self) -> list[int]:
        return [n for n, _ in sorted(self.line.items(), key=lambda item: (item[1], item[0]))]

    def _ticket(self, number: int, joined_ms: int, data: Mapping[str, Any]) -> TicketRecord:
        self.next_number = max(self.next_number, number)
        nonce = data.get("nonce")
        if not nonce:
            nonce = secrets.token_urlsafe(12)
            self.new_nonces += 1
        name = str(data["name"]) if data.get("name") else None
        ticket = self.tickets[number] = TicketRecord("waiting", str(nonce), joined_ms, name)
        return ticket

    def _place(self, number: int, event: Event) -> None:
        data = event.data
        priority = int(data.get("priority", 0))
        if data.get("respaced"):
            self._respace(priority)
        if "score" in data:
            score = float(int(data["score"]))
        else:  # logged before scores: a join at the tail of its priority
            last = [s for s in self.line.values() if priority_of(s) == priority]
            score = tail_score(priority, max(last) if last else None)
        ticket = self.tickets.get(number)
        if event.kind != "requeued" or ticket is None:
            ticket = self._ticket(number, event.at_ms, data)
        self.tickets[number] = replace(
            ticket,
            status="waiting",
            priority=priority,
            counter=None,
            called_ms=None,
            finished_ms=None,
        )
        self.called.pop(number, None)
        self.finished.pop(number, None)
        self.line[number] = score

    def _respace(self, priority: int) -> None:
        """Redo `respace` of common.lua: the band's tickets, in order, evenly spaced again."""
        base = band_base(priority)
        band = [n for n in self.ordered_line() if base <= self.line[n] < base + BAND]
        for i, n in enumerate(band):
            self.line[n] = base + MID + i * GAP

    def _call(self, number: int, at_ms: int, data: Mapping[str, Any]) -> None:
        ticket = self.tickets.get(number)
        if ticket is None:  # its join was lost: keep the call, with a fresh nonce
            ticket = self._ticket(number, at_ms - int(data.get("waited_ms", 0)), {})
        self.line.pop(number, None)
        counter = str(data["counter"]) if data.get("counter") else None
        self.tickets[number] = replace(ticket, status="called", called_ms=at_ms, counter=counter)
        if counter is not None:
            self.counters[counter] = number
        self.called[number] = at_ms

    def _recall(self, number: int, data: Mapping[str, Any]) -> None:
        ticket = self.tickets.get(number)
        counter = data.get("counter")
        if ticket is not None and counter:
            self.tickets[number] = replace(ticket, counter=str(counter))
            self.counters[str(counter)] = number

    def _finish(self, number: int, status: str, at_ms: int) -> TicketRecord | None:
        self.line.pop(number, None)
        self.called.pop(number, None)
        ticket = self.tickets.get(number)
        if ticket is None or at_ms < self.now_ms - FINISHED_KEEP_MS:
            self.tickets.pop(number, None)  # long finished: Redis would have swept it by now
            self.finished.pop(number, None)
            return None
        ticket = self.tickets[number] = replace(ticket, status=status, finished_ms=at_ms)
        self.finished[number] = at_ms
        return ticket

    def _transferred(self, number: int, at_ms: int, data: Mapping[str, Any]) -> None:
        ticket = self._finish(number, "transferred", at_ms)
        if ticket is not None:
            self.tickets[number] = replace(
                ticket,
                to_queue=str(data.get("to_queue")),
                to_number=int(data.get("to_ticket", 0)),
                to_nonce=str(data.get("to_nonce")),
                transfer_id=str(data.get("transfer")),
            )

    def _settings(self, event: Event) -> None:
        try:
            change = orjson.loads(str(event.data.get("settings", "{}")))
        except orjson.JSONDecodeError:
            log.warning("ignoring unreadable settings (seq %d)", event.seq)
            return
        self.settings.update(change)
        if "hours" in change:
            self.hours_ms = max(self.hours_ms, event.at_ms)


def settings_fields(settings: Mapping[str, Any]) -> dict[str, str]:
    """The meta hash fields of replayed settings (see server/queuesettings.py)."""
    out: dict[str, str] = {}
    for name, value in settings.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "1" if value else "0"
        elif isinstance(value, int):
            out[name] = str(value)
        else:
            out[name] = orjson.dumps(value).decode()
    return out


def restore_payload(
    live: LiveQueue, head: Any, epoch: str, expect: tuple[str | None, int | None]
) -> dict[str, Any]:
    """The argument of restore.lua for this state (see the script's header)."""
    fields = settings_fields(live.settings)
    if live.hours_ms:
        fields["hours_ms"] = str(live.hours_ms)
    if live.archived_ms:
        fields["archived"] = str(live.archived_ms)
    return {
        "venue": head.venue_id,
        "name": head.name,
        "state": live.state,
        "epoch": epoch,
        "seq": live.seq,
        "next": live.next_number,
        "expect_epoch": expect[0] or "",
        "expect_seq": expect[1] or 0,
        "tickets": [[n, t.encode().decode()] for n, t in sorted(live.tickets.items())],
        "line": [[n, f"{live.line[n]:.0f}"] for n in live.ordered_line()],
        "called": sorted([n, at] for n, at in live.called.items()),
        "finished": sorted([n, at] for n, at in live.finished.items()),
        "counters": sorted([c, n] for c, n in live.counters.items()),
        "settings": sorted([k, v] for k, v in fields.items()),
    }
