"""Reading the kernel's listen-queue overflow count, and where the storm tables show it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loadtest.benchdoc import _storms
from loadtest.procinfo import listen_overflows, parse_listen_overflows

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


def _storm_run(mine: int | None, bare: int | None) -> dict[str, Any]:
    storm: dict[str, Any] = {"dropped": 5000}
    bare_storm: dict[str, Any] = {"time_s": 1.4}
    if mine is not None:
        storm["listen_overflows"] = mine
    if bare is not None:
        bare_storm["listen_overflows"] = bare
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


def test_the_storm_table_shows_each_sides_overflows() -> None:
    lines = _storms({"reconnect-storm": [_storm_run(2716, 0), _storm_run(None, None)]})
    header = next(line for line in lines if line.startswith("| run |"))
    rows = [line for line in lines if line.startswith("| reconnect-storm ")]
    column = header.split(" | ").index("listen overflows (vqueue / bare)")
    assert [row.split(" | ")[column] for row in rows] == ["2,716 / 0", "- / -"]
    widths = {line.count("|") for line in lines if line.startswith("|")}
    assert len(widths) == 1  # every row has as many cells as the header
