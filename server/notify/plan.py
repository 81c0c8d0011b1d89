"""What a queue event owes, without I/O: delivery ids, webhook payloads and signatures, the
texts of "almost your turn" and "your turn", and the retry schedule.

Ids are derived from what the delivery is (the event, the webhook, the ticket, the channel), so
a batch handled twice (a node died before acknowledging it) plans the very same rows, which the
table then ignores.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from protocol.names import ticket_id
from server.events import QueueEvent

# Stream event kind -> webhook event type (contract v2: "Webhooks").
EVENT_TYPES = {
    "joined": "ticket.joined",
    "transfer_in": "ticket.joined",
    "called": "ticket.called",
    "recalled": "ticket.recalled",
    "requeued": "ticket.requeued",
    "served": "ticket.served",
    "no_show": "ticket.no_show",
    "left": "ticket.left",
    "removed": "ticket.removed",
    "transferred": "ticket.transferred",
    "opened": "queue.state",
    "closed": "queue.state",
    "paused": "queue.state",
    "resumed": "queue.state",
    "archived": "queue.state",  # an archived queue is closed for good
}
WEBHOOK_EVENTS = tuple(sorted(set(EVENT_TYPES.values())))
STATE_AFTER = {
    "opened": "open",
    "closed": "closed",
    "paused": "paused",
    "resumed": "open",
    "archived": "closed",
}
# Events after which some waiting ticket may have moved up (or in) to `notify_ahead`.
LINE_MOVES = frozenset(
    {"joined", "transfer_in", "called", "left", "removed", "requeued", "transferred", "settings"}
)
# Events that end a ticket: its contacts go (`transferred` moves them instead).
FINISHES = frozenset({"served", "no_show", "left", "removed"})
CALLS = frozenset({"called", "recalled"})
CHANNELS = ("email", "sms", "push")
SECRET_PREFIX = "whsec_"


@dataclass(frozen=True, slots=True)
class Planned:
    """One delivery to record: the row of `deliveries` before any attempt."""

    id: str
    channel: str  # webhook | email | sms | push
    queue: str
    seq: int
    type: str
    chain: str
    payload: dict[str, Any]
    target: str | None = None
    number: int | None = None
    webhook_id: str | None = None


def delivery_id(*parts: object) -> str:
    """A stable id (`msg_` + 26 base32 characters) for what `parts` name."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).digest()
    return "msg_" + base64.b32encode(digest).decode().rstrip("=").lower()


