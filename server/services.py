"""The long-lived objects one node runs with, shared by every request handler."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from server.auth import KeyCache, TicketSigner
from server.config import Settings
from server.db import Database
from server.fanout import Fanout
from server.store import Store


@dataclass(eq=False)
class Services:
    settings: Settings
    store: Store
    db: Database
    fanout: Fanout
    signer: TicketSigner
    keys: KeyCache


def services(conn: HTTPConnection) -> Services:
    found: Services = conn.app.state.services
    return found
