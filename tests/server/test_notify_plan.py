"""The notifier's pure parts, without an event loop: signatures, ids, payloads, texts, retries."""

from __future__ import annotations

import pytest

from server.events import QueueEvent
from server.notify.plan import (
    Hook,
    Reach,
    delivery_id,
    email_bodies,
    notice_message,
    plan_notice,
    plan_webhooks,
    retry_delay,
    signature,
    webhook_data,
)


def event(kind: str, seq: int, ticket: int | None = 7, **data: str | int) -> QueueEvent:
    return QueueEvent("bakery", seq, kind, ticket, 1_700_000_000_123, "e1", dict(data))


def test_signature_matches_the_standard_webhooks_example() -> None:
    # The example of the Standard Webhooks specification's reference libraries.
    got = signature(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_delivery_ids_are_stable_and_distinct() -> None:
    assert delivery_id("webhook", "h", "q", "e", 1) == delivery_id("webhook", "h", "q", "e", 1)
    ids = {delivery_id("webhook", "h", "q", "e", seq) for seq in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("msg_") and len(i) == 30 for i in ids)


def test_webhooks_get_the_types_they_asked_for_never_contacts_or_nonces() -> None:
    hooks = [
        Hook("h1", "v", frozenset({"ticket.called"})),
        Hook("h2", "v", frozenset({"ticket.called", "ticket.joined"})),
    ]
    joined = event("joined", 3, nonce="secret-nonce", name="Ann", waiting=4)
    planned = plan_webhooks(joined, hooks)
    assert [p.webhook_id for p in planned] == ["h2"]
    body = planned[0].payload
    assert body["type"] == "ticket.joined" and body["timestamp"].startswith("2023-11-14T22:13:20")
    assert "secret-nonce" not in str(body) and "Ann" not in str(body)
    assert body["data"] == {
        "queue": "bakery",
        "seq": 3,
        "at": "2023-11-14T22:13:20.123+00:00",
        "ticket_id": "bakery.7",
        "number": 7,
        "waiting": 4,
    }
    called = plan_webhooks(event("called", 4, counter="desk 2"), hooks)
    assert [p.payload["data"]["counter"] for p in called] == ["desk 2", "desk 2"]
    assert len({p.id for p in called}) == 2 and {p.chain for p in called} == {
        "webhook:h1:bakery",
        "webhook:h2:bakery",
    }
    assert plan_webhooks(event("settings", 5, None), hooks) == []


def test_a_bulk_removal_names_every_ticket() -> None:
    data = webhook_data(event("removed", 9, None, numbers="3,4,8"))
    assert data["ticket_ids"] == ["bakery.3", "bakery.4", "bakery.8"]


def test_notices_go_to_the_channels_given_with_one_id_per_occasion() -> None:
    reach = Reach(7, "ann@example.org", None, '{"endpoint": "https://push.example/x"}')
    message = notice_message("turn", "bakery", "Bakery", 7, "desk 2", None)
    first = plan_notice("turn", "bakery", 10, reach, message, "e1:10")
    again = plan_notice("turn", "bakery", 10, reach, message, "e1:10")
    recall = plan_notice("turn", "bakery", 12, reach, message, "e1:12")
    assert [p.channel for p in first] == ["email", "push"]
    assert [p.id for p in first] == [p.id for p in again]
    assert not {p.id for p in first} & {p.id for p in recall}
    assert {p.chain for p in first} == {"email:bakery:7", "push:bakery:7"}


def test_email_bodies_say_the_counter_and_escape_the_queue_name() -> None:
    message = notice_message("turn", "q", "<b>Tom & Co</b>", 12, "desk 3", "https://x.example/q/q")
    subject, plain, markup = email_bodies(message)
    assert subject == "Your turn at <b>Tom & Co</b>"
    assert "Ticket 12" in plain and "desk 3" in plain and "https://x.example/q/q" in plain
    assert "<b>Tom" not in markup and "&lt;b&gt;Tom &amp; Co" in markup


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999])
def test_retry_delays_grow_with_jitter_then_stop(jitter: float) -> None:
    delays = (5.0, 30.0, 120.0)
    got = [retry_delay(delays, n, jitter) for n in (1, 2, 3, 4)]
    assert got[3] is None
    for configured, value in zip(delays, got[:3], strict=True):
        assert value is not None and 0.75 * configured <= value <= 1.25 * configured
    assert got[0] is not None and got[1] is not None and got[2] is not None
    assert got[0] < got[1] < got[2]
