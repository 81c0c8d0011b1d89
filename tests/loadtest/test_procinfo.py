"""Reading the kernel's listen-queue overflow count and a listener's backlog, and where the storm
tables show them."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from loadtest.benchdoc import _storms
from loadtest.options import BACKLOG
from loadtest.pool import start_baseline
from loadtest.procinfo import (
    listen_backlog,
    listen_overflows,
    parse_listen_backlog,
    parse_listen_overflows,
)
from server.embedded import free_port
from tests.conftest import somaxconn

NETSTAT = (
    "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n"
    "TcpExt: 0 4242 4300\n"
    "IpExt: InNoRoutes InTruncatedPkts\n"
    "IpExt: 0 0\n"
)


@pytest.mark.parametrize(
    ("text", "count"),
    [
        (NETSTAT, 4242),
        (NETSTAT.replace("4242", "0"), 0),
        ("IpExt: InNoRoutes\nIpExt: 0\n", None),  # no TcpExt rows
        ("TcpExt: SyncookiesSent ListenDrops\nTcpExt: 0 1\n", None),  # no such counter
        ("TcpExt: SyncookiesSent ListenOverflows\nTcpExt: 0\n", None),  # a row cut short
        ("TcpExt: ListenOverflows\nTcpExt: -\n", None),
        ("TcpExt: ListenOverflows\n", None),  # a header with no values
        ("", None),
    ],
)
def test_listen_overflows_are_read_from_the_tcpext_rows(text: str, count: int | None) -> None:
    assert parse_listen_overflows(text) == count


def test_an_unreadable_netstat_is_none(tmp_path: Path) -> None:
    assert listen_overflows(tmp_path / "missing") is None
    (tmp_path / "netstat").write_text(NETSTAT)
    assert listen_overflows(tmp_path / "netstat") == 4242


def _storm_run(
    mine: int | None, bare: int | None, backlogs: tuple[int, int] | None = None
) -> dict[str, Any]:
    storm: dict[str, Any] = {"dropped": 5000}
    bare_storm: dict[str, Any] = {"time_s": 1.4}
    if mine is not None:
        storm["listen_overflows"] = mine
    if bare is not None:
        bare_storm["listen_overflows"] = bare
    if backlogs is not None:
        storm["listen_backlog"], bare_storm["listen_backlog"] = backlogs
    return {
        "watchers": 5000,
        "reconnect_ms": {"max": 3380.0},
        "baseline": {"storm": bare_storm},
        "update_latency_after_storm_ms": {"p99": 51.1},
        "update_latency_ms": {"p99": 7081.7},
        "ratios": {"storm_time": 2.414},
        "storm": storm,
        "errors": {},
        "final_position_mismatches": 0,
    }


def test_the_storm_table_shows_each_sides_backlog_and_overflows() -> None:
    runs = [_storm_run(2716, 0, (4096, 2048)), _storm_run(None, None)]
    lines = _storms({"reconnect-storm": runs})
    header = next(line for line in lines if line.startswith("| run |"))
    rows = [line for line in lines if line.startswith("| reconnect-storm ")]
    column = header.split(" | ").index("listen overflows (vqueue / bare)")
    assert [row.split(" | ")[column] for row in rows] == ["2,716 / 0", "- / -"]
    column = header.split(" | ").index("listen backlog (vqueue / bare)")
    assert [row.split(" | ")[column] for row in rows] == ["4,096 / 2,048", "- / -"]
    widths = {line.count("|") for line in lines if line.startswith("|")}
    assert len(widths) == 1  # every row has as many cells as the header


SS_ROWS = (
    "LISTEN 0      4096   127.0.0.1:8000 0.0.0.0:*\nLISTEN 3      4096       [::1]:8000    [::]:*\n"
)


@pytest.mark.parametrize(
    ("text", "backlog"),
    [
        (SS_ROWS, 4096),
        (SS_ROWS.splitlines()[1], 4096),  # queued connections (Recv-Q 3) are not the backlog
        ("LISTEN 0 511 127.0.0.1:6379 0.0.0.0:*\nLISTEN 0 128 [::1]:6379 [::]:*\n", 511),
        ("ESTAB 0 0 127.0.0.1:8000 127.0.0.1:5555\n", None),  # not a listener
        ("LISTEN 0 - 127.0.0.1:8000 0.0.0.0:*\n", None),
        ("LISTEN 0 4096\n", None),  # a row cut short
        ("", None),  # nothing listens there
    ],
)
def test_a_listeners_backlog_is_read_from_ss(text: str, backlog: int | None) -> None:
    assert parse_listen_backlog(text) == backlog


def test_the_backlog_a_socket_listens_with_is_read_back() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert listen_backlog(port) is None  # bound, not listening
        sock.listen(333)
        assert listen_backlog(port) == 333


@pytest.mark.parametrize("backlog", [777, BACKLOG])
async def test_the_bare_server_listens_with_the_backlog_it_is_given(backlog: int) -> None:
    cap = somaxconn()
    port = free_port()
    server = await start_baseline(port, None, backlog)
    try:
        found = await asyncio.to_thread(listen_backlog, port)
    finally:
        await server.stop()
    assert found == min(backlog, cap)
