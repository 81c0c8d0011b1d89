"""`/docs` in Chromium: Swagger UI renders the server's OpenAPI document from files the server
ships itself (no request leaves the server's origin), with no console error."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser.conftest import DESK, LiveQueue, Problems, screenshot


def test_docs_page_renders_the_document_from_local_assets(
    open_page: Callable[..., Page], live_queue: LiveQueue, problems: Problems
) -> None:
    page = open_page(DESK)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(live_queue.url("/docs"))
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("vqueue")
    join = page.locator(".opblock-summary-path", has_text="/v1/queues/{queue}/tickets").first
    expect(join).to_be_visible()
    expect(page.locator(".opblock-tag-section")).to_have_count(
        7
    )  # customers, staff, keys, webhooks...
    page.get_by_text("Join a queue").first.click()
    expect(page.get_by_text("queue_closed").first).to_be_visible()  # error codes are listed
    screenshot(page, "docs.png")
    origin = live_queue.url("")
    assert requested and all(url.startswith((origin, "data:")) for url in requested), requested
    problems.assert_none()
