"""`GET /metrics` scraped from a real server during real load: every family the contract lists,
with values that match what the test did (joins, calls, watchers, frames, a forced resync)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request

from protocol.watch import ResyncReason
from server.app import create_app
from server.config import Secret, Settings
from server.metrics import operator_allowed
from server.store import Store
from tests.conftest import PURE_PYTHON, expected_fanout_loop
from tests.server.watchers import RecordingWatcher, settle

FAMILIES = {
    "vqueue_joins": "counter",
    "vqueue_calls": "counter",
    "vqueue_watchers": "gauge",
    "vqueue_frames_sent": "counter",
    "vqueue_push_latency_seconds": "histogram",
    "vqueue_resyncs": "counter",
    "vqueue_persist_backlog_events": "gauge",
    "vqueue_notify_backlog": "gauge",
    "vqueue_rate_limited": "counter",
    "vqueue_http_requests": "counter",
}
JOINS = 24
WATCHED = 16
CALLS = 4


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(http: httpx.AsyncClient) -> tuple[dict[str, str], Samples]:
    r = await http.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(r.text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def until_value(
    http: httpx.AsyncClient, name: str, expected: Any, timeout_s: float = 10.0, **labels: str
) -> Samples:
    """Scrape until `name` has the expected value (a number, or a predicate), with a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        _, samples = await scrape(http)
        got = samples.get((name, tuple(sorted(labels.items()))))
        ok = expected(got) if callable(expected) else got == expected
        if ok or loop.time() > deadline:
            assert ok, f"{name}{labels} = {got}, wanted {expected}"
            return samples
        await asyncio.sleep(0.05)


async def test_metrics_during_load_match_what_happened(
    start_server: Any, make_venue: Any, silent: Store
) -> None:
    # No drift check: the one resync this test causes must be seen as the gap it is.
    server = start_server(VQ_RESYNC_CHECK_S="0")
    _, key = await make_venue()
    staff = {"Authorization": f"Bearer {key}"}
    queue = f"m-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        types, _ = await scrape(http)
        assert {n: types.get(n) for n in FAMILIES} == FAMILIES
        assert (await http.put(f"/v1/queues/{queue}", json={}, headers=staff)).status_code == 201
        joined = await asyncio.gather(
            *(http.post(f"/v1/queues/{queue}/tickets") for _ in range(JOINS))
        )
        tickets = [r.json() for r in joined]
        watchers = [
            RecordingWatcher(t["ticket_id"], t["token"], server.ws_url) for t in tickets[:WATCHED]
        ]
        await asyncio.gather(*(w.start() for w in watchers))
        await until_value(http, "vqueue_watchers", WATCHED)
        await silent.call_next(queue, None, None)  # a change this node never hears of
        for _ in range(CALLS):  # the first of these shows the node a gap in seq
            r = await http.post(f"/v1/queues/{queue}/call-next", json={}, headers=staff)
            assert r.status_code == 200, r.text
            _, mid_load = await scrape(http)
            assert value(mid_load, "vqueue_watchers") == WATCHED
        assert await settle(watchers, http, queue, key) == []

        def frames_received() -> int:
            return sum(len(w.messages) for w in watchers)

        samples = await until_value(
            http, "vqueue_frames_sent_total", lambda v: v == frames_received()
        )
        assert value(samples, "vqueue_joins_total") == JOINS
        assert value(samples, "vqueue_calls_total") == CALLS
        assert value(samples, "vqueue_watchers") == WATCHED
        assert frames_received() >= WATCHED + CALLS + 1
        reasons = [r.value for r in ResyncReason]
        resyncs = {r: value(samples, "vqueue_resyncs_total", reason=r) for r in reasons}
        # One load when the node first watched the queue, one for the gap the silent call left.
        assert resyncs == {r: 1 if r in ("initial", "gap") else 0 for r in reasons}
        # Every event handled by the notifier too (measured every 2 s), nothing to deliver.
        await until_value(http, "vqueue_notify_backlog", 0)
        assert value(samples, "vqueue_rate_limited_total") == 0
        assert value(samples, "vqueue_push_latency_seconds_bucket", le="+Inf") == value(
            samples, "vqueue_push_latency_seconds_count"
        )
        requests = {
            (labels, v)
            for (name, labels), v in samples.items()
            if name == "vqueue_http_requests_total"
        }
        join_route = (("method", "POST"), ("route", "/v1/queues/{queue}/tickets"))
        call_route = (("method", "POST"), ("route", "/v1/queues/{queue}/call-next"))
        assert ((*join_route, ("status", "201")), JOINS) in requests
        assert ((*call_route, ("status", "200")), CALLS) in requests
        assert not any(queue in str(labels) for labels, _ in requests)  # templates, not paths
        # The persister writes every event (joins, calls, the silent call) to PostgreSQL.
        await until_value(http, "vqueue_persist_backlog_events", 0)
        for w in watchers[:5]:
            await w.stop()
        await until_value(http, "vqueue_watchers", WATCHED - 5)
        await asyncio.gather(*(w.stop() for w in watchers[5:]))


