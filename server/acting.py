"""The staff key acting in the current request, for the events its changes record.

`server.access.staff_identity` sets it once a staff key is verified; `Store` hands it to every
change script, which writes it as `key_id` into the events that change emits. A request with no
staff key (a customer, the hours scheduler, the recovery check) leaves it empty, and its events
carry no `key_id`. A context variable is request-scoped (each request runs in its own task), so
no handler has to thread the key through every store call.
"""

from __future__ import annotations

from contextvars import ContextVar

ACTING_KEY: ContextVar[str] = ContextVar("vqueue_acting_key", default="")


def act_as(key_id: str) -> None:
    """Record `key_id` as the key acting for the rest of this request."""
    ACTING_KEY.set(key_id)


def acting_key() -> str:
    """The key id acting in this request, or '' when no staff key is."""
    return ACTING_KEY.get()
