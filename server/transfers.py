"""Moving a ticket to another queue of the same venue: two scripts, one transfer id.

The two queues may live in different hash slots (a Redis Cluster), so no single script can touch
both. A transfer is therefore: write the intent (`Store.save_transfer`), run `transfer_in` on
the target (the ticket arrives there with a new number and nonce), run `transfer_out` on the
source (the old ticket becomes `transferred`, pointing at the new one), drop the intent. Both
scripts are idempotent on the transfer id, so `complete` can run again from any point: the
recovery check calls it for intents left behind by a crash. If the old ticket finished in
between (the customer left), the new ticket is taken back out of the target queue.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from server.errors import ApiError
from server.store import Store

log = logging.getLogger(__name__)

STALE_INTENT_MS = 5_000  # an intent this old belongs to a transfer that will not finish alone


@dataclass(frozen=True, slots=True)
class Transferred:
    number: int  # the new ticket's number in the target queue
    nonce: str
    position: int


def new_intent(
    venue: str,
    from_queue: str,
    from_number: int,
    to_queue: str,
    ticket: dict[str, Any],
    position: int | None,
) -> dict[str, Any]:
    return {
        "id": secrets.token_hex(8),
        "venue": venue,
        "from_queue": from_queue,
        "from_number": from_number,
        "to_queue": to_queue,
        "name": ticket.get("name"),
        "priority": int(ticket.get("priority", 0)),
        "position": position,
        "nonce": secrets.token_urlsafe(12),
        "at_ms": int(time.time() * 1000),
    }


async def complete(store: Store, intent: dict[str, Any]) -> Transferred:
    """Run (or finish) the transfer; ApiError when it cannot be done, with nothing left over."""
    try:
        arrived = await store.transfer_in(intent)
    except ApiError:
        await store.drop_transfer(intent["id"])
        raise
    number = int(arrived["number"])
    try:
        await store.transfer_out(intent, number)
    except ApiError as exc:
        if exc.code not in ("ticket_finished", "ticket_not_found", "queue_not_found"):
            raise
        # The customer left (or was called and served) meanwhile: undo the arrival, unless
        # the new ticket has finished too (then there is nothing left to undo).
        with contextlib.suppress(ApiError):
            await store.remove(intent["to_queue"], number, "transfer_undone")
        await store.drop_transfer(intent["id"])
        raise
    await store.drop_transfer(intent["id"])
    return Transferred(number, intent["nonce"], int(arrived["position"]))


async def transfer(store: Store, intent: dict[str, Any]) -> Transferred:
    await store.save_transfer(intent)
    return await complete(store, intent)


async def complete_pending(store: Store, older_than_ms: int = STALE_INTENT_MS) -> int:
    """Finish every transfer a crash left half-done; the number finished or undone."""
    now_ms = int(time.time() * 1000)
    done = 0
    pending = sorted(await store.pending_transfers(), key=lambda i: (i.get("at_ms", 0), i["id"]))
    for intent in pending:
        if now_ms - int(intent.get("at_ms", 0)) < older_than_ms:
            continue  # probably still running on the node that began it
        try:
            await complete(store, intent)
            log.warning("completed the half-done transfer %s", intent["id"])
        except ApiError as exc:
            log.warning("half-done transfer %s undone: %s", intent["id"], exc.code)
        done += 1
    return done
