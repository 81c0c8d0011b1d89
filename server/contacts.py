"""How a customer asks to be reached when their page sleeps: the join's `contact` and the
contact routes (`PUT` / `DELETE /v1/tickets/{ticket_id}/contact`, with the ticket token).

A contact is `{"email"?, "phone"?, "push"?}`: an address, an E.164 phone number, a browser
PushSubscription whose endpoint is https and resolves to a public address. They are kept in
PostgreSQL only (`server.db.contacts`), never in the Redis stream or the event log; the
notifier (`server.notify`) uses those of the channels the queue enables.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from protocol.ticket import TicketView
from protocol.webpush import SubscriptionError, parse_subscription
from server.access import live_ticket_claim
from server.db.contacts import Contact, ContactTable
from server.errors import ApiError
from server.httpio import JSONResponse, read_object
from server.netcheck import url_problem
from server.services import Services, services

EMAIL_RE = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,10}[A-Za-z]{2,63}"
)
MAX_EMAIL_CHARS = 254
PHONE_RE = re.compile(r"\+[1-9][0-9]{6,14}")  # E.164
CONTACT_FIELDS = ("email", "phone", "push")


def _bad(message: str) -> ApiError:
    return ApiError(400, "invalid_body", message)


def _email(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_EMAIL_CHARS or not EMAIL_RE.fullmatch(value):
        raise _bad("'contact.email' must be an email address")
    return value


def _phone(value: Any) -> str:
    if not isinstance(value, str) or not PHONE_RE.fullmatch(value):
        raise _bad("'contact.phone' must be an E.164 number like +33612345678")
    return value


async def _push(value: Any, allow_private: bool) -> dict[str, Any]:
    # The same check the sender makes (protocol/webpush.py): a key it could not encrypt to is
    # refused here, at the join, not found out at the customer's turn.
    try:
        parsed = parse_subscription(value)
    except SubscriptionError as exc:
        raise _bad(f"'contact.push' is not a usable PushSubscription: {exc}") from None
    expiration = value.get("expirationTime")
    if expiration is not None and (
        isinstance(expiration, bool) or not isinstance(expiration, int | float)
    ):
        raise _bad("'contact.push.expirationTime' must be a number or null")
    problem = await url_problem(value.get("endpoint"), https_only=True, allow_private=allow_private)
    if problem is not None:
        raise _bad(f"'contact.push.endpoint' {problem}")
    subscription: dict[str, Any] = parsed.to_json()
    if expiration is not None:
        subscription["expirationTime"] = expiration
    return subscription


async def parse_contact(value: Any, *, allow_private: bool) -> Contact:
    """A validated contact from a join's `contact` or a contact route's body; 400 otherwise."""
    if not isinstance(value, dict) or not set(value) <= set(CONTACT_FIELDS):
        raise _bad("'contact' must be an object with 'email', 'phone' and/or 'push'")
    email, phone, push = (value.get(name) for name in CONTACT_FIELDS)
    return Contact(
        email=None if email is None else _email(email),
        phone=None if phone is None else _phone(phone),
        push=None if push is None else await _push(push, allow_private),
    )


async def join_contact(svc: Services, data: dict[str, Any]) -> Contact | None:
    """The join body's validated `contact`, or None when it has none."""
    value = data.get("contact")
    if value is None:
        return None
    contact = await parse_contact(value, allow_private=svc.settings.webhook_allow_private)
    return None if contact.empty else contact


async def _owned_live_ticket(request: Request) -> tuple[Services, str, TicketView]:
    """(services, queue, ticket) of the path's ticket: the token's, not finished."""
    svc = services(request)
    claim = await live_ticket_claim(request, svc, request.path_params["ticket_id"])
    view = await svc.store.ticket(claim.queue, claim.number)
    if view is None or view.nonce != claim.nonce:
        raise ApiError.from_code("unauthorized", "this token's ticket no longer exists")
    if view.status not in ("waiting", "called"):
        raise ApiError.from_code("ticket_finished")
    return svc, claim.queue, view


async def put_contact(request: Request) -> Response:
    svc, queue, view = await _owned_live_ticket(request)
    data = await read_object(request)
    contact = await parse_contact(data, allow_private=svc.settings.webhook_allow_private)
    await ContactTable(svc.db).put(queue, view.number, contact)
    if svc.notifier is not None and not contact.empty:
        await svc.notifier.contact_given(queue, view.number, view.position, view.seq)
    return JSONResponse(
        {"ticket_id": request.path_params["ticket_id"], "channels": contact.channels()}
    )


async def delete_contact(request: Request) -> Response:
    svc, queue, view = await _owned_live_ticket(request)
    await ContactTable(svc.db).delete(queue, view.number)
    return JSONResponse({"ticket_id": request.path_params["ticket_id"], "channels": []})


ROUTES = [
    Route("/v1/tickets/{ticket_id}/contact", put_contact, methods=["PUT"]),
    Route("/v1/tickets/{ticket_id}/contact", delete_contact, methods=["DELETE"]),
]
