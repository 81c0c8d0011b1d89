"""A push service for tests: a real HTTPS server in a thread that plays what FCM or Mozilla's
autopush do for a subscription, with no internet. It checks the VAPID authorization (RFC 8292:
an ES256 JWT signed by the key the subscription was made with, `aud` = its own origin, `exp`
within 24 hours, a `sub`) and decrypts the RFC 8291 body with the subscriber's private key and
auth secret. The decryption is written here from the RFC with `cryptography`, not with the
library the server encrypts with, so that a shared mistake cannot pass unseen.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


class Refused(Exception):
    """The push service refuses the request; `status` is what it answers."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class Subscriber:
    """A browser's side of one subscription: its ECDH key pair and auth secret."""

    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def p256dh(self) -> bytes:
        return _point(self.private_key.public_key())

    def subscription(self, endpoint: str) -> dict[str, Any]:
        keys = {"p256dh": b64url(self.p256dh), "auth": b64url(self.auth)}
        return {"endpoint": endpoint, "expirationTime": None, "keys": keys}

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 section 3.4 and RFC 8188: one aes128gcm record; `Refused(400)` if it fails."""
        if len(body) < 21:
            raise Refused(400, "body too short")
        salt, rs, id_len = body[:16], struct.unpack("!L", body[16:20])[0], body[20]
        sender_point, ciphertext = body[21 : 21 + id_len], body[21 + id_len :]
        if id_len != 65 or len(ciphertext) > rs or len(body) > 4096:
            raise Refused(400, "not one aes128gcm record keyed by a P-256 point")
        sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_point)
        shared = self.private_key.exchange(ec.ECDH(), sender)
        ikm = _hkdf(self.auth, shared, b"WebPush: info\0" + self.p256dh + sender_point, 32)
        cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\0", 16)
        nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\0", 12)
        try:
            padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
        except InvalidTag:
            raise Refused(400, "decryption failed") from None
        stripped = padded.rstrip(b"\0")
        if not stripped.endswith(b"\x02"):
            raise Refused(400, "no last-record delimiter")
        return stripped[:-1]


def check_vapid(authorization: str, server_key: str, audience: str, now_s: float) -> dict[str, Any]:
    """RFC 8292: `vapid t=<JWT>, k=<key>`; the key must be the subscription's
    applicationServerKey and sign the JWT. Returns the claims; `Refused(401/403)` otherwise."""
    scheme, _, params = authorization.partition(" ")
    if scheme.lower() != "vapid":
        raise Refused(401, "not a vapid authorization")
    parts = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
    token, key = parts.get("t", ""), parts.get("k", "")
    if key != server_key:
        raise Refused(403, "k is not the subscription's applicationServerKey")
    try:
        head_b64, claims_b64, sig_b64 = token.split(".")
        header = json.loads(unb64url(head_b64))
        claims: dict[str, Any] = json.loads(unb64url(claims_b64))
        signature = unb64url(sig_b64)
    except ValueError:
        raise Refused(401, "malformed JWT") from None
    if header.get("alg") != "ES256" or len(signature) != 64:
        raise Refused(401, "not ES256")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(server_key))
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    try:
        public.verify(
            utils.encode_dss_signature(r, s),
            f"{head_b64}.{claims_b64}".encode(),
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature:
        raise Refused(403, "the JWT is not signed by the applicationServerKey") from None
    if claims.get("aud") != audience:
        raise Refused(403, f"aud {claims.get('aud')!r} is not {audience!r}")
    exp = claims.get("exp")
    if not isinstance(exp, int) or not now_s < exp <= now_s + 24 * 3600:
        raise Refused(403, "exp is not within the next 24 hours")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.startswith(("mailto:", "https://")):
        raise Refused(403, "sub is not a mailto: or https: contact")
    return claims


@dataclass
class Received:
    """One push message the service accepted."""

    path: str
    plaintext: bytes
    headers: dict[str, str]
    claims: dict[str, Any]

    def json(self) -> Any:
        return json.loads(self.plaintext)


class PushService:
    """Serves `POST /push/<name>` for the subscriptions it was told about (`subscribe`)."""

    def __init__(self) -> None:
        self.ca = trustme.CA()  # trusted by the senders under test, like a public CA
        self.server_key = ""  # the applicationServerKey subscriptions were made with
        self.subscribers: dict[str, Subscriber] = {}
        self.received: list[Received] = []
        self.refusals: list[str] = []
        self.answered: list[int] = []  # every status given, in order
        self.scripted: list[tuple[int, dict[str, str]]] = []  # answers to give first, in order
        self._cond = threading.Condition()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(tls)
        self._http.socket = tls.wrap_socket(
            self._http.socket, server_side=True, do_handshake_on_connect=False
        )
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self._http.server_address[1]}"

    def client_tls(self) -> ssl.SSLContext:
        """A client context that trusts this service's certificate."""
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    def write_ca(self, path: Path) -> Path:
        """The CA certificate as a PEM file, for a server process's `SSL_CERT_FILE`."""
        self.ca.cert_pem.write_to_path(str(path))
        return path

    def subscribe(self, name: str, subscriber: Subscriber | None = None) -> dict[str, Any]:
        """A new subscription's JSON, as `PushSubscription.toJSON()` gives it."""
        found = self.subscribers[name] = subscriber or Subscriber()
        return found.subscription(f"{self.origin}/push/{name}")

    def wait_for(self, count: int, timeout_s: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.received)} pushes, refused: {self.refusals}")
                self._cond.wait(left)
            return list(self.received)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        with self._cond:
            if self.scripted:
                return self.scripted.pop(0)
        name = path.removeprefix("/push/")
        subscriber = self.subscribers.get(name)
        if subscriber is None:
            return 404, {}
        try:
            if headers.get("content-encoding") != "aes128gcm" or "ttl" not in headers:
                raise Refused(400, "Content-Encoding aes128gcm and TTL are required")
            claims = check_vapid(
                headers.get("authorization", ""), self.server_key, self.origin, time.time()
            )
            plaintext = subscriber.decrypt(body)
        except Refused as refused:
            with self._cond:
                self.refusals.append(str(refused))
            return refused.status, {}
        with self._cond:
            self.received.append(Received(path, plaintext, headers, claims))
            self._cond.notify_all()
        return 201, {"Location": f"{self.origin}/message/{len(self.received)}"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra = service.handle(self.path, headers, body)
                with service._cond:
                    service.answered.append(status)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> PushService:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()


def running() -> Iterator[PushService]:
    """For fixtures: a started service, stopped afterwards."""
    with PushService() as service:
        yield service
