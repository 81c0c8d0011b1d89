"""The staff side's reading of each call's seq from the events API (`loadtest.staff`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from loadtest.staff import CallRecord, Staff
from tests.server.threaded import RunningServer, serve_in_thread

# seq 2 (the first call) is written last, as when a killed node's persister had read it and
# another node claims it once idle: the first reads of the log end at seq 5 without it.
LOG = [
    {"seq": 1, "type": "joined", "ticket_id": "q.1"},
    {"seq": 2, "type": "called", "ticket_id": "q.1"},
    {"seq": 3, "type": "joined", "ticket_id": "q.2"},
    {"seq": 4, "type": "called", "ticket_id": "q.2"},
    {"seq": 5, "type": "joined", "ticket_id": "q.3"},
]
LATE_SEQ, LATE_AFTER_READS = 2, 3


class Log:
    def __init__(self) -> None:
        self.reads = 0

    async def events(self, request: Request) -> JSONResponse:
        self.reads += 1
        after = int(request.query_params["after_seq"])
        limit = int(request.query_params["limit"])
        written = [e for e in LOG if e["seq"] != LATE_SEQ or self.reads > LATE_AFTER_READS]
        page = [e for e in written if int(e["seq"]) > after][:limit]
        return JSONResponse({"events": page, "next_after_seq": page[-1]["seq"] if page else after})


@pytest.fixture
def log_server() -> Iterator[tuple[Log, RunningServer]]:
    log = Log()
    app = Starlette(routes=[Route("/v1/queues/q/events", log.events, methods=["GET"])])
    server = serve_in_thread(app)
    yield log, server
    server.stop()


async def test_a_call_written_to_the_log_after_later_ones_is_still_found(
    log_server: tuple[Log, RunningServer],
) -> None:
    log, server = log_server
    staff = Staff(f"http://127.0.0.1:{server.port}", "q", "key")
    staff.calls += [CallRecord(0.0, 0.0, 200, "q.1"), CallRecord(0.0, 0.0, 200, "q.2")]
    try:
        await staff.read_seqs(after=0, timeout_s=10)
    finally:
        await staff.close()
    assert staff.seqs == {"q.1": 2, "q.2": 4}
    assert log.reads > LATE_AFTER_READS  # it was found once written, not on a first read
    assert staff.errors == {}
