"""The Redis store: the only package that imports redis."""

from protocol.ticket import TicketView
from server.store.core import JoinLimits, Store
from server.store.keyring import KeyRing
from server.store.notices import NoticeStream, Resubscribed

__all__ = ["JoinLimits", "KeyRing", "NoticeStream", "Resubscribed", "Store", "TicketView"]
