"""Web Push without I/O: the subscription a browser hands us, the RFC 8291 payload encryption
(aes128gcm), the RFC 8292 VAPID authorization, and what a push service's answer means.

Nothing here opens a socket or reads the clock: the sender (`server/webpush.py`) passes `now_s`
and does the HTTP. The encryption is `http_ece`'s and the JWT signature `py_vapid`'s; this module
only chooses their arguments and checks what comes in.
"""

from __future__ import annotations

import base64
import binascii
import enum
import os
import urllib.parse
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import http_ece  # type: ignore[import-untyped]
import py_vapid  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

P256_POINT_BYTES = 65  # uncompressed: 0x04 || X || Y
P256_PRIVATE_BYTES = 32
AUTH_SECRET_BYTES = 16
MAX_ENDPOINT_CHARS = 2048
# RFC 8291 section 4: a push message's content is at most 4096 octets after encryption, which
# leaves 3993 for the plaintext in one aes128gcm record (header 86, padding delimiter 1, tag 16).
MAX_PAYLOAD_BYTES = 3993
RECORD_SIZE = 4096
# RFC 8292 section 2: the JWT must expire within 24 hours; a push service may want less.
VAPID_EXP_S = 12 * 3600
TOPIC_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
MAX_TOPIC_CHARS = 32  # RFC 8030 section 5.4


class SubscriptionError(ValueError):
    """A PushSubscription that cannot be used: the message says which part is wrong."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Base64url with or without padding (browsers send it without); `ValueError` if not."""
    if not isinstance(text, str) or not text.isascii():
        raise ValueError("not base64url text")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url text") from None


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """What `PushSubscription.toJSON()` gives: where to POST, and the keys to encrypt for."""

    endpoint: str
    p256dh: bytes  # the browser's ECDH public key, an uncompressed P-256 point
    auth: bytes  # the 16-byte authentication secret

    @property
    def origin(self) -> str:
        """The endpoint's origin: the VAPID JWT's `aud`."""
        parts = urllib.parse.urlsplit(self.endpoint)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.endpoint).hostname or ""

    def to_json(self) -> dict[str, Any]:
        keys = {"p256dh": b64url_encode(self.p256dh), "auth": b64url_encode(self.auth)}
        return {"endpoint": self.endpoint, "keys": keys}


def parse_subscription(data: object) -> PushSubscription:
    """Check a browser's PushSubscription JSON: an https endpoint, a P-256 point and a 16-byte
    secret. Whether the endpoint's host is public is the caller's check (it needs DNS)."""
    if not isinstance(data, dict):
        raise SubscriptionError("push must be a PushSubscription object")
    endpoint = data.get("endpoint")
    keys = data.get("keys")
    if not isinstance(endpoint, str) or not 0 < len(endpoint) <= MAX_ENDPOINT_CHARS:
        raise SubscriptionError("push.endpoint must be a URL")
    try:
        parts = urllib.parse.urlsplit(endpoint)
    except ValueError:  # an unclosed IPv6 bracket, say
        raise SubscriptionError("push.endpoint must be a URL") from None
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        raise SubscriptionError("push.endpoint must be an https URL")
    if not isinstance(keys, dict):
        raise SubscriptionError("push.keys must hold p256dh and auth")
    try:
        p256dh = b64url_decode(keys.get("p256dh"))  # type: ignore[arg-type]
        auth = b64url_decode(keys.get("auth"))  # type: ignore[arg-type]
    except ValueError:
        raise SubscriptionError("push.keys must be base64url") from None
    if len(auth) != AUTH_SECRET_BYTES:
        raise SubscriptionError("push.keys.auth must be 16 bytes")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise SubscriptionError("push.keys.p256dh must be a P-256 public key") from None
    if len(p256dh) != P256_POINT_BYTES:
        raise SubscriptionError("push.keys.p256dh must be an uncompressed point")
    return PushSubscription(endpoint, p256dh, auth)


