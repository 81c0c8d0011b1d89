"""Log lines: text or JSON (`VQ_LOG_FORMAT`), each naming its request, none carrying a secret.

The request id lives in a context variable set by `server.requestctx` for the whole of one
request (an asyncio task), so every line logged while serving it names it, whichever module
logs. Handlers never log bodies or credentials; as a second line of defence, every formatted
line is scrubbed of anything shaped like a staff key, a ticket token, an email address or an
international phone number before it is written.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

REQUEST_ID: ContextVar[str] = ContextVar("vqueue_request_id", default="-")
# Where the request id is also noted in the ASGI scope, for code that logs outside the
# request's task (the WebSocket protocol's close line).
REQUEST_ID_SCOPE_KEY = "vqueue.request_id"

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
JSON_FIELDS = ["levelname", "name", "request_id", "message"]
JSON_RENAMES = {"levelname": "level", "name": "logger"}
# uvicorn adds an ANSI-coloured copy of some messages: no use in a JSON line.
JSON_SKIPPED = [*RESERVED_ATTRS, "color_message"]

SECRET_SHAPES = re.compile(
    "|".join(
        (
            r"vqk_[0-9A-Za-z]+_[A-Za-z0-9_-]+",  # a staff key
            r"WyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}",  # a ticket token: base64url '["...' + sig
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+",  # an email address
            r"\+\d[\d ().-]{6,}\d",  # an international phone number
        )
    )
)
REDACTED = "[redacted]"


def scrub(line: str) -> str:
    return SECRET_SHAPES.sub(REDACTED, line)


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:  # unless the caller named it
            record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class JsonFormatter(OrjsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def configure(level: str, fmt: str) -> None:
    """Root logging for the process (the entry point calls this once; uvicorn's loggers
    propagate here because the server starts uvicorn with `log_config=None`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                JSON_FIELDS,
                rename_fields=JSON_RENAMES,
                reserved_attrs=JSON_SKIPPED,
                timestamp="time",  # ISO 8601, UTC
            )
        )
    else:
        handler.setFormatter(TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
