"""vqueue's wire contract with no I/O: messages, codecs, connection state and queue policy.

Nothing here opens a socket, reads a clock or touches asyncio: callers pass bytes and `now` in
and get messages, decisions and bytes out. `server/` and `loadtest/` both build on it.
"""
