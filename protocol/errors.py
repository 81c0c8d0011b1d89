"""Errors raised by the protocol core.

Hierarchy::

    ProtocolError                 anything a peer sent that breaks the contract
    ├── MalformedMessage          not a known message, wrong types, bad JSON (close 1008)
    ├── InvalidUtf8               a text frame that is not UTF-8 (close 1007)
    ├── UnsupportedFrame          a binary frame on vq1.json (close 1003)
    └── MessageTooBig             a message over 64 KiB (close 1009)
"""

from __future__ import annotations

from protocol.closecodes import (
    INVALID_PAYLOAD,
    MESSAGE_TOO_BIG,
    POLICY_VIOLATION,
    UNSUPPORTED_DATA,
)


class ProtocolError(Exception):
    """A peer broke the contract; `code` names it, `close_code` is the WebSocket close code."""

    code = "bad_message"
    close_code = POLICY_VIOLATION

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedMessage(ProtocolError):
    code = "bad_message"
    close_code = POLICY_VIOLATION


class InvalidUtf8(ProtocolError):
    code = "invalid_utf8"
    close_code = INVALID_PAYLOAD


class UnsupportedFrame(ProtocolError):
    code = "unsupported_frame"
    close_code = UNSUPPORTED_DATA


class MessageTooBig(ProtocolError):
    code = "message_too_big"
    close_code = MESSAGE_TOO_BIG
