"""The Redis store: the only package that imports redis."""

from server.store.core import Store, TicketView
from server.store.notices import NoticeStream, Resubscribed

__all__ = ["NoticeStream", "Resubscribed", "Store", "TicketView"]
