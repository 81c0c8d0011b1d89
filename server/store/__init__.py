"""The Redis store: the only package that imports redis."""

from server.store.core import JoinLimits, Store, TicketView
from server.store.notices import NoticeStream, Resubscribed

__all__ = ["JoinLimits", "NoticeStream", "Resubscribed", "Store", "TicketView"]