async def test_push_latency_is_observed_once_per_flush(start_server: Any, make_venue: Any) -> None:
    server = start_server()
    _, key = await make_venue()
    queue = f"m-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        await http.put(f"/v1/queues/{queue}", json={}, headers={"Authorization": f"Bearer {key}"})
        tickets = [(await http.post(f"/v1/queues/{queue}/tickets")).json() for _ in range(3)]
        watchers = [RecordingWatcher(t["ticket_id"], t["token"], server.ws_url) for t in tickets]
        await asyncio.gather(*(w.start() for w in watchers))
        for _ in range(200):  # registered and shown their place: the call moves them by notice
            if all(w.last_position is not None for w in watchers):
                break
            await asyncio.sleep(0.05)
        await http.post(f"/v1/queues/{queue}/call-next", headers={"Authorization": f"Bearer {key}"})
        await until_value(
            http, "vqueue_push_latency_seconds_count", lambda v: v is not None and v >= 1
        )
        await asyncio.gather(*(w.stop() for w in watchers))


def test_metrics_off_answers_404(start_server: Any) -> None:
    server = start_server(VQ_METRICS="false")
    r = httpx.get(f"{server.url}/metrics")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")


def request_from(host: str, authorization: str | None = None) -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    scope = {"type": "http", "method": "GET", "path": "/metrics", "headers": headers}
    return Request({**scope, "client": (host, 40000), "query_string": b""})


@pytest.mark.parametrize(
    ("host", "authorization", "allowed"),
    [
        ("127.0.0.1", None, True),
        ("127.8.9.10", None, True),
        ("::1", None, True),
        ("198.51.100.7", None, False),
        ("198.51.100.7", "Bearer wrong-token-0123456789", False),
        ("198.51.100.7", "Bearer metrics-token-0123456789", True),
        ("2001:db8::5", "Bearer metrics-token-0123456789", True),
        ("not-an-address", None, False),
    ],
)
def test_metrics_access(host: str, authorization: str | None, allowed: bool) -> None:
    settings = Settings(metrics_token=Secret("metrics-token-0123456789"))
    assert operator_allowed(request_from(host, authorization), settings) is allowed


def test_no_token_configured_keeps_remote_clients_out() -> None:
    remote = request_from("198.51.100.7", "Bearer anything-at-all-0123456")
    assert operator_allowed(remote, Settings()) is False


async def test_readyz_details_and_metrics_only_for_operators(settings: Settings) -> None:
    """The real app in-process, its client off loopback: the token opens both."""
    token = "operator-token-0123456789"
    app = create_app(dataclasses.replace(settings, metrics_token=Secret(token)))
    operator = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://vqueue.test") as client,
    ):
        public = await client.get("/readyz")
        assert (public.status_code, public.json()) == (200, {"ready": True})
        assert public.headers["x-request-id"]
        detailed = (await client.get("/readyz", headers=operator)).json()
        assert detailed["ready"] is True and detailed["redis"] is True
        assert {"watchers", "frames_sent", "fanout_loop", "resyncs", "persistence"} <= set(detailed)
        # The loop the pass asked for (`make unit` runs this file again with VQ_PURE_PYTHON).
        assert detailed["fanout_loop"] == expected_fanout_loop(PURE_PYTHON)
        wrong = {"Authorization": "Bearer not-the-token-123"}
        refused = await client.get("/metrics", headers=wrong)
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthorized")
        assert (await client.get("/metrics", headers=operator)).status_code == 200