def iso_ms(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(timespec="milliseconds")


def ticket_numbers(event: QueueEvent) -> list[int]:
    """The tickets an event is about: its own, or those a bulk removal names."""
    if event.ticket is not None:
        return [event.ticket]
    numbers = str(event.data.get("numbers", ""))
    return [int(n) for n in numbers.split(",") if n.isdigit()]


def webhook_data(event: QueueEvent) -> dict[str, Any]:
    """The `data` of a webhook delivery: never contacts, nonces or names."""
    data: dict[str, Any] = {"queue": event.queue, "seq": event.seq, "at": iso_ms(event.at_ms)}
    if event.ticket is not None:
        data["ticket_id"] = ticket_id(event.queue, event.ticket)
        data["number"] = event.ticket
    elif event.kind == "removed":
        numbers = ticket_numbers(event)
        data["ticket_ids"] = [ticket_id(event.queue, n) for n in numbers]
        data["numbers"] = numbers
    if "counter" in event.data:
        data["counter"] = event.data["counter"]
    if event.kind in STATE_AFTER:
        data["state"] = STATE_AFTER[event.kind]
    if event.kind == "transferred" and "to_ticket" in event.data:
        to_queue, to_number = str(event.data["to_queue"]), int(event.data["to_ticket"])
        data["to_ticket_id"] = ticket_id(to_queue, to_number)
    if "reason" in event.data:
        data["reason"] = event.data["reason"]
    data["waiting"] = event.data.get("waiting")
    return data


@dataclass(frozen=True, slots=True)
class Hook:
    """A webhook as the planner needs it."""

    id: str
    venue_id: str
    events: frozenset[str]


def plan_webhooks(event: QueueEvent, hooks: list[Hook]) -> list[Planned]:
    kind = EVENT_TYPES.get(event.kind)
    if kind is None:
        return []
    body = {"type": kind, "timestamp": iso_ms(event.at_ms), "data": webhook_data(event)}
    return [
        Planned(
            id=delivery_id("webhook", hook.id, event.queue, event.epoch, event.seq),
            channel="webhook",
            queue=event.queue,
            seq=event.seq,
            type=kind,
            chain=f"webhook:{hook.id}:{event.queue}",
            payload=body,
            number=event.ticket,
            webhook_id=hook.id,
        )
        for hook in hooks
        if kind in hook.events
    ]


@dataclass(frozen=True, slots=True)
class Reach:
    """A ticket's contact on the channels its queue enables and this node can send."""

    number: int
    email: str | None
    phone: str | None
    push: str | None  # the subscription's JSON text


def plan_notice(
    kind: str,
    queue: str,
    seq: int,
    reach: Reach,
    message: dict[str, Any],
    key: object,
) -> list[Planned]:
    """`almost` or `turn` deliveries to one ticket, one per channel it gave. `key` names the
    occasion (the ticket for `almost`, which happens once; the call's seq for `turn`)."""
    out = []
    for channel, target in (("email", reach.email), ("sms", reach.phone), ("push", reach.push)):
        if target is None:
            continue
        out.append(
            Planned(
                id=delivery_id(kind, channel, queue, reach.number, key),
                channel=channel,
                queue=queue,
                seq=seq,
                type=kind,
                chain=f"{channel}:{queue}:{reach.number}",
                payload=message,
                target=target,
                number=reach.number,
            )
        )
    return out


def notice_message(
    kind: str, queue: str, queue_name: str, number: int, counter: str | None, link: str | None
) -> dict[str, Any]:
    """What an `almost` or `turn` notification says, kept in the delivery's payload."""
    return {
        "kind": kind,
        "queue": queue,
        "queue_name": queue_name,
        "ticket_id": ticket_id(queue, number),
        "number": number,
        "counter": counter,
        "link": link,
    }


def notice_text(message: dict[str, Any]) -> tuple[str, str]:
    """(title, text) of a notification, in plain words."""
    name, number = message["queue_name"], message["number"]
    if message["kind"] == "almost":
        return (f"Almost your turn at {name}", f"Ticket {number}: almost your turn. Come back now.")
    counter = message.get("counter")
    where = f" Please go to {counter}." if counter else ""
    return f"Your turn at {name}", f"Ticket {number}: it is your turn.{where}"


def email_bodies(message: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of a notification email."""
    title, text = notice_text(message)
    link = message.get("link")
    plain = text + (f"\n\n{link}\n" if link else "\n")
    anchor = f'<p><a href="{html.escape(link)}">Open your ticket</a></p>' if link else ""
    markup = (
        f"<!doctype html><html><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p>{anchor}</body></html>"
    )
    return title, plain, markup


def push_payload(delivery: str, message: dict[str, Any]) -> dict[str, Any]:
    title, text = notice_text(message)
    return {
        "id": delivery,
        "kind": message["kind"],
        "title": title,
        "body": text,
        "ticket_id": message["ticket_id"],
        "counter": message.get("counter"),
        "url": message.get("link"),
    }


# -- Standard Webhooks signatures -----------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def signing_key(secret: str) -> bytes:
    """The key bytes of a `whsec_` secret; any other text is used as the key itself."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except ValueError:
            pass
    return secret.encode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
    }


def retry_delay(delays: tuple[float, ...], attempts: int, jitter: float) -> float | None:
    """Seconds before the next attempt after `attempts` failed ones, or None: dead. `jitter` in
    [0, 1) spreads the delay over 75-125 % of the configured one."""
    if attempts > len(delays):
        return None
    return delays[attempts - 1] * (0.75 + 0.5 * jitter)
