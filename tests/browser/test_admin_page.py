"""The admin page, /admin, in headless Chromium against a real server: sign in with an admin
key (a staff key is told why not), create a queue and edit its settings, archive one with people
waiting (409 said plainly, then the forced archive), create a key (its secret shown once) and
revoke it, the last admin key refused plainly, today's plot; by keyboard where it matters."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import DESK, SCREENSHOTS, LiveQueue, Problems
from tests.browser.contrast import low_contrast

pytestmark = pytest.mark.browser

OpenPage = Callable[..., Page]


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
    if webhooks_missing(q):
        problems.allow.append(lambda e: "404" in e and e.endswith("/v1/webhooks"))
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


def webhooks_missing(q: LiveQueue) -> bool:
    """True while the webhook routes are not on this branch (the page then hides its section)."""
    response = q.api("GET", "/v1/webhooks")
    return response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
