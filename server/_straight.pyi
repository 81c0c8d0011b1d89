"""Types of server/_straight.c, the fan-out's write loop in C (see server/outbox.py)."""

from collections.abc import Sequence

from server.outbox import Addressee

def offer_each(to: Sequence[Addressee], frames: Sequence[bytes], replaceable: bool) -> int: ...
def socket_writes() -> int: ...
