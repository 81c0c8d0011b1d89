"""The staff and board views' one read (server/store/books.py) against a real Redis."""

from __future__ import annotations

import secrets

from server.store import Store
from server.store.books import read_book


async def test_book_reads_names_priorities_and_calls_at_one_seq(store: Store) -> None:
    queue = f"b-{secrets.token_hex(3)}"
    await store.upsert_queue(queue, "venue-1", "Books")
    for name in ("Ann", None, "Cy", "Di"):
        await store.join(queue, name, None)
    await store.call_next(queue, "desk 1", None)
    await store.call_next(queue, None, None)
    await store.finish(queue, 1, "served")
    await store.call_next(queue, "desk 2", None)
    book = await read_book(store, queue)
    assert book is not None
    meta = await store.queue_meta(queue)
    assert meta is not None
    assert (book.epoch, book.seq) == (meta["epoch"], int(meta["seq"]))
    assert book.waiting == ((4, "Di", 0),)
    assert [(n, name, counter) for n, name, counter, _ in book.called] == [
        (2, None, None),
        (3, "Cy", "desk 2"),
    ]
    assert book.called[0][3] <= book.called[1][3]
    assert book.board_names is False


async def test_book_of_an_empty_or_unknown_queue(store: Store) -> None:
    queue = f"b-{secrets.token_hex(3)}"
    assert await read_book(store, queue) is None
    await store.upsert_queue(queue, "venue-1", "Empty")
    book = await read_book(store, queue)
    assert book is not None and book.waiting == () and book.called == ()
