"""A queue's owner is read once per node (server/owners.py): the staff calls after the first
make no owner read in Redis, and the cache never answers for a venue it should not."""

from __future__ import annotations

import secrets

import httpx
import redis

from server.keys import queue_keys
from server.owners import QueueOwners
from tests.conftest import SharedServer
from tests.server.conftest import new_queue


async def owner_reads(
    http: httpx.AsyncClient, s: SharedServer, queue: str, paths: list[str]
) -> int:
    """How many owner reads (the `read_meta` script: keys meta and line, nothing else) Redis
    saw for `queue` while staff POSTed to `paths`, watched with MONITOR up to a marker."""
    assert s.settings.redis_url is not None
    url = s.settings.redis_url.reveal()
    keys = queue_keys(s.settings.redis_prefix, queue)
    marker = f"owner-reads-done-{secrets.token_hex(4)}"
    with (
        redis.Redis.from_url(url) as other,
        redis.Redis.from_url(url) as watcher,
        watcher.monitor() as monitor,
    ):
        for path in paths:
            r = await http.post(path, headers={"Authorization": f"Bearer {s.key}"})
            assert r.status_code in (200, 204), r.text
        other.echo(marker)
        reads = 0
        while True:
            command = monitor.next_command()["command"]
            if marker in command:
                return reads
            if command.startswith("EVALSHA") and command.endswith(f"2 {keys.meta} {keys.line}"):
                reads += 1


async def test_staff_calls_after_the_first_read_no_owner(
    http: httpx.AsyncClient, shared_server: SharedServer
) -> None:
    queue = await new_queue(http, shared_server)
    paths = [f"/v1/queues/{queue}/{action}" for action in ("call-next", "pause", "resume")]
    assert await owner_reads(http, shared_server, queue, paths[:1]) == 1  # the first reads it
    assert await owner_reads(http, shared_server, queue, paths) == 0


async def test_a_cached_owner_still_forbids_other_venues(
    http: httpx.AsyncClient, shared_server: SharedServer
) -> None:
    queue = await new_queue(http, shared_server)
    mine = {"Authorization": f"Bearer {shared_server.key}"}
    theirs = {"Authorization": f"Bearer {shared_server.other_key}"}
    assert (await http.post(f"/v1/queues/{queue}/pause", headers=mine)).status_code == 200
    for _ in range(2):
        r = await http.post(f"/v1/queues/{queue}/resume", headers=theirs)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"


async def test_an_unowned_slug_is_not_remembered(
    http: httpx.AsyncClient, shared_server: SharedServer
) -> None:
    slug = f"own-{secrets.token_hex(4)}"
    theirs = {"Authorization": f"Bearer {shared_server.other_key}"}
    assert (await http.post(f"/v1/queues/{slug}/call-next", headers=theirs)).status_code == 404
    r = await http.put(f"/v1/queues/{slug}", json={"name": "Late"}, headers=theirs)
    assert r.status_code == 201, r.text
    assert (await http.post(f"/v1/queues/{slug}/call-next", headers=theirs)).status_code == 204


def test_the_cache_is_bounded_and_refills_on_use() -> None:
    owners = QueueOwners(max_entries=3)
    for i in range(3):
        owners.put(f"q{i}", "venue-a")
    owners.put("q3", "venue-b")  # over the bound: the old entries go, the new one stays
    assert [owners.get(f"q{i}") for i in range(4)] == [None, None, None, "venue-b"]
