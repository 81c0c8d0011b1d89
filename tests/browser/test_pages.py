"""End to end in headless Chromium: a customer joins from a phone, staff call from the console
in another browser, the board shows the call, and nothing in any page fails (issue 3)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    DESK,
    PHONE,
    TV,
    LiveQueue,
    Problems,
    screenshot,
    sign_in,
)
from tests.browser.contrast import low_contrast
from tests.conftest import ServerProcess

pytestmark = pytest.mark.browser

OpenPage = Callable[..., Page]


def customer_page(open_page: OpenPage, queue: LiveQueue) -> Page:
    page = open_page(PHONE, permissions=["notifications"], has_touch=True, is_mobile=True)
    page.goto(queue.url(f"/q/{queue.slug}"))
    return page


def join(page: Page, name: str | None = None) -> None:
    if name:
        page.get_by_label("Your name (optional)").fill(name)
    page.get_by_test_id("join").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live")


def test_customer_is_called_live_from_the_console(
    open_page: OpenPage, live_queue: LiveQueue, problems: Problems
) -> None:
    q = live_queue
    q.join("Zoe")
    q.finish(q.call("Desk 3")["ticket_id"])  # served earlier today
    q.join("Yusuf")
    q.call("Desk 2")  # still at desk 2
    q.join("Alan")
    q.join("Barbara")

    customer = customer_page(open_page, q)
    expect(customer.get_by_role("heading", name=q.name)).to_be_visible()
    join(customer, "Ada")
    expect(customer.get_by_test_id("position")).to_have_text("3")
    expect(customer.get_by_text("2 people ahead of you")).to_be_visible()
    expect(customer.get_by_test_id("eta")).not_to_be_empty()
    for name in ("Grace", "Linus", "Margaret"):
        q.join(name)
    screenshot(customer, "customer.png")
    assert low_contrast(customer) == []

    staff = open_page(DESK)
    sign_in(staff, q, counter="Desk 1")
    call_the_two_ahead(staff, customer)
    board = open_page(TV)
    board.goto(q.url(f"/board/{q.slug}"))
    serving = board.get_by_test_id("now-serving")
    # Numbers and counters, latest call first; the public board shows numbers only by default.
    expect(serving.locator(".tile .number")).to_have_text(["4", "3", "2"])
    expect(serving.locator(".tile").first).to_contain_text("Desk 1")
    expect(serving.locator(".tile").last).to_contain_text("Desk 2")
    expect(serving).not_to_contain_text("Barbara")
    expect(serving).not_to_contain_text("Yusuf")
    expect(board.get_by_test_id("waiting-count")).to_have_text("4")

    finish_desk_and_call(staff)
    turn = customer.get_by_test_id("your-turn")
    expect(turn).to_be_visible()
    expect(turn).to_contain_text("It's your turn!")
    expect(turn).to_contain_text("Desk 1")
    expect(turn).to_have_attribute("role", "alert")
    expect(serving.locator(".tile.latest .number")).to_have_text("5")
    expect(serving.locator(".tile.latest")).not_to_contain_text("Ada")
    expect(serving.locator(".tile.latest")).to_contain_text("Desk 1")
    expect(board.get_by_test_id("waiting-count")).to_have_text("3")
    screenshot(customer, "customer-turn.png")
    screenshot(staff, "staff.png")
    screenshot(board, "board.png")
    for page in (customer, staff, board):
        assert low_contrast(page) == [], page.url

    staff.get_by_test_id("served").click()
    expect(customer.get_by_role("heading", name="You've been served")).to_be_visible()
    expect(customer.get_by_test_id("join-again")).to_be_visible()
    problems.assert_none()


def call_the_two_ahead(staff: Page, customer: Page) -> None:
    """Alan and Barbara are called from the console: by button, then by keyboard shortcut."""
    waiting = staff.get_by_test_id("waiting-list").locator("li")
    expect(waiting).to_have_count(6)
    expect(waiting.first).to_contain_text("Alan")
    staff.get_by_test_id("call-next").click()
    expect(customer.get_by_test_id("position")).to_have_text("2")
    expect(staff.locator("#current-name")).to_have_text("Alan")
    staff.locator("body").press("n")
    expect(customer.get_by_test_id("position")).to_have_text("1")
    expect(customer.get_by_text("You're next!")).to_be_visible()
    expect(staff.locator("#current-name")).to_have_text("Barbara")
    expect(waiting).to_have_count(4)


def finish_desk_and_call(staff: Page) -> None:
    """Barbara, then Alan (still open at this desk) are served; then the next one is called."""
    staff.get_by_test_id("served").click()
    expect(staff.locator("#current-name")).to_have_text("Alan")
    staff.get_by_test_id("served").click()
    expect(staff.get_by_test_id("served")).to_be_disabled()
    staff.get_by_test_id("call-next").click()
    expect(staff.locator("#current-name")).to_have_text("Ada")


def test_reload_keeps_the_ticket_and_leave_offers_a_new_one(
    open_page: OpenPage, live_queue: LiveQueue, problems: Problems
) -> None:
    q = live_queue
    q.join("Someone")
    customer = customer_page(open_page, q)
    expect(customer.get_by_text("1 person is waiting.")).to_be_visible()
    assert low_contrast(customer) == []
    join(customer)
    expect(customer.get_by_test_id("position")).to_have_text("2")
    expect(customer.locator("#number")).to_have_text("2")

    problems.reload(customer)
    expect(customer.get_by_test_id("status")).to_have_attribute("data-state", "live")
    expect(customer.get_by_test_id("position")).to_have_text("2")
    expect(customer.locator("#number")).to_have_text("2")
    q.call()
    expect(customer.get_by_test_id("position")).to_have_text("1")

    customer.get_by_test_id("leave").click()
    customer.get_by_test_id("leave-confirm").click()
    expect(customer.get_by_role("heading", name="You left the line")).to_be_visible()
    waiting = q.api("GET", f"/v1/queues/{q.slug}/tickets").json()["waiting"]
    assert waiting == []

    problems.reload(customer)
    expect(customer.get_by_role("heading", name="You left the line")).to_be_visible()
    assert low_contrast(customer) == []
    customer.get_by_test_id("join-again").click()
    join(customer)
    expect(customer.get_by_test_id("position")).to_have_text("1")
    expect(customer.locator("#number")).to_have_text("3")
    problems.assert_none()


def test_server_restart_mid_wait_ends_live_with_the_right_position(
    open_page: OpenPage,
    live_queue: LiveQueue,
    problems: Problems,
    start_server: Callable[..., ServerProcess],
) -> None:
    q = live_queue
    q.join("Alan")
    q.join("Barbara")
    customer = customer_page(open_page, q)
    join(customer, "Ada")
    expect(customer.get_by_test_id("position")).to_have_text("3")
    status = customer.get_by_test_id("status")

    # While this node is down the page's reconnect attempts fail by design; those, and only
    # those, are expected until the page is live again.
    window = [True]
    problems.allow.append(lambda entry: window[0] and _reconnect_failure(entry))
    q.server.stop()
    expect(status).to_have_attribute("data-state", "reconnecting")
    expect(status).to_have_text("Reconnecting…")
    q.call(via=start_server())  # another node on the same Redis: the line moves meanwhile
    q.server.start()
    expect(status).to_have_attribute("data-state", "live", timeout=20_000)
    window[0] = False
    expect(customer.get_by_test_id("position")).to_have_text("2")
    q.call()
    expect(customer.get_by_test_id("position")).to_have_text("1")
    problems.assert_none()


def _reconnect_failure(entry: str) -> bool:
    """A WebSocket connection refused (the node is down), seen as a console line or an event."""
    refused = "ERR_CONNECTION_REFUSED" in entry
    return refused and (entry.startswith(("ws: ", "console: WebSocket connection to")))


def test_console_pause_close_and_no_show(
    open_page: OpenPage, live_queue: LiveQueue, problems: Problems
) -> None:
    q = live_queue
    customer = customer_page(open_page, q)
    join(customer, "Ada")
    staff = open_page(DESK)
    sign_in(staff, q, counter="Window 2")
    badge = staff.locator("#state-badge")
    expect(badge).to_have_text("Open")
    expect(staff.get_by_test_id("stat-waiting")).to_have_text("1")

    staff.locator("body").press("p")
    expect(badge).to_have_text("Paused")
    expect(staff.get_by_test_id("call-next")).to_be_disabled()
    staff.get_by_test_id("pause").click()
    expect(badge).to_have_text("Open")

    close = staff.get_by_test_id("close")
    close.click()
    expect(close).to_have_text("Click again to close")
    close.click()
    expect(badge).to_have_text("Closed")
    other = customer_page(open_page, q)
    expect(other.get_by_text("This line is closed right now.")).to_be_visible()
    expect(other.get_by_test_id("join")).to_be_disabled()
    assert low_contrast(other) == []
    assert low_contrast(staff) == []
    close.click()
    expect(badge).to_have_text("Open")

    staff.get_by_test_id("call-next").click()
    expect(customer.get_by_test_id("your-turn")).to_contain_text("Window 2")
    staff.get_by_test_id("no-show").click()
    expect(customer.get_by_role("heading", name="You missed your turn")).to_be_visible()
    expect(staff.get_by_test_id("waiting-list").locator("li")).to_have_count(0)

    # The key stays for this browser session: a reload goes straight back to the console.
    problems.reload(staff)
    expect(staff.get_by_test_id("call-next")).to_be_visible()
    expect(staff.get_by_label("Counter name")).to_have_value("Window 2")
    problems.assert_none()
