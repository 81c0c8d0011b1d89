"""Fixtures shared by the server tests that lose notices on purpose."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest_asyncio

from server.config import Settings
from server.keys import QueueKeys
from server.store import Store


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
