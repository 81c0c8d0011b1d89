"""The long-lived objects one node runs with, shared by every request handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from starlette.requests import HTTPConnection

from protocol.webpush import VapidKey
from server.auth import KeyCache, TicketSigner
from server.config import Settings
from server.db import Database
from server.fanout import Fanout
from server.owners import QueueOwners
from server.store import Store

if TYPE_CHECKING:
    from server.notify.notifier import Notifier
    from server.persister import Persister
    from server.queues import KnownQueues
    from server.scheduler import Scheduler


@dataclass(eq=False)
class Services:
    settings: Settings
    store: Store
    db: Database
    fanout: Fanout
    signer: TicketSigner
    keys: KeyCache
    rebuild: Callable[[str], Awaitable[bool]] | None = None  # queues.restore(): replay the log
    persister: Persister | None = None
    metrics: CollectorRegistry | None = None  # None: VQ_METRICS=false
    scheduler: Scheduler | None = None  # opening hours
    known_queues: KnownQueues | None = None  # None: every miss asks PostgreSQL (tests)
    vapid: VapidKey | None = None  # the deployment's Web Push key (server/webpush.py)
    notifier: Notifier | None = None  # None: VQ_NOTIFY=false
    owners: QueueOwners = field(default_factory=QueueOwners)  # read once per queue


def services(conn: HTTPConnection) -> Services:
    found: Services = conn.app.state.services
    return found
