"""Fixtures of the WebSocket tests on the module's shared server: an HTTP client and a fresh
queue per test."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

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
