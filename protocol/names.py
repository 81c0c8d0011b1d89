"""Identifiers on the wire: queue slugs and ticket ids.

A ticket id is `<queue slug>.<ticket number>`: the number is the queue's join counter, what a
display board shows, and the id alone tells a node which queue (and Redis hash slot) it is in.
"""

from __future__ import annotations

import re

SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
TICKET_ID_RE = re.compile(r"([a-z0-9][a-z0-9-]{0,63})\.([1-9][0-9]{0,17})")


def is_slug(text: str) -> bool:
    return SLUG_RE.fullmatch(text) is not None


def ticket_id(queue: str, number: int) -> str:
    return f"{queue}.{number}"


def parse_ticket_id(text: str) -> tuple[str, int] | None:
    """Split a ticket id into (queue, number), or None if it is not one."""
    match = TICKET_ID_RE.fullmatch(text)
    if match is None:
        return None
    return match.group(1), int(match.group(2))
