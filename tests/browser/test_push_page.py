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
import concurrent.futures
import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
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

    # Playwright's sync API holds this thread's event loop: read from another thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, read()).result()


def wait_until(page: Page, check: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    """Poll `check` while Playwright keeps handling the browser's events (a plain sleep would
    hold them back)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        page.wait_for_timeout(100)


def push_registration_id(context: BrowserContext, page: Page, scope: str) -> tuple[Any, str]:
    """A DevTools session with the ServiceWorker domain on, and the id it knows the page's
    service worker registration by."""
    cdp = context.new_cdp_session(page)
    found: dict[str, str] = {}

    def seen(event: dict[str, Any]) -> None:
        for registration in event["registrations"]:
            if registration["scopeURL"] == scope and not registration.get("isDeleted"):
                found["id"] = registration["registrationId"]

    cdp.on("ServiceWorker.workerRegistrationUpdated", seen)
    cdp.send("ServiceWorker.enable")
    assert wait_until(page, lambda: "id" in found), "no service worker registration for /q/"
    return cdp, found["id"]


NOTIFICATIONS = """async () => {
  const registration = await navigator.serviceWorker.getRegistration("/q/");
  const shown = await registration.getNotifications();
  return shown.map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data }));
}"""
WORKER_NOTIFICATIONS = """async () => {
  const shown = await self.registration.getNotifications();
  return shown.map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data }));
}"""


# A tap on the notification. DevTools cannot click a system notification, so the worker gets a
# notificationclick event made in it; Chromium lets only a real tap open or focus a window, so
# the test records what the worker asks for (and then opens that URL itself).
TAP = """async () => {
  const asked = [];
  self.clients.openWindow = async (url) => { asked.push(["open", url]); return null; };
  WindowClient.prototype.focus = async function () {
    asked.push(["focus", this.url]);
    return this;
  };
  const [shown] = await self.registration.getNotifications();
  self.dispatchEvent(new NotificationEvent("notificationclick", { notification: shown }));
  for (let i = 0; i < 50 && asked.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
  return { asked, left: (await self.registration.getNotifications()).length };
}"""


def deliver(cdp: Any, queue: LiveQueue, registration: str, message: dict[str, Any]) -> None:
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": queue.url(""), "registrationId": registration, "data": json.dumps(message)},
    )


def push_message(queue: LiveQueue, number: int, kind: str, title: str) -> dict[str, Any]:
    """What the notifier sends (server/notify/plan.py, push_payload)."""
    return {
        "id": f"d-{kind}-{number}",
        "kind": kind,
        "ticket_id": f"{queue.slug}.{number}",
        "title": title,
        "body": f"Ticket {number} at {queue.name}.",
        "url": f"/q/{queue.slug}",
    }


def test_notify_me_subscribes_and_the_worker_shows_pushes(
    open_page: Callable[..., Page],
    live_queue: LiveQueue,
    push_service: PushService,
    problems: Problems,
) -> None:
    q = live_queue
    q.join("Ahead")
    page = open_page(PHONE, permissions=["notifications"], has_touch=True, is_mobile=True)
    page.context.add_init_script(FAKE_PUSH)
    subscription = push_service.subscribe("phone")
    page.context.add_init_script(f"globalThis.__testSubscription = {json.dumps(subscription)};")
    page.goto(q.url(f"/q/{q.slug}"))
    page.get_by_test_id("join").click()
    expect(page.get_by_test_id("position")).to_have_text("2")
    number = int(page.locator("#number").inner_text())

    tick_then_add_an_email(page, q, number, subscription)
    a_push_is_shown_and_a_tap_focuses_the_page(page, q, number)
    # Untick: the browser unsubscribes and the server keeps only the email.
    page.get_by_label("Notify me on this device").uncheck()
    expect(page.get_by_test_id("notify-status")).to_have_text("This device won't be notified.")
    assert page.evaluate("globalThis.__testUnsubscribed") is True
    assert contact_row(q, number) == {"email": "ada@example.org", "push": None}
    problems.assert_none()
    called_with_the_page_closed_a_tap_opens_it(page, q, number, problems)
    problems.assert_none()


def tick_then_add_an_email(
    page: Page, q: LiveQueue, number: int, subscription: dict[str, Any]
) -> None:
    """Tick: permission (granted), the worker, a subscription made with the deployment's key,
    sent as the contact; then an email beside it (the same route): both are kept."""
    box = page.get_by_label("Notify me on this device")
    expect(box).to_be_visible()
    box.check()
    expect(page.get_by_test_id("notify-status")).to_have_text("Done: this device will be notified.")
    key = httpx.get(q.url("/v1/push/key"), timeout=10).json()["public_key"]
    assert page.evaluate("globalThis.__testServerKey") == key
    row = wait_until(page, lambda: contact_row(q, number))
    assert row is not None and row["push"]["endpoint"] == subscription["endpoint"]
    assert row["push"]["keys"] == subscription["keys"]

    page.get_by_label("Or email me (optional)").fill("ada@example.org")
    page.get_by_test_id("notify-email-save").click()
    expect(page.get_by_test_id("notify-status")).to_have_text("Done: we'll email ada@example.org.")
    assert contact_row(q, number) == {"email": "ada@example.org", "push": row["push"]}
    screenshot(page, "customer-notify.png")
    assert low_contrast(page) == []


def a_push_is_shown_and_a_tap_focuses_the_page(page: Page, q: LiveQueue, number: int) -> None:
    """The worker shows a push (a repeat of the same delivery replaces it, not adds to it);
    tapped while the ticket's page is open, it brings that page forward."""
    cdp, registration = push_registration_id(page.context, page, q.url("/q/"))
    almost = push_message(q, number, "almost", "Almost your turn")
    for _ in range(2):
        deliver(cdp, q, registration, almost)
    shown = wait_until(page, lambda: page.evaluate(NOTIFICATIONS))
    assert shown == [
        {
            "title": "Almost your turn",
            "body": f"Ticket {number} at {q.name}.",
            "tag": f"{q.slug}.{number}",
            "data": {"id": almost["id"], "url": q.url(f"/q/{q.slug}")},
        }
    ]
    tapped = page.context.service_workers[0].evaluate(TAP)
    assert tapped == {"asked": [["focus", q.url(f"/q/{q.slug}")]], "left": 0}


def called_with_the_page_closed_a_tap_opens_it(
    page: Page, q: LiveQueue, number: int, problems: Problems
) -> None:
    """Called while no page of ours is open: the worker still shows the push, and a tap opens
    the ticket's page, which shows the turn."""
    q.call("Window 1")  # the one ahead
    assert q.call("Window 4")["number"] == number
    context = page.context
    lobby = context.new_page()
    lobby.goto(q.url("/healthz"))
    page.close()
    cdp, registration = push_registration_id(context, lobby, q.url("/q/"))
    deliver(cdp, q, registration, push_message(q, number, "turn", "It's your turn!"))
    worker = context.service_workers[0]
    shown = wait_until(lobby, lambda: worker.evaluate(WORKER_NOTIFICATIONS))
    assert [n["title"] for n in shown] == ["It's your turn!"], shown
    tapped = worker.evaluate(TAP)
    assert tapped == {"asked": [["open", q.url(f"/q/{q.slug}")]], "left": 0}
    reopened = problems.watch(context.new_page())
    reopened.goto(tapped["asked"][0][1])
    expect(reopened.get_by_test_id("your-turn")).to_contain_text("Window 4")
