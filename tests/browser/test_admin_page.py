"""The admin page, /admin, in headless Chromium against a real server: sign in with an admin
key (a staff key is told why not), create a queue and edit its settings, archive one with people
waiting (409 said plainly, then the forced archive), create a key (its secret shown once) and
revoke it, the last admin key refused plainly, today's plot; by keyboard where it matters. And a
webhook whose receiver fails: its delivery goes dead, the page shows it, a retry delivers it."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import DESK, SCREENSHOTS, LiveQueue, Problems
from tests.browser.contrast import low_contrast
from tests.conftest import ServerProcess

pytestmark = pytest.mark.browser

OpenPage = Callable[..., Page]
RETRIES = "0.2,0.2"  # two retries after the first attempt, quickly: then the delivery is dead


@pytest.fixture
def live_queue(start_server: Callable[..., ServerProcess], staff_key: str) -> LiveQueue:
    """The conftest's queue, on a server that may call a local receiver and retries fast."""
    server = start_server(VQ_WEBHOOK_ALLOW_PRIVATE="true", VQ_WEBHOOK_RETRY_S=RETRIES)
    queue = LiveQueue(server, staff_key, f"q-{secrets.token_hex(3)}", "City Library Help Desk")
    response = queue.api("PUT", f"/v1/queues/{queue.slug}", json={"name": queue.name})
    assert response.status_code == 201, response.text
    return queue


class Receiver(ThreadingHTTPServer):
    """A webhook receiver answering `status` to every POST, counting what it answered."""

    status = 500
    answered: list[int]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Hook(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(self.server.status)
        self.end_headers()
        self.server.answered.append(self.server.status)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), _Hook)
    server.answered = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def sign_in_admin(page: Page, q: LiveQueue, key: str) -> None:
    page.goto(q.url("/admin"))
    page.get_by_label("Admin key", exact=True).fill(key)
    page.get_by_label("Admin key", exact=True).press("Enter")


def test_admin_queues_keys_and_today(
    open_page: OpenPage, live_queue: LiveQueue, problems: Problems
) -> None:
    q = live_queue
    served = q.join("Ann")
    q.call("Desk 1")
    q.finish(served["ticket_id"])
    q.join("Bob")
    slug = f"lobby-{secrets.token_hex(2)}"
    staff = q.api("POST", "/v1/keys", json={"label": "Front", "role": "staff"}).json()
    # Expected refusals the page shows: the staff key's 403, the last admin key's 409, the
    # archive refused while people wait (409).
    problems.allow.append(lambda e: ("403" in e or "409" in e) and "/v1/keys" in e)
    problems.allow.append(lambda e: "409" in e and f"/v1/queues/{slug}" in e)
    page = open_page(DESK)

    sign_in_admin(page, q, staff["staff_key"])
    expect(page.get_by_role("alert")).to_contain_text("This is a staff key")
    sign_in_admin(page, q, q.key)
    expect(page.locator("#queues-body tr")).to_have_count(1)

    create_and_archive(page, q, slug)
    create_and_revoke_keys(page, q)
    today(page, q)

    assert low_contrast(page) == []
    page.get_by_role("button", name="Sign out").focus()  # the page's top, for the picture
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "admin.png", full_page=True, animations="disabled")

    # The archived queue's public pages say it plainly.
    page.goto(q.url(f"/q/{slug}"))
    expect(page.locator("#join-waiting")).to_have_text(
        "This line is no longer in use. Please ask the staff where to go."
    )
    expect(page.get_by_test_id("join")).to_be_disabled()
    page.goto(q.url(f"/board/{slug}"))
    expect(page.locator("#banner")).to_have_text("This line is no longer in use.")
    problems.assert_none()


def create_and_archive(page: Page, q: LiveQueue, slug: str) -> None:
    """Create a queue from the keyboard, edit it, archive it forced."""
    # Create a queue from the keyboard, then change a setting.
    page.get_by_label("Slug", exact=True).fill(slug)
    page.get_by_label("Name", exact=True).fill("Lobby")
    page.get_by_label("Name", exact=True).press("Enter")
    expect(page.locator(f'#queues-body tr[data-queue="{slug}"]')).to_contain_text("Lobby")
    page.get_by_role("button", name=f"Settings of {slug}").click()
    page.get_by_label("Most people waiting", exact=True).fill("25")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#flash")).to_contain_text(f"Settings of {slug} saved")
    summary = httpx.get(q.url(f"/v1/queues/{slug}"), timeout=10).json()
    assert (summary["name"], summary["max_waiting"]) == ("Lobby", 25)

    # Archive with someone waiting: refused plainly, then forced.
    assert httpx.post(q.url(f"/v1/queues/{slug}/tickets"), json={}, timeout=10).is_success
    page.reload()
    archive = page.get_by_test_id(f"archive-{slug}")
    archive.click()
    expect(archive).to_have_text("Confirm archive")
    archive.click()
    expect(page.locator("#queues-error")).to_contain_text("People are still waiting")
    expect(archive).to_have_text("Remove them and archive")
    archive.click()
    expect(page.locator("#flash")).to_contain_text("1 waiting ticket removed")
    expect(page.locator("#queues-body tr")).to_have_count(1)
    assert httpx.get(q.url(f"/v1/queues/{slug}"), timeout=10).json()["archived"] is True


