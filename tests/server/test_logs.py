"""Request ids in answers and log lines, JSON logs, and no secret or personal data in any line,
against real server processes whose whole log is read afterwards."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from server.logs import REDACTED, scrub
from tests.conftest import ServerProcess
from tests.server.receivers import MailInbox, WebhookReceiver

EMAIL = "ann.smith+queue@example.org"
PHONE = "+33 6 12 34 56 78"


def json_lines(server: ServerProcess) -> list[dict[str, Any]]:
    """Every line the server wrote, each of which must be one JSON object."""
    lines = [line for line in server.log_text().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(p, dict) for p in parsed)
    return parsed


async def test_request_id_in_answer_and_in_the_json_log_line(start_server: Any) -> None:
    server = start_server(VQ_LOG_FORMAT="json", VQ_LOG_LEVEL="DEBUG")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        mine = await http.get("/v1/queues/no-such-queue", headers={"X-Request-ID": "req-42.a:b"})
        fresh = await http.get("/healthz")
        refused = await http.get("/healthz", headers={"X-Request-ID": "has spaces; and quotes"})
        too_long = await http.get("/healthz", headers={"X-Request-ID": "x" * 129})
    assert mine.status_code == 404
    assert mine.headers["x-request-id"] == "req-42.a:b"
    generated = [r.headers["x-request-id"] for r in (fresh, refused, too_long)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", g) for g in generated), generated
    assert len(set(generated)) == 3
    # A WebSocket refused for its Origin: the handler's own log line names the request too.
    with pytest.raises(InvalidStatus):
        await connect(
            server.ws_url,
            origin="https://evil.example",
            additional_headers={"X-Request-ID": "ws-req-7"},
        )
    async with connect(server.ws_url, additional_headers={"X-Request-ID": "ws-ok-1"}) as ws:
        assert ws.response is not None and ws.response.headers["X-Request-ID"] == "ws-ok-1"
        await ws.send(json.dumps({"type": "nonsense"}))
        assert json.loads(await ws.recv())["type"] == "error"
        await ws.wait_closed()
    server.stop()
    lines = json_lines(server)
    assert {"time", "level", "logger", "message", "request_id"} <= set(lines[0])
    access = [ln for ln in lines if ln["request_id"] == "req-42.a:b"]
    assert len(access) == 1, access
    assert access[0]["route"] == "/v1/queues/{queue}"
    assert (access[0]["status"], access[0]["method"], access[0]["level"]) == (404, "GET", "INFO")
    for rid in generated:
        assert [ln["route"] for ln in lines if ln["request_id"] == rid] == ["/healthz"]
    ws_lines = [ln["message"] for ln in lines if ln["request_id"] == "ws-req-7"]
    assert any("refused a WebSocket" in m for m in ws_lines), ws_lines
    # Its open and close lines, the close logged outside the request's task.
    ws_session = [ln["message"] for ln in lines if ln["request_id"] == "ws-ok-1"]
    assert any(m.endswith("open") for m in ws_session), ws_session
    assert any(m.endswith("closed 1008") for m in ws_session), ws_session
    # Lines outside any request (startup, shutdown) say so.
    assert any(ln["request_id"] == "-" for ln in lines)


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_no_key_token_email_or_phone_reaches_any_log_line(
    start_server: Any, make_venue: Any, log_format: str
) -> None:
    server = start_server(VQ_LOG_LEVEL="DEBUG", VQ_LOG_FORMAT=log_format)
    _, key = await make_venue()
    staff = {"Authorization": f"Bearer {key}"}
    queue = f"l-{secrets.token_hex(3)}"
    tokens = []
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        r = await http.put(f"/v1/queues/{queue}", json={"name": PHONE}, headers=staff)
        assert r.status_code == 201
        for name in (EMAIL, PHONE, "Ann"):
            r = await http.post(
                f"/v1/queues/{queue}/tickets",
                json={"name": name},
                headers={"Idempotency-Key": secrets.token_hex(12), "X-Contact": EMAIL},
            )
            assert r.status_code == 201, r.text
            tokens.append((r.json()["ticket_id"], r.json()["token"]))
        (tid, token), (other_tid, other_token) = tokens[0], tokens[1]
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await http.get(f"/v1/tickets/{tid}", headers=bearer)).status_code == 200
        wrong = {"Authorization": f"Bearer {other_token}"}
        assert (await http.get(f"/v1/tickets/{tid}", headers=wrong)).status_code == 401
        assert (await http.get(f"/v1/queues/{EMAIL}")).status_code == 404
        r = await http.get(f"/v1/queues/{queue}/events?limit={PHONE}")
        assert r.status_code in (400, 401)
        r = await http.get(f"/v1/queues/{queue}/events?limit={EMAIL}", headers=staff)
        assert r.status_code == 400
        r = await http.post(f"/v1/queues/{queue}/call-next", json={"counter": EMAIL}, headers=staff)
        assert r.status_code == 200
        r = await http.post(f"/v1/queues/{queue}/tickets", content=f'{{"name": "{PHONE}"')
        assert r.status_code == 400
        r = await http.get("/healthz", headers={"X-Request-ID": EMAIL, "Cookie": f"k={key}"})
        assert r.status_code == 200
        async with connect(server.ws_url) as ws:
            await ws.send(json.dumps({"type": "watch", "token": other_token}))
            frames = [json.loads(await ws.recv()) for _ in range(2)]  # queue state, position
            assert other_tid in {f.get("ticket_id") for f in frames}
        async with connect(server.ws_url) as ws:  # a forged token: closed with an error
            await ws.send(json.dumps({"type": "watch", "token": token + "x", "email": EMAIL}))
            assert json.loads(await ws.recv())["type"] == "error"
        assert (await http.delete(f"/v1/tickets/{other_tid}", headers=wrong)).status_code == 200
    server.stop()
    text = server.log_text()
    assert "GET /v1/tickets/{ticket_id} 200 " in text  # the run really was logged
    # The key's secret is everything after "vqk_<id>_"; it may itself hold "_".
    secret = key.split("_", 2)[2]
    secrets_used = [key, secret, EMAIL, PHONE, *(t for _, t in tokens)]
    leaked = [s for s in secrets_used if s in text]
    assert leaked == []
    # Nothing even needed scrubbing: the scrubber is a second line of defence, not the first.
    assert REDACTED not in text


def test_scrub_masks_each_shape() -> None:
    line = (
        "key vqk_0123456789abcdef_"
        + "A" * 43
        + " token WyJxLTEuMSIsIm5vbmNlIl0.abcdefghij0123456789"
        f" mail {EMAIL} phone {PHONE} seq 12345678 at 127.0.0.1:8000"
    )
    assert scrub(line) == (
        f"key {REDACTED} token {REDACTED} mail {REDACTED} phone {REDACTED}"
        " seq 12345678 at 127.0.0.1:8000"
    )


async def test_no_contact_reaches_any_log_line_while_notifying(
    start_server: Any, make_venue: Any
) -> None:
    """Emails, SMS and a webhook really sent (an SMS refused once, so retried), at DEBUG."""
    inbox = MailInbox()
    inbox.start()
    phone = "+33612345678"
    sms = WebhookReceiver(secret="whsec_" + "A" * 32, status=500)
    try:
        async with sms.running():
            server = start_server(
                VQ_LOG_LEVEL="DEBUG",
                VQ_SMTP_URL=inbox.url,
                VQ_SMS_WEBHOOK_URL=sms.url,
                VQ_SMS_WEBHOOK_SECRET=sms.secret,
                VQ_WEBHOOK_RETRY_S="0.2,0.2",
                VQ_WEBHOOK_ALLOW_PRIVATE="true",
            )
            _, key = await make_venue()
            staff = {"Authorization": f"Bearer {key}"}
            queue = f"l-{secrets.token_hex(3)}"
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                channels = {"email": True, "sms": True}
                body = {"name": "Q", "channels": channels}
                r = await http.put(f"/v1/queues/{queue}", json=body, headers=staff)
                assert r.status_code == 201, r.text
                contact = {"email": EMAIL, "phone": phone}
                r = await http.post(f"/v1/queues/{queue}/tickets", json={"contact": contact})
                assert r.status_code == 201, r.text
                ticket = r.json()
                bad = {"contact": {"email": EMAIL + ">", "phone": phone + "x"}}
                r = await http.post(f"/v1/queues/{queue}/tickets", json=bad)
                assert r.status_code == 400
                assert EMAIL not in r.text and phone not in r.text
                path = f"/v1/tickets/{ticket['ticket_id']}/contact"
                mine = {"Authorization": f"Bearer {ticket['token']}"}
                assert (await http.put(path, json=contact, headers=mine)).status_code == 200
                r = await http.post(f"/v1/queues/{queue}/call-next", headers=staff)
                assert r.status_code == 200
                for _ in range(100):
                    if len(inbox.to(EMAIL)) >= 2 and sms.calls:
                        break
                    await asyncio.sleep(0.1)
                sms.status = 200
                for _ in range(50):
                    if sms.delivered():
                        break
                    await asyncio.sleep(0.1)
            server.stop()
    finally:
        inbox.stop()
    assert len(inbox.to(EMAIL)) == 2 and sms.delivered()
    assert sms.delivered()[0].body["to"] == phone
    text = server.log_text()
    assert "attempt 1: HTTP 500" in text  # the refused SMS was logged, without its number
    leaked = [s for s in (EMAIL, phone, phone[1:], EMAIL.split("@", 1)[0]) if s in text]
    assert leaked == []
    assert REDACTED not in text
