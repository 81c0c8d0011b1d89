"""Every Redis key and channel name vqueue uses, in one place.

All of a queue's keys share the hash tag `{queue}`, so each Lua script touches one hash slot and
runs unchanged on a Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueueKeys:
    meta: str  # hash: venue, name, state, epoch, seq, next (ticket counter), settings, hours_ms
    line: str  # sorted set: waiting ticket numbers scored by (priority, order): protocol/score.py
    tickets: str  # hash: number -> JSON of the ticket
    counters: str  # hash: counter name -> number last called there
    called: str  # sorted set: called (not yet finished) numbers scored by call time
    finished: str  # sorted set: finished numbers scored by finish time (for expiry)
    events: str  # stream: the outbox of queue events (persisted to PostgreSQL)
    channel: str  # pub/sub channel of compact change notices

    def idempotency(self, action: str, key: str) -> str:
        return f"{self.meta[:-5]}:idem:{action}:{key}"


def join_rate_keys(prefix: str, queue: str, client: str) -> tuple[str, str]:
    """Counters of joins to `queue`: (from one client address bucket, from everyone)."""
    return f"{prefix}:{{{queue}}}:rate:ip:{client}", f"{prefix}:{{{queue}}}:rate:all"


def queue_keys(prefix: str, queue: str) -> QueueKeys:
    base = f"{prefix}:{{{queue}}}"
    return QueueKeys(
        meta=f"{base}:meta",
        line=f"{base}:line",
        tickets=f"{base}:tickets",
        counters=f"{base}:counters",
        called=f"{base}:called",
        finished=f"{base}:finished",
        events=f"{base}:events",
        channel=f"{base}:notify",
    )


def transfer_key(keys: QueueKeys, transfer_id: str) -> str:
    """The target queue's answer to one transfer (makes transfer_in idempotent)."""
    return f"{keys.meta[:-5]}:xfer:{transfer_id}"


def transfers_index(prefix: str) -> str:
    """Hash of transfers begun and not yet finished: transfer id -> intent JSON."""
    return f"{prefix}:transfers"


def scheduled_index(prefix: str) -> str:
    """Set of queue slugs that have opening hours (the schedulers walk it)."""
    return f"{prefix}:scheduled"


def revoked_keys(prefix: str) -> str:
    """Set of revoked staff key ids, and the pub/sub channel that announces each revocation."""
    return f"{prefix}:keys:revoked"


def sha256_since_key(prefix: str) -> str:
    """When the deployment began signing tokens with SHA-256 (Unix ms), see server.auth."""
    return f"{prefix}:tokens:sha256_since_ms"


def queues_index(prefix: str) -> str:
    """Set of every queue slug with live state (for the persister and recovery to walk)."""
    return f"{prefix}:queues"


PERSISTER_GROUP = "persister"
# The notifier's own group on the same streams (server/notify/): it sees every event too, and an
# entry is trimmed only once every group of the stream has acknowledged it.
NOTIFIER_GROUP = "notifier"
STREAM_GROUPS = (PERSISTER_GROUP, NOTIFIER_GROUP)
