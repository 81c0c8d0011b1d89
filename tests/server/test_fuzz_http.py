"""Hypothesis against every HTTP route of a real server: path, query, header and body values
drawn at random, with a valid staff key, another venue's, a forged one or none. No answer may
be a 5xx, and every error must be in the contract's shape `{"error": {"code", "message"}}`."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from server.app import create_app
from server.config import Settings
from tests.conftest import SharedServer

PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def http_routes() -> list[tuple[str, str]]:
    """(method, path template) of every HTTP route the application serves."""
    app = create_app(Settings(data_dir=Path("/nonexistent")))
    out = []
    for route in app.routes:
        if isinstance(route, Route):
            for method in sorted(route.methods or {"GET"}):
                out.append((method, route.path))
    return out


ROUTES = http_routes()
VISIBLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
ANY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "0", "1", "-1", "1e400", "9" * 40, "2024-01-01", "0001-01-01T00:00Z"]),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)
# Past PostgreSQL's bigint and Python's datetime: where unchecked values used to become 500s.
HUGE = st.integers(min_value=2**63 - 2, max_value=2**80).map(str)
QUERY_VALUES = st.one_of(HUGE, NUMBERS, ANY_TEXT)
FIELDS = ["name", "counter", "label", "role", "queue", "position", "priority", "ticket_ids", "all"]


def to_json(value: object) -> bytes:
    # The standard library, unlike orjson, writes integers past 64 bits (and NaN) as given.
    return json.dumps(value).encode()


@pytest.fixture(scope="module")
def fuzz_queue(shared_server: SharedServer) -> Iterator[tuple[str, str]]:
    """A real queue of the key's venue and a ticket in it, so paths can name real things."""
    queue = f"fz-{secrets.token_hex(3)}"
    auth = {"Authorization": f"Bearer {shared_server.key}"}
    with httpx.Client(base_url=shared_server.url) as c:
        assert c.put(f"/v1/queues/{queue}", json={}, headers=auth).status_code == 201
        ticket = c.post(f"/v1/queues/{queue}/tickets", json={}).json()
    yield queue, ticket["ticket_id"]


@st.composite
def requests(
    draw: st.DrawFn, route: tuple[str, str], queue: str, ticket_id: str, keys: tuple[str, str]
) -> dict[str, Any]:
    method, template = route
    real = {"queue": queue, "ticket_id": ticket_id, "key_id": keys[0][4:20], "path": "staff.js"}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if draw(st.integers(0, 7)) > 0:  # mostly real things, so the handlers run past 404
            return real.get(name, "x")
        return quote(draw(ANY_TEXT | NUMBERS), safe="") or "x"

    path = PARAM.sub(fill, template)
    query = {n: draw(QUERY_VALUES) for n in QUERY_NAMES if draw(st.booleans())}
    headers = draw(
        st.dictionaries(st.sampled_from(HEADER_NAMES), st.text(VISIBLE, max_size=60).map(str.strip))
    )
    forged = "vqk_0000000000000000_" + "A" * 43
    auth = draw(st.sampled_from([keys[0]] * 12 + [keys[1], forged, None]))
    if auth is not None:
        headers["Authorization"] = f"Bearer {auth}"
    if draw(st.integers(0, 4)) == 0:
        headers["Origin"] = draw(st.sampled_from(["https://evil.example", "null", "x"]))
    body = draw(
        st.one_of(
            st.none(),
            st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=4).map(to_json),
            JSON_VALUES.map(to_json),
            st.binary(max_size=200),
        )
    )
    return {"method": method, "url": path, "params": query, "headers": headers, "content": body}


PAGE_PREFIXES = ("/q/", "/staff/", "/board/")
QUERY_NAMES = ["after_seq", "limit", "since", "until", "force", "status", "x"]
HEADER_NAMES = [
    "Content-Type",
    "Idempotency-Key",
    "X-Forwarded-For",
    "Accept",
    "If-None-Match",
    "Range",
    "Cookie",
    "Sec-WebSocket-Key",
]


def check(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400 and r.request.method != "HEAD":  # HEAD answers carry no body
        if r.headers.get("content-type", "").startswith("text/html"):
            # The pages people open answer a page even for an unknown queue; the API never does.
            assert r.request.url.path.startswith(PAGE_PREFIXES), r.request.url
            return
        error = r.json()["error"]
        assert set(error) == {"code", "message"}, error
        assert isinstance(error["code"], str) and isinstance(error["message"], str)


def test_every_route_is_fuzzed() -> None:
    paths = {path for _, path in ROUTES}
    assert {"/v1/queues/{queue}/tickets", "/v1/tickets/{ticket_id}", "/readyz"} <= paths


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_no_input_gets_a_5xx_and_every_error_has_the_contract_shape(
    shared_server: SharedServer, fuzz_queue: tuple[str, str], route: tuple[str, str]
) -> None:
    queue, ticket_id = fuzz_queue
    keys = (shared_server.key, shared_server.other_key)
    with httpx.Client(base_url=shared_server.url, timeout=20) as client:

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        @given(requests(route, queue, ticket_id, keys))
        def fuzz(request: dict[str, Any]) -> None:
            check(client.request(**request))

        fuzz()
