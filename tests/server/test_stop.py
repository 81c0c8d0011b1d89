"""A node stops when asked, even if a background task swallows a cancel (server/app.py,
server/tasks.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

from server import keyroutes
from server.app import create_app
from server.config import Settings
from server.httpprotocol import protocol_class
from server.tasks import cancel_all
from tests.server.threaded import serve_in_thread


async def _swallows_one_cancel() -> None:
    """As redis-py can inside a subscription's read: the first cancel is lost."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
    await asyncio.Event().wait()


def test_a_node_stops_though_its_revocations_reader_swallows_a_cancel(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def start_following(*args: Any) -> asyncio.Task[None]:
        return asyncio.create_task(_swallows_one_cancel())

    monkeypatch.setattr(keyroutes, "start_following", start_following)
    running = serve_in_thread(create_app(settings), http=protocol_class(30.0), lifespan="on")
    running.stop()  # the server's thread has ended within 5 s


async def test_a_task_that_swallows_a_cancel_is_cancelled_again() -> None:
    task = asyncio.create_task(_swallows_one_cancel())
    await asyncio.sleep(0)  # it starts waiting
    await cancel_all([task])
    assert task.cancelled()


async def test_a_task_that_had_failed_is_logged_not_left_unretrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails() -> None:
        raise RuntimeError("gone")

    task = asyncio.create_task(fails(), name="reader")
    await asyncio.sleep(0)
    with caplog.at_level(logging.INFO, logger="server.tasks"):
        await cancel_all([task])
    assert "reader had ended with RuntimeError('gone')" in caplog.text
