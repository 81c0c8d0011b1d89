"""The customer page's "Notify me" in Chromium: ticking it asks for notification permission,
subscribes with the deployment's VAPID key and gives the subscription to the server as the
ticket's contact; the service worker shows a push as a notification and opens the ticket's page
when it is tapped (issue 11, must-show 2).

Chromium's own push service is out of reach here, so an init script replaces
`PushManager.prototype.subscribe` with one that answers a subscription of the test push service
(tests/pushservice.py), whose keys the test holds; pushes reach the worker through the DevTools
protocol (`ServiceWorker.deliverPushMessage`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import PHONE, LiveQueue, Problems, screenshot
from tests.browser.contrast import low_contrast
from tests.conftest import ServerProcess
from tests.pushservice import PushService, running

pytestmark = pytest.mark.browser

# Stands in for the browser's push service: subscribe() answers the subscription the test made
# (window.__testSubscription) and remembers the applicationServerKey it was given.
FAKE_PUSH = """
(() => {
  if (!("PushManager" in globalThis)) return;
  let current = null;
  const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
  PushManager.prototype.subscribe = async function (options) {
    if (Notification.permission !== "granted") throw new DOMException("denied", "NotAllowedError");
    const json = globalThis.__testSubscription;
    const key = new Uint8Array(options.applicationServerKey);
    globalThis.__testServerKey = b64(key);
    current = {
      endpoint: json.endpoint,
      options: { userVisibleOnly: options.userVisibleOnly, applicationServerKey: key.buffer },
      toJSON: () => json,
      unsubscribe: async () => {
        current = null;
        globalThis.__testUnsubscribed = true;
        return true;
      },
    };
    return current;
  };
  PushManager.prototype.getSubscription = async function () { return current; };
})();
"""


@pytest.fixture
def push_service() -> Iterator[PushService]:
    yield from running()


@pytest.fixture
def live_queue(
    start_server: Callable[..., ServerProcess],
    staff_key: str,
    push_service: PushService,
    tmp_path: Path,
) -> LiveQueue:
    """The conftest's queue, on a node that trusts the push service's certificate and may
    reach its loopback address (tests only)."""
    server = start_server(
        SSL_CERT_FILE=str(push_service.write_ca(tmp_path / "push-ca.pem")),
        VQ_WEBHOOK_ALLOW_PRIVATE="true",
    )
    queue = LiveQueue(server, staff_key, f"q-{secrets.token_hex(3)}", "Town Hall Permits")
    response = queue.api("PUT", f"/v1/queues/{queue.slug}", json={"name": queue.name})
    assert response.status_code == 201, response.text
    return queue


def contact_row(queue: LiveQueue, number: int) -> dict[str, Any] | None:
    """The ticket's contact as PostgreSQL keeps it (the API has no route that reads it)."""
    import asyncpg

    dsn = queue.server.env["DATABASE_URL"]

    async def read() -> dict[str, Any] | None:
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow(
                "SELECT email, push FROM ticket_contacts WHERE queue = $1 AND number = $2",
                queue.slug,
                number,
            )
        finally:
            await conn.close()
        if row is None:
            return None
        push = row["push"]
        return {"email": row["email"], "push": json.loads(push) if push else None}

    return asyncio.run(read())


def wait_until(check: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def push_registration_id(context: BrowserContext, page: Page, scope: str) -> str:
    """The id DevTools knows the page's service worker registration by."""
    cdp = context.new_cdp_session(page)
    found: dict[str, str] = {}

    def seen(event: dict[str, Any]) -> None:
        for registration in event["registrations"]:
            if registration["scopeURL"] == scope and not registration.get("isDeleted"):
                found["id"] = registration["registrationId"]

    cdp.on("ServiceWorker.workerRegistrationUpdated", seen)
    cdp.send("ServiceWorker.enable")
    assert wait_until(lambda: "id" in found), "no service worker registration for /q/"
    return found["id"]


NOTIFICATIONS = """async () => {
  const registration = await navigator.serviceWorker.getRegistration("/q/");
  const shown = await registration.getNotifications();
  return shown.map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data }));
}"""


def test_notify_me_subscribes_and_the_worker_shows_pushes(
    open_page: Callable[..., Page],
    live_queue: LiveQueue,
    push_service: PushService,
    problems: Problems,
) -> None:
    q = live_queue
    q.join("Ahead")
    page = open_page(PHONE, permissions=["notifications"], has_touch=True, is_mobile=True)
    context = page.context
    context.add_init_script(FAKE_PUSH)
    subscription = push_service.subscribe("phone")
    context.add_init_script(f"globalThis.__testSubscription = {json.dumps(subscription)};")
    page.goto(q.url(f"/q/{q.slug}"))
    page.get_by_test_id("join").click()
    expect(page.get_by_test_id("position")).to_have_text("2")
    number = int(page.locator("#number").inner_text())

    # Tick: permission (granted), the worker, subscribe with the deployment's key, PUT contact.
    box = page.get_by_label("Notify me on this device")
    expect(box).to_be_visible()
    box.check()
    expect(page.get_by_test_id("notify-status")).to_have_text("Done: this device will be notified.")
    key = httpx.get(q.url("/v1/push/key"), timeout=10).json()["public_key"]
    assert page.evaluate("globalThis.__testServerKey") == key
    push_service.server_key = key
    row = wait_until(lambda: contact_row(q, number))
    assert row is not None and row["push"]["endpoint"] == subscription["endpoint"]
    assert row["push"]["keys"] == subscription["keys"]

    # An email beside it (the same route): both are kept.
    page.get_by_label("Or email me (optional)").fill("ada@example.org")
    page.get_by_test_id("notify-email-save").click()
    expect(page.get_by_test_id("notify-status")).to_have_text("Done: we'll email ada@example.org.")
    assert contact_row(q, number) == {"email": "ada@example.org", "push": row["push"]}
    screenshot(page, "customer-notify.png")
    assert low_contrast(page) == []

    # The worker shows a push even with no page of ours open, once per delivery id.
    registration = push_registration_id(context, page, q.url("/q/"))
    message = {
        "id": "d-almost-1",
        "type": "almost",
        "ticket_id": f"{q.slug}.{number}",
        "title": "Almost your turn",
        "body": "1 person ahead of you at Town Hall Permits.",
        "url": f"/q/{q.slug}",
    }
    cdp = context.new_cdp_session(page)
    origin = q.url("")
    for _ in range(2):  # a push service may deliver twice
        cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": origin, "registrationId": registration, "data": json.dumps(message)},
        )
    shown = wait_until(lambda: page.evaluate(NOTIFICATIONS))
    assert shown == [
        {
            "title": "Almost your turn",
            "body": "1 person ahead of you at Town Hall Permits.",
            "tag": f"vqueue:{q.slug}.{number}",
            "data": {"id": "d-almost-1", "url": q.url(f"/q/{q.slug}")},
        }
    ]

    # Untick: the browser unsubscribes and the server keeps only the email.
    box.uncheck()
    expect(page.get_by_test_id("notify-status")).to_have_text("This device won't be notified.")
    assert page.evaluate("globalThis.__testUnsubscribed") is True
    assert contact_row(q, number) == {"email": "ada@example.org", "push": None}
    problems.assert_none()