def create_and_revoke_keys(page: Page, q: LiveQueue) -> None:
    """A key made, shown once, revoked by keyboard; the last admin key kept."""
    # A new key: its secret shown once, it works; revoked by keyboard (Enter twice), it does not.
    page.get_by_label("Label", exact=True).fill("Desk 3")
    page.get_by_label("Role", exact=True).select_option("staff")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("New key", exact=True)
    expect(secret).to_be_focused()
    new_key = secret.input_value()
    assert new_key.startswith("vqk_")
    assert httpx.get(q.url("/v1/queues"), headers=bearer(new_key), timeout=10).status_code == 200
    page.get_by_role("button", name="I have copied it").click()
    expect(secret).to_be_hidden()
    revoke = page.get_by_role("button", name="Revoke the key Desk 3")
    revoke.focus()
    page.keyboard.press("Enter")
    expect(revoke).to_have_text("Confirm revoke")
    page.keyboard.press("Enter")
    expect(page.locator("#flash")).to_contain_text("Key Desk 3 revoked")
    expect(page.locator("#keys-body")).not_to_contain_text("Desk 3")
    assert httpx.get(q.url("/v1/queues"), headers=bearer(new_key), timeout=10).status_code == 401

    # The venue's only admin key cannot be revoked: the page says so.
    own = page.locator("#keys-body tr", has_text="(this key)").get_by_role("button")
    own.click()
    own.click()
    expect(page.locator("#keys-error")).to_contain_text("last admin key")


def today(page: Page, q: LiveQueue) -> None:
    """Today's statistics of the first queue, with the plot."""
    # Today's statistics of the first queue, with the plot.
    page.get_by_label("Queue", exact=True).select_option(q.slug)
    figures = page.locator("#stats-figures")
    expect(figures.locator("div", has_text="Served").locator("dd")).to_have_text("1")
    plot = page.get_by_role("img", name=f"Today in {q.slug}: waiting and served per hour")
    expect(plot.locator("rect.served")).to_have_count(2)  # one bar and the legend's swatch
    expect(plot.locator("polyline.waiting")).to_have_count(1)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_admin_sees_a_dead_letter_and_retries_it(
    open_page: OpenPage, live_queue: LiveQueue, problems: Problems, receiver: Receiver
) -> None:
    q = live_queue
    page = open_page(DESK)
    sign_in_admin(page, q, q.key)
    page.get_by_label("URL", exact=True).fill(receiver.url)
    page.get_by_role("button", name="Add webhook").click()
    secret = page.get_by_label("Signing secret", exact=True)
    expect(secret).to_be_focused()
    assert secret.input_value().startswith("whsec_")
    row = page.locator("#webhooks-body tr", has_text=receiver.url)
    expect(row).to_have_count(1)
    hook_id = row.get_attribute("data-webhook")

    q.join("Cy")  # ticket.joined: refused by the receiver three times, then dead
    dead_url = f"/v1/webhooks/{hook_id}/deliveries?status=dead"
    deadline = time.monotonic() + 30
    while not q.api("GET", dead_url).json()["deliveries"]:
        assert time.monotonic() < deadline, "the delivery never went dead"
        time.sleep(0.1)
    page.get_by_role("button", name=f"Dead deliveries of {receiver.url}").click()
    dead = page.locator("#dead-body tr")
    expect(dead).to_have_count(1)
    expect(dead).to_contain_text("ticket.joined")
    expect(dead.locator("td").nth(2)).to_have_text("3")  # the first attempt and two retries
    assert receiver.answered == [500, 500, 500]

    receiver.status = 200
    dead.get_by_role("button").click()
    expect(page.locator("#flash")).to_contain_text("being tried again")
    expect(page.get_by_text("No dead deliveries.")).to_be_visible()
    while receiver.answered[-1] != 200:
        assert time.monotonic() < deadline, "the retry was never delivered"
        time.sleep(0.1)
    assert low_contrast(page) == []
    problems.assert_none()