def encrypt(
    payload: bytes,
    subscription: PushSubscription,
    *,
    salt: bytes | None = None,
    sender_key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """The RFC 8291 body: aes128gcm, one record, keyed by a fresh ECDH key pair and salt (given
    only by tests that replay the RFC's example)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"a push payload holds at most {MAX_PAYLOAD_BYTES} bytes")
    body: bytes = http_ece.encrypt(
        payload,
        salt=salt if salt is not None else os.urandom(16),
        private_key=sender_key or ec.generate_private_key(ec.SECP256R1()),
        dh=subscription.p256dh,
        auth_secret=subscription.auth,
        rs=RECORD_SIZE,
        version="aes128gcm",
    )
    return body


class VapidKey:
    """The deployment's P-256 key pair: signs the VAPID JWT; its public half is what browsers
    pass to `pushManager.subscribe` as `applicationServerKey`."""

    __slots__ = ("_vapid", "public_key")

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        # The subject is checked where it is configured (server/config.py).
        self._vapid = py_vapid.Vapid02(private_key, conf={"no-strict": True})
        point = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.public_key = b64url_encode(point)

    def __repr__(self) -> str:
        return f"VapidKey(public_key={self.public_key!r})"

    @classmethod
    def generate(cls) -> VapidKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_raw(cls, raw: bytes) -> VapidKey:
        """From the 32-byte private scalar; `ValueError` if it is not one."""
        if len(raw) != P256_PRIVATE_BYTES:
            raise ValueError("a P-256 private key is 32 bytes")
        return cls(ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1()))

    @classmethod
    def from_text(cls, text: str) -> VapidKey:
        """From `VQ_VAPID_PRIVATE_KEY`: the base64url of the 32-byte private key (what
        `vapid --gen` or `web-push generate-vapid-keys` print), or a PEM private key."""
        text = text.strip()
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
                raise ValueError("the PEM key is not a P-256 key")
            return cls(key)
        return cls.from_raw(b64url_decode(text))

    def raw(self) -> bytes:
        """The 32-byte private scalar, to keep it (PostgreSQL)."""
        number: int = self._vapid.private_key.private_numbers().private_value
        return number.to_bytes(P256_PRIVATE_BYTES, "big")

    def authorization(self, audience: str, subject: str, now_s: float) -> str:
        """The `Authorization: vapid t=<JWT>, k=<public key>` header value for one push
        service origin (`aud`), valid for VAPID_EXP_S from `now_s`."""
        claims = {"aud": audience, "sub": subject, "exp": int(now_s) + VAPID_EXP_S}
        header: str = self._vapid.sign(claims)["Authorization"]
        return header


def is_topic(text: str) -> bool:
    """RFC 8030: a Topic is at most 32 characters of the URL-safe base64 alphabet."""
    return 0 < len(text) <= MAX_TOPIC_CHARS and set(text) <= TOPIC_ALPHABET


class Verdict(enum.Enum):
    DELIVERED = "delivered"  # 2xx: the push service took it
    GONE = "gone"  # 404/410: the subscription expired or was revoked; drop it
    RETRY = "retry"  # 429/5xx or no answer: try again later (after `retry_after_s` if given)
    FAILED = "failed"  # any other 4xx: this request will never work; do not retry it


@dataclass(frozen=True, slots=True)
class PushOutcome:
    verdict: Verdict
    status: int | None = None  # the push service's HTTP status; None: no answer
    retry_after_s: float | None = None
    detail: str = ""  # for the delivery's last_error (never the endpoint: it identifies a person)


def outcome(status: int, retry_after: str | None = None, now_s: float = 0.0) -> PushOutcome:
    """What a push service's answer means (RFC 8030 section 5, RFC 8292 section 4)."""
    if 200 <= status < 300:
        return PushOutcome(Verdict.DELIVERED, status)
    if status in (404, 410):
        return PushOutcome(Verdict.GONE, status, detail=f"HTTP {status}: subscription gone")
    if status == 429 or status >= 500:
        wait_s = retry_after_s(retry_after, now_s)
        return PushOutcome(Verdict.RETRY, status, wait_s, f"HTTP {status}")
    return PushOutcome(Verdict.FAILED, status, detail=f"HTTP {status}")


def retry_after_s(value: str | None, now_s: float) -> float | None:
    """A Retry-After header as seconds from `now_s`: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), 86400))
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, min(when - now_s, 86400.0))
