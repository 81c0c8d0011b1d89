"""The pages' server side over plain HTTP: page routes and headers, static files, the board's
JSON, the join QR code, and that every message key the pages use has English text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from server.pages import STATIC_DIR
from tests.browser.conftest import LiveQueue


def test_pages_are_served_with_a_strict_policy(live_queue: LiveQueue) -> None:
    for path in ("q", "staff", "board"):
        response = httpx.get(live_queue.url(f"/{path}/{live_queue.slug}"))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert response.headers["cache-control"] == "no-cache"
    staff = httpx.get(live_queue.url(f"/staff/{live_queue.slug}"))
    assert "frame-ancestors 'none'" in staff.headers["content-security-policy"]
    assert httpx.get(live_queue.url("/q/Not_A_Slug")).status_code == 404


def test_static_files_and_the_client_module(live_queue: LiveQueue) -> None:
    client = httpx.get(live_queue.url("/static/vqueue.js"))
    assert client.status_code == 200
    assert client.headers["content-type"].startswith("text/javascript")
    assert "export class Watch" in client.text
    for name in ("customer.js", "staff.js", "board.js", "base.css", "sw.js"):
        assert httpx.get(live_queue.url(f"/static/{name}")).status_code == 200, name
    messages = httpx.get(live_queue.url("/static/i18n/en.json")).json()
    assert messages["customer.turn.title"] == "It's your turn!"
    assert httpx.get(live_queue.url("/static/nope.js")).status_code == 404


def test_board_shows_the_latest_call_per_counter_first(live_queue: LiveQueue) -> None:
    q = live_queue
    for name in ("Ann", None, "Cid", "Dee"):
        q.join(name)
    first = q.call("Desk 1")
    q.finish(first["ticket_id"])
    q.call()  # to no counter
    third = q.call("Desk 1")  # replaces Ann at desk 1
    board = httpx.get(q.url(f"/v1/queues/{q.slug}/board"))
    assert board.status_code == 200
    assert board.headers["cache-control"] == "no-store"
    body = board.json()
    assert {k: body[k] for k in ("queue", "name", "state", "waiting")} == {
        "queue": q.slug,
        "name": q.name,
        "state": "open",
        "waiting": 1,
    }
    shown = [(c["counter"], c["number"], c["status"]) for c in body["counters"]]
    assert shown == [("Desk 1", 3, "called"), (None, 2, "called")]
    assert "Cid" not in str(body)  # the public board shows numbers, never names
    assert body["counters"][0]["ticket_id"] == third["ticket_id"]
    q.finish(third["ticket_id"])
    after = httpx.get(q.url(f"/v1/queues/{q.slug}/board")).json()["counters"]
    assert after[0]["status"] == "served"  # a recent call stays on the board once finished
    assert httpx.get(q.url("/v1/queues/no-such-queue/board")).status_code == 404


def test_join_qr_code_is_an_svg_of_the_customer_page(live_queue: LiveQueue) -> None:
    q = live_queue
    response = httpx.get(q.url(f"/v1/queues/{q.slug}/qr.svg"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.text.startswith("<svg")
    assert f"<title>{q.url(f'/q/{q.slug}')}</title>" in response.text
    assert httpx.get(q.url("/v1/queues/no-such-queue/qr.svg")).status_code == 404


KEY_PATTERNS = (
    re.compile(r"""\bt\(\s*"([\w.-]+)"""),  # t("key") in the modules
    re.compile(r"""\?\s*"([a-z]+\.[\w.-]+)"\s*:\s*"([a-z]+\.[\w.-]+)"""),  # t(cond ? "a" : "b")
    re.compile(r"""data-i18n(?:-label|-placeholder|-title)?="([\w.-]+)"""),  # the HTML
)


def test_every_message_key_in_the_pages_has_english_text() -> None:
    messages = json.loads((STATIC_DIR / "i18n" / "en.json").read_text())
    used: set[str] = set()
    for path in sorted(Path(STATIC_DIR).glob("*.[hj]*")):
        text = path.read_text()
        for pattern in KEY_PATTERNS:
            for match in pattern.finditer(text):
                used.update(group for group in match.groups() if group)
    assert len(used) > 60
    assert sorted(used - messages.keys()) == []
    # Keys built at run time from a status or state.
    for status in ("served", "no_show", "left"):
        assert f"customer.done.{status}.title" in messages
    for state in ("connecting", "live", "reconnecting"):
        assert f"customer.conn.{state}" in messages
    for state in ("open", "paused", "closed"):
        assert f"staff.state.{state}" in messages
        assert f"staff.controls.hint.{state}" in messages
