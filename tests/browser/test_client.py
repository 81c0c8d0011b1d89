"""The browser client (/static/vqueue.js) in Chromium against a real server: its events, leave,
a refused token, and its pure helpers (backoff, seq freshness)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import DESK, LiveQueue, Problems

pytestmark = pytest.mark.browser

WATCH_AND_LEAVE = """async (slug) => {
  const vq = await import("/static/vqueue.js");
  const client = new vq.Client();
  const ticket = await client.join(slug, { name: "Script" });
  const events = [];
  const watch = client.watch(ticket.token);
  const value = (d) => d.state ?? d.position ?? d.status;
  for (const type of ["state", "position", "called", "status"]) {
    watch.on(type, (e) => events.push([type, value(e.detail)]));
  }
  const ended = new Promise((resolve) => watch.on("end", (e) => resolve(e.detail)));
  await new Promise((resolve) => watch.on("position", resolve));
  const sent = watch.leave();
  const end = await ended;
  const bad = client.watch("not-a-token");
  const errors = [];
  bad.on("error", (e) => errors.push(e.detail.code));
  const refused = await new Promise((resolve) => bad.on("end", (e) => resolve(e.detail)));
  return { events, sent, end, refused, errors, state: watch.state, seq: watch.seq };
}"""

HELPERS = """async () => {
  const vq = await import("/static/vqueue.js");
  const top = () => 0.999999;
  return {
    highest: [0, 1, 2, 3, 4, 5, 6, 10, 40].map((a) => vq.backoffDelay(a, {}, top)),
    lowest: vq.backoffDelay(5, {}, () => 0),
    custom: vq.backoffDelay(2, { baseMs: 100, capMs: 300 }, top),
    fresh: [
      vq.isFresh(5, 7, false),
      vq.isFresh(7, 7, false),
      vq.isFresh(8, 7, false),
      vq.isFresh(3, 7, true),
      vq.isFresh(undefined, 7, false),
      vq.isFresh(1, null, false),
    ],
    key: vq.newIdempotencyKey(),
  };
}"""


def test_watch_reports_state_position_and_leave(
    open_page: Callable[..., Page], live_queue: LiveQueue, problems: Problems
) -> None:
    page = open_page(DESK)
    page.goto(live_queue.url(f"/q/{live_queue.slug}"))
    result = page.evaluate(WATCH_AND_LEAVE, live_queue.slug)
    assert result["sent"] is True
    assert result["events"] == [
        ["state", "connecting"],
        ["state", "live"],
        ["position", 1],
        ["status", "left"],
        ["state", "ended"],
    ]
    assert result["end"] == {"reason": "finished", "status": "left"}
    assert result["state"] == "ended"
    assert isinstance(result["seq"], int)
    # A refused token is final: no reconnect loop.
    assert result["refused"] == {"reason": "unauthorized", "code": 1008}
    assert result["errors"] == ["unauthorized"]
    assert live_queue.api("GET", f"/v1/queues/{live_queue.slug}/tickets").json()["waiting"] == []
    problems.assert_none()


def test_backoff_is_full_jitter_under_a_doubling_cap_and_old_seqs_are_dropped(
    open_page: Callable[..., Page], live_queue: LiveQueue, problems: Problems
) -> None:
    page = open_page(DESK)
    page.goto(live_queue.url(f"/board/{live_queue.slug}"))
    result = page.evaluate(HELPERS)
    assert result["highest"] == [249, 499, 999, 1999, 3999, 7999, 9999, 9999, 9999]
    assert result["lowest"] == 0
    assert result["custom"] == 299
    assert result["fresh"] == [False, True, True, True, True, True]
    assert len(result["key"]) == 32
    problems.assert_none()
