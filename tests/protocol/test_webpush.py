"""The Web Push core without I/O: RFC 8291's own example, subscriptions a browser may send,
the VAPID header, and what each push service answer means."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from protocol.webpush import (
    MAX_PAYLOAD_BYTES,
    PushSubscription,
    SubscriptionError,
    VapidKey,
    Verdict,
    b64url_decode,
    encrypt,
    is_topic,
    outcome,
    parse_subscription,
    retry_after_s,
)
from tests.pushservice import Refused, Subscriber, check_vapid, unb64url

# RFC 8291 Appendix A: every input and the exact message.
RFC_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC_AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
RFC_UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
RFC_UA_PUBLIC = (
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
)
RFC_AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
RFC_SALT = "DGv6ra1nlYgDCS1FRnbzlw"
RFC_MESSAGE = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAm"
    "S6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qu"
    "lcy4a-fN"
)


def _private(b64: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(unb64url(b64), "big"), ec.SECP256R1())


def test_encrypt_gives_rfc_8291_appendix_a() -> None:
    sub = PushSubscription(
        "https://push.example.net/x", unb64url(RFC_UA_PUBLIC), unb64url(RFC_AUTH)
    )
    body = encrypt(RFC_PLAINTEXT, sub, salt=unb64url(RFC_SALT), sender_key=_private(RFC_AS_PRIVATE))
    assert body == unb64url(RFC_MESSAGE)
    # The test push service's own decryption reads the RFC's message too.
    browser = Subscriber(_private(RFC_UA_PRIVATE), unb64url(RFC_AUTH))
    assert browser.p256dh == unb64url(RFC_UA_PUBLIC)
    assert browser.decrypt(unb64url(RFC_MESSAGE)) == RFC_PLAINTEXT


def test_the_receiver_decrypts_what_we_encrypt_and_nothing_else() -> None:
    browser = Subscriber()
    sub = parse_subscription(browser.subscription("https://push.example.net/x"))
    body = encrypt(b'{"type":"called"}', sub)
    assert browser.decrypt(body) == b'{"type":"called"}'
    # Mutations: another auth secret, or another browser key, must not decrypt.
    with pytest.raises(Refused):
        Subscriber(browser.private_key, auth=bytes(16)).decrypt(body)
    with pytest.raises(Refused):
        Subscriber(auth=browser.auth).decrypt(body)
    with pytest.raises(ValueError, match="at most"):
        encrypt(b"x" * (MAX_PAYLOAD_BYTES + 1), sub)
    assert browser.decrypt(encrypt(b"y" * MAX_PAYLOAD_BYTES, sub)) == b"y" * MAX_PAYLOAD_BYTES


GOOD = Subscriber().subscription("https://fcm.googleapis.com/fcm/send/abc")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "object"),
        ([], "object"),
        ({**GOOD, "endpoint": "ftp://x/y"}, "https"),
        ({**GOOD, "endpoint": "http://push.example.net/y"}, "https"),
        ({**GOOD, "endpoint": "https://user:pw@push.example.net/y"}, "https"),
        ({**GOOD, "endpoint": "https:///nohost"}, "https"),
        ({**GOOD, "endpoint": "https://x/" + "a" * 3000}, "URL"),
        ({**GOOD, "endpoint": 7}, "URL"),
        ({**GOOD, "endpoint": "https://[::1/y"}, "URL"),
        ({**GOOD, "keys": None}, "keys"),
        ({**GOOD, "keys": {"auth": GOOD["keys"]["auth"]}}, "base64url"),
        ({**GOOD, "keys": {**GOOD["keys"], "auth": "AAAA"}}, "16 bytes"),
        ({**GOOD, "keys": {**GOOD["keys"], "auth": "é"}}, "base64url"),
        ({**GOOD, "keys": {**GOOD["keys"], "p256dh": "AAAA"}}, "P-256"),
        ({**GOOD, "keys": {**GOOD["keys"], "p256dh": "BA" + "A" * 85}}, "P-256"),
    ],
)
def test_bad_subscriptions_are_refused(data: object, message: str) -> None:
    with pytest.raises(SubscriptionError, match=message):
        parse_subscription(data)


def test_a_good_subscription_round_trips() -> None:
    sub = parse_subscription(GOOD)
    assert sub.origin == "https://fcm.googleapis.com"
    assert sub.host == "fcm.googleapis.com"
    assert sub.to_json() == {k: v for k, v in GOOD.items() if k != "expirationTime"}
    local = {**GOOD, "endpoint": "https://127.0.0.1:9/push/a"}
    assert parse_subscription(local).origin == "https://127.0.0.1:9"


def test_vapid_header_is_what_a_push_service_checks() -> None:
    key = VapidKey.generate()
    header = key.authorization("https://push.example.net", "mailto:ops@example.org", 1_000_000)
    claims = check_vapid(header, key.public_key, "https://push.example.net", 1_000_000)
    assert claims == {
        "aud": "https://push.example.net",
        "sub": "mailto:ops@example.org",
        "exp": 1_000_000 + 12 * 3600,
    }
    # Mutations: signed by another key (even one that names itself in k), another audience,
    # an expired token.
    other = VapidKey.generate()
    forged = other.authorization("https://push.example.net", "mailto:a@b.c", 1_000_000)
    with pytest.raises(Refused, match="applicationServerKey"):
        check_vapid(forged, key.public_key, "https://push.example.net", 1_000_000)
    token = forged.split("t=")[1].split(",")[0]
    with pytest.raises(Refused, match="not signed"):
        check_vapid(f"vapid t={token}, k={key.public_key}", key.public_key, "x", 1_000_000)
    with pytest.raises(Refused, match="aud"):
        check_vapid(header, key.public_key, "https://other.example.net", 1_000_000)
    with pytest.raises(Refused, match="exp"):
        check_vapid(header, key.public_key, "https://push.example.net", 1_000_000 + 13 * 3600)


def test_vapid_key_formats() -> None:
    key = VapidKey.generate()
    raw = key.raw()
    assert len(raw) == 32
    assert VapidKey.from_raw(raw).public_key == key.public_key
    text = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
    assert len(b64url_decode(VapidKey.from_text(text).public_key)) == 65
    assert VapidKey.from_text(text + "\n").public_key == VapidKey.from_text(text).public_key
    assert "yfWP" not in repr(VapidKey.from_text(text))
    with pytest.raises(ValueError):
        VapidKey.from_text("AAAA")
    with pytest.raises(ValueError):
        VapidKey.from_text("not base64 !")


@pytest.mark.parametrize(
    ("status", "retry_after", "verdict", "wait_s"),
    [
        (201, None, Verdict.DELIVERED, None),
        (200, None, Verdict.DELIVERED, None),
        (404, None, Verdict.GONE, None),
        (410, None, Verdict.GONE, None),
        (429, "30", Verdict.RETRY, 30.0),
        (503, None, Verdict.RETRY, None),
        (500, "Thu, 01 Jan 1970 00:01:40 GMT", Verdict.RETRY, 40.0),
        (502, "soon", Verdict.RETRY, None),
        (400, None, Verdict.FAILED, None),
        (401, None, Verdict.FAILED, None),
        (403, None, Verdict.FAILED, None),
        (413, None, Verdict.FAILED, None),
    ],
)
def test_outcome_of_each_answer(
    status: int, retry_after: str | None, verdict: Verdict, wait_s: float | None
) -> None:
    found = outcome(status, retry_after, now_s=60.0)
    assert found.verdict is verdict
    assert found.status == status
    assert found.retry_after_s == wait_s


def test_retry_after_is_capped_and_topics_are_checked() -> None:
    assert retry_after_s("999999", 0) == 86400
    assert retry_after_s(None, 0) is None
    assert is_topic("d-42_x")
    assert not is_topic("")
    assert not is_topic("a" * 33)
    assert not is_topic("has space")
    assert json.loads(json.dumps(GOOD))["keys"]["auth"]
