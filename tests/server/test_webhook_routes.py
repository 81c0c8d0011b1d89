"""The webhook routes' validation: admin keys only, a venue sees its own, private addresses
refused, unknown or malformed ids answer 404 (never 500)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import SharedServer


def admin(s: SharedServer, other: bool = False) -> dict[str, str]:
    return {"Authorization": f"Bearer {s.other_key if other else s.key}"}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data",
        "http://192.168.0.1/",
        "ftp://example.com/x",
        "http://user:pw@example.com/x",
        "not a url",
        "",
        42,
    ],
)
async def test_private_and_bad_urls_are_refused(
    http: httpx.AsyncClient, shared_server: SharedServer, url: object
) -> None:
    r = await http.post(
        "/v1/webhooks", json={"url": url, "events": ["ticket.called"]}, headers=admin(shared_server)
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_body"


@pytest.mark.parametrize("events", [[], ["ticket.eaten"], "ticket.called", [1], None])
async def test_events_must_be_known(
    http: httpx.AsyncClient, shared_server: SharedServer, events: object
) -> None:
    body = {"url": "https://93.184.215.14/hook", "events": events}
    r = await http.post("/v1/webhooks", json=body, headers=admin(shared_server))
    assert r.status_code == 400, r.text


async def test_a_venue_manages_only_its_own(
    http: httpx.AsyncClient, shared_server: SharedServer
) -> None:
    body = {"url": "https://93.184.215.14/hook", "events": ["ticket.called", "queue.state"]}
    r = await http.post("/v1/webhooks", json=body, headers=admin(shared_server))
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["secret"].startswith("whsec_") and made["events"] == [
        "queue.state",
        "ticket.called",
    ]
    listed = (await http.get("/v1/webhooks", headers=admin(shared_server))).json()["webhooks"]
    assert made["webhook_id"] in [w["webhook_id"] for w in listed]
    assert all("secret" not in w for w in listed)
    theirs = (await http.get("/v1/webhooks", headers=admin(shared_server, other=True))).json()
    assert made["webhook_id"] not in [w["webhook_id"] for w in theirs["webhooks"]]
    path = f"/v1/webhooks/{made['webhook_id']}"
    assert (await http.delete(path, headers=admin(shared_server, other=True))).status_code == 404
    r = await http.get(f"{path}/deliveries", headers=admin(shared_server, other=True))
    assert r.status_code == 404
    assert (await http.get(f"{path}/deliveries", headers=admin(shared_server))).json() == {
        "deliveries": []
    }
    r = await http.get(
        f"{path}/deliveries", params={"status": "pending"}, headers=admin(shared_server)
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_query"
    assert (await http.delete(path, headers=admin(shared_server))).json()["deleted"] is True
    assert (await http.delete(path, headers=admin(shared_server))).status_code == 404


@pytest.mark.parametrize(
    ("webhook", "delivery"),
    [
        ("x", "msg_" + "a" * 26),
        ("00000000-0000-0000-0000-000000000000", "msg_" + "a" * 26),
        ("%00", "x"),
        ("00000000-0000-0000-0000-00000000000g", "msg_"),
    ],
)
async def test_unknown_or_malformed_ids_are_404(
    http: httpx.AsyncClient, shared_server: SharedServer, webhook: str, delivery: str
) -> None:
    r = await http.post(
        f"/v1/webhooks/{webhook}/deliveries/{delivery}/retry", headers=admin(shared_server)
    )
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "webhook_not_found"


async def test_unknown_delivery_of_a_real_webhook_is_404(
    http: httpx.AsyncClient, shared_server: SharedServer
) -> None:
    body = {"url": "https://93.184.215.14/hook", "events": ["ticket.called"]}
    made = (await http.post("/v1/webhooks", json=body, headers=admin(shared_server))).json()
    for delivery in ("msg_" + "a" * 26, "nope", "msg_" + "Z" * 26, "a" * 500):
        r = await http.post(
            f"/v1/webhooks/{made['webhook_id']}/deliveries/{delivery}/retry",
            headers=admin(shared_server),
        )
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "delivery_not_found"
    await http.delete(f"/v1/webhooks/{made['webhook_id']}", headers=admin(shared_server))


async def test_a_staff_key_is_refused(http: httpx.AsyncClient, shared_server: SharedServer) -> None:
    key = await http.post("/v1/keys", json={"role": "staff"}, headers=admin(shared_server))
    staff = {"Authorization": f"Bearer {key.json()['staff_key']}"}
    assert (await http.get("/v1/webhooks", headers=staff)).status_code == 403
    assert (await http.get("/v1/webhooks")).status_code == 401
