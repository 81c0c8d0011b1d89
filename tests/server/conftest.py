"""Fixtures of the WebSocket tests on the module's shared server: an HTTP client and a fresh
queue per test."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

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


async def join_named(http: httpx.AsyncClient, queue: str, name: str) -> dict[str, Any]:
    r = await http.post(f"/v1/queues/{queue}/tickets", json={"name": name})
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data
