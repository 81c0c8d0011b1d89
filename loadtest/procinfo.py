"""What the harness can read about the server besides its API: memory, CPU, frame counters and
the kernel's count of connections a full accept queue dropped."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from loadtest.httpc import HttpClient, HttpError


def rss_kib(pid: int | None) -> int | None:
    """Resident memory of a local process, from /proc (None if unknown or not readable)."""
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


async def server_frames_sent(base_urls: tuple[str, ...]) -> int | None:
    """The nodes' own count of WebSocket frames sent, summed, if each /readyz reports one."""
    total = 0
    for base_url in base_urls:
        sent = await _frames_sent(base_url)
        if sent is None:
            return None
        total += sent
    return total


async def _frames_sent(base_url: str) -> int | None:
    http = HttpClient(base_url, 1, timeout_s=5.0)
    try:
        reply = await http.request("GET", "/readyz")
    except HttpError:
        return None
    finally:
        await http.close()
    value = reply.body.get("frames_sent") if isinstance(reply.body, dict) else None
    return value if isinstance(value, int) else None


def cpu_s(pid: int | None) -> float | None:
    """CPU time (user + system, all threads) a local process has used so far, in seconds.

    Unlike wall time it does not grow while other programs hold the core, so frames per
    CPU-second compares two servers fairly on a busy machine.
    """
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def listen_overflows(netstat: Path = Path("/proc/net/netstat")) -> int | None:
    """This host's count of connections dropped because a listen queue was full (TCP retries
    them a second later, then three), since boot; None where the kernel does not say."""
    try:
        return parse_listen_overflows(netstat.read_text())
    except OSError:
        return None


def parse_listen_overflows(text: str) -> int | None:
    """`ListenOverflows` of the `TcpExt:` rows of /proc/net/netstat (a header row, then values)."""
    rows = [line.split() for line in text.splitlines() if line.startswith("TcpExt:")]
    if len(rows) < 2 or len(rows[0]) != len(rows[1]) or "ListenOverflows" not in rows[0]:
        return None
    value = rows[1][rows[0].index("ListenOverflows")]
    return int(value) if value.isdigit() else None


def listen_backlog(port: int) -> int | None:
    """The accept queue's length the kernel gave the socket listening on this host's `port`
    (what the server asked for, capped at net.core.somaxconn); None without `ss` or a listener."""
    try:
        command = ["ss", "-Hltn", f"sport = :{port}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_listen_backlog(done.stdout) if done.returncode == 0 else None


def parse_listen_backlog(text: str) -> int | None:
    """The largest Send-Q of `ss -Hltn` rows in state LISTEN: for a listener, its backlog."""
    found = [
        int(row[2])
        for row in (line.split() for line in text.splitlines())
        if len(row) >= 5 and row[0] == "LISTEN" and row[2].isdigit()
    ]
    return max(found) if found else None
