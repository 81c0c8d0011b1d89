"""The read behind the staff and board views: names, priorities and calls at one seq.

A node reads this once when the first `watch_queue` / `watch_board` of a queue arrives and after
each resync of the queue (never per event or per watcher); the notices keep it from then on.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, cast

import orjson
from redis.exceptions import RedisError

from protocol.viewwatch import BookSnapshot
from server.errors import Unavailable
from server.store.core import Store

BOOK_SCRIPT = (resources.files("server") / "scripts" / "book.lua").read_text()


def _text(value: Any) -> str | None:
    return None if value is None or value is False else str(value)


def _rows(value: Any) -> list[list[Any]]:
    # cjson writes an empty Lua table as {}: no rows.
    return cast(list[list[Any]], value) if isinstance(value, list) else []


async def read_book(store: Store, queue: str) -> BookSnapshot | None:
    """The queue's book, or None when Redis has no such queue."""
    k = store.keys(queue)
    script = store.redis.register_script(BOOK_SCRIPT)
    try:
        raw = await script(keys=[k.meta, k.line, k.tickets, k.called])
    except RedisError as exc:
        raise Unavailable("the live queue store is unreachable") from exc
    if raw is None:
        return None
    data = orjson.loads(cast(bytes, raw))
    return BookSnapshot(
        epoch=str(data["epoch"]),
        seq=int(data["seq"]),
        waiting=tuple((int(n), _text(name), int(p)) for n, name, p in _rows(data["waiting"])),
        called=tuple(
            (int(n), _text(name), _text(counter), int(at))
            for n, name, counter, at in _rows(data["called"])
        ),
        board_names=bool(data["board_names"]),
    )
