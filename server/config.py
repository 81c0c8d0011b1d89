"""Settings, read from the environment once, here and nowhere else.

`Settings.from_environ(os.environ)` fails fast with the variable's name; secrets are `Secret`s
whose repr is masked so they never reach a log. Every variable is in the README's table.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from protocol.webpush import VapidKey


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class Secret:
    """A string that does not show itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __bool__(self) -> bool:
        return bool(self._value)


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    return _ranged(env, name, default, low, high, float, "a number")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    return _ranged(env, name, default, low, high, int, "a whole number")


_N = TypeVar("_N", int, float)


def _ranged(
    env: Mapping[str, str],
    name: str,
    default: _N,
    low: _N,
    high: _N,
    parse: Callable[[str], _N],
    kind: str,
) -> _N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _resync_check_s(env: Mapping[str, str]) -> float:
    """The drift check's period; 0 turns it off (for tests and diagnosis)."""
    value = _float(env, "VQ_RESYNC_CHECK_S", 2.0, 0.0, 60.0)
    if 0 < value < 0.1:
        raise ConfigError(f"VQ_RESYNC_CHECK_S must be 0 (off) or at least 0.1, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


RATE_RE = re.compile(r"(\d{1,9})\s*/\s*(second|minute|hour)")
WINDOW_S = {"second": 1, "minute": 60, "hour": 3600}
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` events per `window_s` seconds."""

    count: int
    window_s: int


def _rate(env: Mapping[str, str], name: str, default: str) -> Rate | None:
    """`N/second`, `N/minute`, `N/hour`, or `off` (None)."""
    raw = (env.get(name) or default).strip().lower()
    if raw == "off":
        return None
    match = RATE_RE.fullmatch(raw)
    if match is None or int(match.group(1)) < 1:
        raise ConfigError(f"{name} must be like 30/minute or off, got {raw!r}")
    return Rate(int(match.group(1)), WINDOW_S[match.group(2)])


def _networks(env: Mapping[str, str], name: str) -> tuple[Network, ...]:
    """A comma-separated list of addresses or networks (`10.0.0.0/8`, `::1`)."""
    out: list[Network] = []
    for item in (i.strip() for i in env.get(name, "").split(",")):
        if item:
            try:
                out.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(f"{name}: {item!r} is not an address or network") from None
    return tuple(out)


def _count_or_off(env: Mapping[str, str], name: str, default: int) -> int | None:
    raw = env.get(name, "").strip().lower()
    if raw == "off":
        return None
    return int(_float(env, name, default, 1, 1_000_000))


def _public_url(env: Mapping[str, str]) -> str | None:
    raw = env.get("VQ_PUBLIC_URL", "").strip().rstrip("/")
    if not raw:
        return None
    if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/-]*)?", raw):
        raise ConfigError(f"VQ_PUBLIC_URL must be an http(s) base URL, got {raw!r}")
    return raw


# What push services accept as a contact (RFC 8292 section 2.1): an address or a site.
VAPID_SUBJECT_RE = re.compile(r"mailto:[^@\s]+@[A-Za-z0-9.\-]+|https://[A-Za-z0-9.\-]+")


def _vapid_private_key(env: Mapping[str, str]) -> Secret | None:
    raw = env.get("VQ_VAPID_PRIVATE_KEY", "").strip()
    if not raw:
        return None
    try:
        VapidKey.from_text(raw)
    except ValueError:
        raise ConfigError(
            "VQ_VAPID_PRIVATE_KEY must be the base64url of a 32-byte P-256 private key"
            " (or a PEM P-256 private key)"
        ) from None
    return Secret(raw)


def _vapid_subject(env: Mapping[str, str], public_url: str | None) -> str:
    """Who the push services may contact: `mailto:` or an https site; else the public URL."""
    raw = env.get("VQ_VAPID_SUBJECT", "").strip()
    if not raw:
        site = public_url or ""
        return site if VAPID_SUBJECT_RE.fullmatch(site) else "mailto:vqueue@localhost"
    if not VAPID_SUBJECT_RE.fullmatch(raw):
        raise ConfigError(f"VQ_VAPID_SUBJECT must be a mailto: or https:// URL, got {raw!r}")
    return raw


LISTEN_BACKLOG = 4096  # VQ_LISTEN_BACKLOG's default (the harness's bare server uses the same)
DEFAULT_WEBHOOK_RETRY_S = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0)
SMTP_URL_RE = re.compile(r"smtps?://([^@/\s]+@)?[A-Za-z0-9.\-\[\]:]+/?")
MAIL_FROM_RE = re.compile(r"[^\s<>@\"]{1,64}@[A-Za-z0-9.\-]{1,253}")


def _retry_delays(env: Mapping[str, str]) -> tuple[float, ...]:
    """`VQ_WEBHOOK_RETRY_S`: the delays before each retry, comma-separated seconds."""
    raw = env.get("VQ_WEBHOOK_RETRY_S", "").strip()
    if not raw:
        return DEFAULT_WEBHOOK_RETRY_S
    try:
        delays = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError(
            f"VQ_WEBHOOK_RETRY_S must be seconds like 5,30,120, got {raw!r}"
        ) from None
    if not 1 <= len(delays) <= 20 or not all(0 < d <= 86400 for d in delays):
        raise ConfigError("VQ_WEBHOOK_RETRY_S must be 1 to 20 delays of 0 to 86400 seconds")
    return delays


def _smtp_url(env: Mapping[str, str]) -> Secret | None:
    raw = env.get("VQ_SMTP_URL", "").strip()
    if not raw:
        return None
    if not SMTP_URL_RE.fullmatch(raw):
        raise ConfigError("VQ_SMTP_URL must be like smtp://host:587 or smtps://user:pass@host")
    return Secret(raw)


def _mail_from(env: Mapping[str, str]) -> str:
    raw = env.get("VQ_MAIL_FROM", "").strip() or "vqueue@localhost"
    if not MAIL_FROM_RE.fullmatch(raw):
        raise ConfigError(f"VQ_MAIL_FROM must be an address like queue@venue.example, got {raw!r}")
    return raw


def _sms_webhook_url(env: Mapping[str, str]) -> str | None:
    raw = env.get("VQ_SMS_WEBHOOK_URL", "").strip()
    if not raw:
        return None
    if not re.fullmatch(r"https?://\S+", raw):
        raise ConfigError(f"VQ_SMS_WEBHOOK_URL must be an http(s) URL, got {raw!r}")
    if not env.get("VQ_SMS_WEBHOOK_SECRET"):
        raise ConfigError("VQ_SMS_WEBHOOK_URL needs VQ_SMS_WEBHOOK_SECRET to sign its requests")
    return raw


@dataclass(frozen=True)
class Settings:
    redis_url: Secret | None = None
    database_url: Secret | None = None
    secret_key: Secret | None = None
    allowed_origins: tuple[str, ...] = ()  # empty: the origin of the request's own Host
    data_dir: Path = field(default_factory=lambda: Path(".vqueue"))
    redis_prefix: str = "vq"
    redis_cluster: bool = False  # REDIS_URL names one node of a Redis Cluster
    flush_ms: float = 50.0
    stuck_close_s: float = 10.0
    resync_check_s: float = 2.0  # 0: no periodic drift check
    ws_ping_s: float = 20.0
    persist_batch: int = 500
    demo: bool = False  # the demo venue: `make run` turns it on, images never do
    log_level: str = "INFO"
    log_format: str = "text"  # "json": one JSON object per line
    access_log: bool = True  # one line per HTTP request (route template, status, duration)
    metrics: bool = True  # False: no /metrics and no counting on the request path (benchmarks)
    # True: the fan-out writes frames with its loop in Python even where the C one was built
    pure_python: bool = False
    join_rate_ip: Rate | None = Rate(30, 60)
    join_rate_queue: Rate | None = None
    rate_exempt: tuple[Network, ...] = ()
    trusted_proxies: tuple[Network, ...] = ()
    ws_per_ip: int | None = 50
    http_max_concurrent: int | None = 1000
    http_keepalive_s: float = 5.0
    http_request_timeout_s: float = 30.0  # the whole request (headers and body) must arrive
    # Connections the kernel holds for the node before it accepts them (the kernel caps it at
    # net.core.somaxconn). uvicorn's 2048 overflows when a restarted node's customers reconnect.
    listen_backlog: int = LISTEN_BACKLOG
    public_url: str | None = None
    metrics_token: Secret | None = None
    vapid_private_key: Secret | None = None  # None: generated once, kept in PostgreSQL
    vapid_subject: str = "mailto:vqueue@localhost"
    notify: bool = True  # the notifier (server/notify/): contacts, webhooks, their deliveries
    smtp_url: Secret | None = None  # None: no email channel
    mail_from: str = "vqueue@localhost"
    sms_webhook_url: str | None = None  # None: no SMS channel
    sms_webhook_secret: Secret | None = None
    webhook_retry_s: tuple[float, ...] = DEFAULT_WEBHOOK_RETRY_S
    webhook_allow_private: bool = False  # webhooks and push endpoints may resolve to private IPs
    notify_lease_s: float = 30.0  # a delivery a node leased is taken over this long after

    @property
    def embedded(self) -> bool:
        return self.redis_url is None or self.database_url is None

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        origins = tuple(o.strip().rstrip("/") for o in env.get("VQ_ALLOWED_ORIGINS", "").split(","))
        prefix = env.get("VQ_REDIS_PREFIX", "vq")
        if not prefix or any(c in prefix for c in "{}: "):
            raise ConfigError(f"VQ_REDIS_PREFIX must be a plain word, got {prefix!r}")
        level = env.get("VQ_LOG_LEVEL", "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"VQ_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
        log_format = env.get("VQ_LOG_FORMAT", "text").strip().lower() or "text"
        if log_format not in ("text", "json"):
            raise ConfigError(f"VQ_LOG_FORMAT must be text or json, got {log_format!r}")
        metrics_token = env.get("VQ_METRICS_TOKEN") or None
        if metrics_token is not None and len(metrics_token) < 16:
            raise ConfigError("VQ_METRICS_TOKEN must be at least 16 characters")
        secret = env.get("VQ_SECRET_KEY") or None
        if secret is not None and len(secret) < 32:
            raise ConfigError("VQ_SECRET_KEY must be at least 32 characters")
        public_url = _public_url(env)
        cluster = _bool(env, "VQ_REDIS_CLUSTER", False)
        if cluster and not env.get("REDIS_URL"):
            raise ConfigError("VQ_REDIS_CLUSTER=true needs REDIS_URL naming a node of the cluster")
        return cls(
            redis_url=Secret(env["REDIS_URL"]) if env.get("REDIS_URL") else None,
            database_url=Secret(env["DATABASE_URL"]) if env.get("DATABASE_URL") else None,
            secret_key=Secret(secret) if secret else None,
            allowed_origins=tuple(o for o in origins if o),
            data_dir=Path(env.get("VQ_DATA_DIR") or ".vqueue"),
            redis_prefix=prefix,
            redis_cluster=cluster,
            flush_ms=_float(env, "VQ_FLUSH_MS", 50.0, 0.0, 5000.0),
            stuck_close_s=_float(env, "VQ_STUCK_CLOSE_S", 10.0, 0.5, 600.0),
            resync_check_s=_resync_check_s(env),
            ws_ping_s=_float(env, "VQ_WS_PING_S", 20.0, 0.5, 600.0),
            persist_batch=int(_float(env, "VQ_PERSIST_BATCH", 500, 1, 10000)),
            demo=_bool(env, "VQ_DEMO", False),
            log_level=level,
            log_format=log_format,
            access_log=_bool(env, "VQ_ACCESS_LOG", True),
            metrics=_bool(env, "VQ_METRICS", True),
            pure_python=_bool(env, "VQ_PURE_PYTHON", False),
            join_rate_ip=_rate(env, "VQ_JOIN_RATE_IP", "30/minute"),
            join_rate_queue=_rate(env, "VQ_JOIN_RATE_QUEUE", "off"),
            rate_exempt=_networks(env, "VQ_RATE_EXEMPT"),
            trusted_proxies=_networks(env, "VQ_TRUSTED_PROXIES"),
            ws_per_ip=_count_or_off(env, "VQ_WS_PER_IP", 50),
            http_max_concurrent=_count_or_off(env, "VQ_HTTP_MAX_CONCURRENT", 1000),
            http_keepalive_s=_float(env, "VQ_HTTP_KEEPALIVE_S", 5.0, 0.5, 600.0),
            http_request_timeout_s=_float(env, "VQ_HTTP_REQUEST_TIMEOUT_S", 30.0, 0.5, 600.0),
            listen_backlog=_int(env, "VQ_LISTEN_BACKLOG", LISTEN_BACKLOG, 1, 65535),
            public_url=public_url,
            metrics_token=Secret(metrics_token) if metrics_token else None,
            vapid_private_key=_vapid_private_key(env),
            vapid_subject=_vapid_subject(env, public_url),
            notify=_bool(env, "VQ_NOTIFY", True),
            smtp_url=_smtp_url(env),
            mail_from=_mail_from(env),
            sms_webhook_url=_sms_webhook_url(env),
            sms_webhook_secret=(
                Secret(env["VQ_SMS_WEBHOOK_SECRET"]) if env.get("VQ_SMS_WEBHOOK_SECRET") else None
            ),
            webhook_retry_s=_retry_delays(env),
            webhook_allow_private=_bool(env, "VQ_WEBHOOK_ALLOW_PRIVATE", False),
            notify_lease_s=_float(env, "VQ_NOTIFY_LEASE_S", 30.0, 16.0, 3600.0),
        )
