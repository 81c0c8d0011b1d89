"""A queue's owner is read once per node (server/owners.py): the staff calls after the first
make no owner read in Redis, and the cache never answers for a venue it should not."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
import redis

from server.keys import queue_keys
from tests.conftest import SharedServer


@pytest.fixture
def client(shared_server: SharedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_server.url, timeout=10) as c:
        yield c


def staff(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_queue(client: httpx.Client, key: str) -> str:
    slug = f"own-{secrets.token_hex(4)}"
    r = client.put(f"/v1/queues/{slug}", json={"name": "Desk"}, headers=staff(key))
    assert r.status_code == 201, r.text
    return slug


def owner_reads(shared_server: SharedServer, queue: str, calls: list[tuple[str, str]]) -> int:
    """How many owner reads (the `read_meta` script: keys meta and line, nothing else) Redis
    saw for `queue` while the staff calls ran, watched with MONITOR up to a marker."""
    settings = shared_server.settings
    keys = queue_keys(settings.redis_prefix, queue)
    assert settings.redis_url is not None
    url = settings.redis_url.reveal()
    marker = f"owner-reads-done-{secrets.token_hex(4)}"
    with (
        redis.Redis.from_url(url) as other,
        redis.Redis.from_url(url) as watcher,
        watcher.monitor() as monitor,
    ):
        with httpx.Client(base_url=shared_server.url, timeout=10) as c:
            for method, path in calls:
                r = c.request(method, path, headers=staff(shared_server.key))
                assert r.status_code in (200, 204), r.text
        other.echo(marker)
        reads = 0
        while True:
            command = monitor.next_command()["command"]
            if marker in command:
                return reads
            if command.startswith("EVALSHA") and command.endswith(f"2 {keys.meta} {keys.line}"):
                reads += 1


def test_staff_calls_after_the_first_read_no_owner(
    client: httpx.Client, shared_server: SharedServer
) -> None:
    queue = new_queue(client, shared_server.key)
    calls = [
        ("POST", f"/v1/queues/{queue}/call-next"),
        ("POST", f"/v1/queues/{queue}/pause"),
        ("POST", f"/v1/queues/{queue}/resume"),
    ]
    assert owner_reads(shared_server, queue, calls[:1]) == 1  # the first one reads it
    assert owner_reads(shared_server, queue, calls) == 0


def test_a_cached_owner_still_forbids_other_venues(
    client: httpx.Client, shared_server: SharedServer
) -> None:
    queue = new_queue(client, shared_server.key)
    mine = client.post(f"/v1/queues/{queue}/pause", headers=staff(shared_server.key))
    assert mine.status_code == 200, mine.text
    for _ in range(2):
        theirs = client.post(f"/v1/queues/{queue}/resume", headers=staff(shared_server.other_key))
        assert theirs.status_code == 403, theirs.text
        assert theirs.json()["error"]["code"] == "forbidden"


def test_an_unowned_slug_is_not_remembered(
    client: httpx.Client, shared_server: SharedServer
) -> None:
    slug = f"own-{secrets.token_hex(4)}"
    r = client.post(f"/v1/queues/{slug}/call-next", headers=staff(shared_server.other_key))
    assert r.status_code == 404, r.text
    r = client.put(
        f"/v1/queues/{slug}", json={"name": "Late"}, headers=staff(shared_server.other_key)
    )
    assert r.status_code == 201, r.text
    r = client.post(f"/v1/queues/{slug}/call-next", headers=staff(shared_server.other_key))
    assert r.status_code == 204, r.text
