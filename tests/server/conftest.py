"""Fixtures of the server tests: for the WebSocket tests on the module's shared server an HTTP
client and a fresh queue per test; for the tests that lose notices on purpose, a silent store."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio

from server.config import Settings
from server.keys import QueueKeys
from server.store import Store
from tests.conftest import SharedServer


@pytest_asyncio.fixture
async def http(shared_server: SharedServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=shared_server.url, timeout=10) as c:
        yield c


async def new_queue(http: httpx.AsyncClient, s: SharedServer) -> str:
    slug = f"w-{secrets.token_hex(4)}"
    auth = {"Authorization": f"Bearer {s.key}"}
    r = await http.put(f"/v1/queues/{slug}", json={"name": "W"}, headers=auth)
    assert r.status_code == 201
    return slug


@pytest_asyncio.fixture
async def queue(http: httpx.AsyncClient, shared_server: SharedServer) -> str:
    return await new_queue(http, shared_server)


async def join_named(http: httpx.AsyncClient, queue: str, name: str) -> dict[str, Any]:
    r = await http.post(f"/v1/queues/{queue}/tickets", json={"name": name})
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


class SilentStore(Store):
    """Makes real changes whose notices go to a channel nobody hears: lost messages."""

    def keys(self, queue: str) -> QueueKeys:
        return dataclasses.replace(super().keys(queue), channel="nobody-listens")


@pytest_asyncio.fixture
async def silent(settings: Settings) -> AsyncIterator[Store]:
    assert settings.redis_url is not None
    s = SilentStore(settings.redis_url.reveal(), settings.redis_prefix)
    yield s
    await s.close()
