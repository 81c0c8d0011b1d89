"""The harness end to end: against a real server, and against a fake one that lies.

Each run is `python -m loadtest` in a subprocess (the real command line, worker processes and
all), with a few hundred watchers for a few seconds; the JSON report is what is checked.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from loadtest.cli import main
from loadtest.options import BACKLOG
from server.embedded import free_port
from tests.conftest import ROOT, ServerProcess, somaxconn

FAKE_SERVER = Path(__file__).with_name("fakeserver.py")


async def run_harness(
    url: str, queue: str, key: str, out: Path, *extra: str, status: int = 0
) -> dict[str, Any]:
    """Run `python -m loadtest`; assert it exits with `status`; return its JSON report."""
    args = ["--url", url, "--queue", queue, "--staff-key", key, "--json", str(out)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "loadtest",
        *args,
        "--no-progress",
        *extra,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await proc.communicate()
    assert proc.returncode == status, output.decode()[-4000:]
    report: dict[str, Any] = orjson.loads(await asyncio.to_thread(out.read_bytes))
    return report


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[Callable[..., str]]:
    import subprocess
    import time

    procs: list[subprocess.Popen[bytes]] = []

    def start(skew: int, *extra: str) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, str(FAKE_SERVER), "--port", str(port), "--skew", str(skew), *extra],
            cwd=ROOT,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/readyz", timeout=0.5)
                return url
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("fake server did not start")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


async def test_the_final_check_fails_when_positions_are_wrong(
    fake_server: Callable[..., str], tmp_path: Path
) -> None:
    url = fake_server(1)  # every position it sends is one too many
    report = await run_harness(
        url,
        "q",
        "key",
        tmp_path / "r.json",
        "--watchers",
        "60",
        "--duration",
        "2",
        "--call-rate",
        "4",
        status=1,  # a lying server fails the run
    )
    assert report["final_position_mismatches"] > 0
    assert report["final_position_mismatches"] == report["final_checked"] - report["calls"]["made"]
    assert report["verdict"]["failed"] == ["final_position_mismatches"]


async def test_a_called_ticket_never_told_fails_the_run(
    fake_server: Callable[..., str], tmp_path: Path
) -> None:
    url = fake_server(0, "--lose-calls")
    report = await run_harness(
        url, "q", "key", tmp_path / "r.json", "--watchers", "40", "--duration", "1", status=1
    )
    made = report["calls"]["called_a_ticket"]
    assert made > 0
    assert report["verdict"]["checks"]["calls_lost"] == made
    assert "calls_lost" in report["verdict"]["failed"]


async def test_counts_agree_with_the_servers_own(
    fake_server: Callable[..., str], tmp_path: Path
) -> None:
    url = fake_server(0)
    report = await run_harness(
        url,
        "q",
        "key",
        tmp_path / "r.json",
        "--watchers",
        "80",
        "--duration",
        "2",
        "--call-rate",
        "5",
        "--processes",
        "2",
    )
    assert report["final_position_mismatches"] == 0
    assert report["verdict"] == {
        "passed": True,
        "failed": [],
        "checks": {
            "final_position_mismatches": 0,
            "calls_lost": 0,
            "calls_twice": 0,
            "awaiting_state": 0,
            "storm_not_resumed": 0,
        },
        "calls_lost_examples": [],
        "calls_twice_examples": [],
    }  # and the harness exited 0 (run_harness checks)
    server = report["server"]
    assert server["frames_sent"] is not None and server["frames_sent"] > 0
    assert server["frames_received"] == server["frames_sent"]
    assert report["calls"]["attributed"] == report["calls"]["made"] > 0
    assert report["update_latency_ms"]["count"] > 0


async def _fresh_run(
    start_server: Callable[..., ServerProcess], make_venue: Any, out: Path, queue: str, *args: str
) -> dict[str, Any]:
    """The harness against a new server, on a new queue of a new venue; its report."""
    _venue, key = await make_venue(queue.title())
    server = start_server()
    await _queue(server, key, queue)
    return await run_harness(server.url, queue, key, out, *args)


async def _queue(server: ServerProcess, key: str, queue: str) -> None:
    async with httpx.AsyncClient() as client:
        reply = await client.put(
            f"{server.url}/v1/queues/{queue}",
            json={"name": queue},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert reply.status_code == 201, reply.text


async def test_steady_run_against_a_real_server(
    start_server: Callable[..., ServerProcess], make_venue: Any, tmp_path: Path
) -> None:
    _venue, key = await make_venue("Load")
    server = start_server()
    await _queue(server, key, "lt")
    html = tmp_path / "r.html"
    report = await run_harness(
        server.url,
        "lt",
        key,
        tmp_path / "r.json",
        "--watchers",
        "300",
        "--processes",
        "2",
        "--duration",
        "3",
        "--call-rate",
        "5",
        "--html",
        str(html),
    )
    assert report["errors"] == {}
    assert report["final_position_mismatches"] == 0
    assert report["final_checked"] >= 290
    assert report["join_latency_ms"]["count"] >= 300
    assert report["calls"]["attributed"] == report["calls"]["called_a_ticket"] > 0
    assert report["update_latency_ms"]["count"] > 0
    assert report["frames"]["called"] == report["calls"]["called_a_ticket"]
    # Frames per second divide by the time to the last frame's arrival, not to when the harness
    # saw the totals move for the last time (its workers report them every half second).
    window = report["frames_window"]
    assert 0 < window["frames"] <= report["frames"]["position"]
    assert window["first_call_s"] < window["last_frame_s"] <= window["last_change_seen_s"]
    span = window["last_frame_s"] - window["first_call_s"]
    assert report["frames_per_s"] == pytest.approx(window["frames"] / span, rel=0.01)
    server_counts = report["server"]
    if server_counts["frames_sent"] is not None:  # once /readyz reports the server's counter
        assert server_counts["frames_received"] <= server_counts["frames_sent"]
    assert "<svg" in await asyncio.to_thread(html.read_text)


async def test_processes_spread_over_several_nodes(
    start_server: Callable[..., ServerProcess], make_venue: Any, tmp_path: Path
) -> None:
    """`--url a,b`: process i watches through node i mod 2; the positions end exact and the
    frames the harness received are the sum of what both nodes sent."""
    _venue, key = await make_venue("Nodes")
    nodes = [start_server(), start_server()]
    await _queue(nodes[0], key, "ln")
    urls = ",".join(n.url for n in nodes)
    args = ["--watchers", "200", "--processes", "2", "--duration", "2", "--call-rate", "5"]
    report = await run_harness(urls, "ln", key, tmp_path / "r.json", *args)
    assert report["errors"] == {}
    assert report["final_position_mismatches"] == 0
    assert report["final_checked"] >= 190
    counts = report["server"]
    assert counts["frames_sent"] is not None
    assert 0 < counts["frames_received"] <= counts["frames_sent"]
    for node in nodes:  # each node sent some of them: both held watchers
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{node.url}/readyz")).json()["frames_sent"] > 0


async def test_reconnect_storm_resumes_every_watcher(
    start_server: Callable[..., ServerProcess], make_venue: Any, tmp_path: Path
) -> None:
    report = await _fresh_run(
        start_server,
        make_venue,
        tmp_path / "r.json",
        "storm",
        *("--watchers", "200", "--duration", "3", "--call-rate", "3"),
        *("--scenario", "reconnect-storm"),
    )
    assert report["storm"]["dropped"] >= 190
    # A loopback server: the kernel's count of connections its full accept queue dropped.
    assert isinstance(report["storm"]["listen_overflows"], int)
    assert report["storm"]["listen_overflows"] >= 0
    # ... and the backlog it listens with (the node's default, within the kernel's cap).
    assert report["storm"]["listen_backlog"] == min(BACKLOG, somaxconn())
    assert report["reconnect_ms"]["count"] == report["storm"]["dropped"]
    # Each reconnect's TCP connect is timed too, from the same drop: it comes before the
    # position, so what a storm spends before it is the client machine's, not the server's.
    connect = report["storm"]["tcp_connect_ms"]
    assert connect["count"] == report["storm"]["dropped"]
    assert 0 < connect["max"] <= report["reconnect_ms"]["max"]
    assert connect["p50"] <= report["reconnect_ms"]["p50"]
    assert report["final_position_mismatches"] == 0
    assert not [k for k in report["errors"] if k.startswith(("reconnect_gave_up", "storm_"))]
    # The calls once every watcher was back are timed on their own (a subset of the run's).
    after = report["update_latency_after_storm_ms"]
    assert after["calls"] >= 1
    assert 0 < after["count"] < report["update_latency_ms"]["count"]


async def test_a_storm_that_keeps_some_sockets_times_calls_to_them_before_and_during_it(
    start_server: Callable[..., ServerProcess], make_venue: Any, tmp_path: Path
) -> None:
    """`--storm-keep`: those watchers keep their sockets while the rest drop, and the calls
    sent before and during the storm are timed at them (what a storm costs everyone else)."""
    report = await _fresh_run(
        start_server,
        make_venue,
        tmp_path / "r.json",
        "kept",
        *("--watchers", "150", "--storm-keep", "50", "--duration", "3", "--call-rate", "6"),
        *("--leave-rate", "0", "--join-rate", "0", "--scenario", "reconnect-storm"),
    )
    assert report["storm"]["dropped"] == 100
    assert report["reconnect_ms"]["count"] == 100
    kept = report["update_latency_kept_ms"]
    assert kept["watchers"] == 50
    before = kept["from_request"]["before"]
    assert before["calls"] >= 1 and 0 < before["samples"]["count"] <= 50 * before["calls"]
    # Every call's seq was read from the events API, the called watcher's socket up or not.
    assert report["calls"]["attributed"] == report["calls"]["called_a_ticket"] > 0
    assert report["final_position_mismatches"] == 0 and report["errors"] == {}


async def test_priority_joins_move_every_watcher_and_each_is_timed(
    start_server: Callable[..., ServerProcess], make_venue: Any, tmp_path: Path
) -> None:
    """`--scenario priority-join`: staff joins at the top priority instead of calls; each join's
    seq comes from the events API, so every join is timed at every watcher it moved."""
    _venue, key = await make_venue("Priority")
    server = start_server()
    await _queue(server, key, "prio")
    report = await run_harness(
        server.url,
        "prio",
        key,
        tmp_path / "r.json",
        *("--watchers", "200", "--duration", "3", "--call-rate", "2"),
        *("--leave-rate", "0", "--join-rate", "0", "--scenario", "priority-join"),
    )
    joins = report["calls"]["made"]
    assert report["errors"] == {} and joins >= 4
    assert report["calls"]["called_a_ticket"] == 0  # nobody was called
    assert report["calls"]["attributed"] == joins  # every join's seq was found
    assert report["final_position_mismatches"] == 0 and report["final_checked"] == 200
    assert report["waiting_at_end"] == 200 + joins
    assert report["update_latency_ms"]["count"] == joins * 200  # every watcher moved each time


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--url",
        "--queue",
        "--staff-key",
        "--scenario",
        "--watchers",
        "--duration",
        "--call-rate",
        "--processes",
        "--json",
        "--html",
        "--baseline",
    ):
        assert option in text


async def failover_run(
    start_server: Callable[..., ServerProcess],
    make_venue: Any,
    tmp_path: Path,
    watchers: int,
    processes: int,
) -> dict[str, Any]:
    """The failover scenario against three real nodes; the watchers' node is SIGKILLed."""
    _venue, key = await make_venue("Failover")
    nodes = [start_server() for _ in range(3)]
    await _queue(nodes[1], key, "fo")
    victim = nodes[0]
    assert victim.proc is not None
    report = await run_harness(
        victim.url,
        "fo",
        key,
        tmp_path / "r.json",
        "--scenario",
        "failover",
        "--kill-pid",
        str(victim.proc.pid),
        "--failover-url",
        nodes[1].url,
        "--failover-url",
        nodes[2].url,
        "--watchers",
        str(watchers),
        "--processes",
        str(processes),
        "--duration",
        "9",
        "--call-rate",
        "3",
        "--html",
        str(tmp_path / "r.html"),
    )
    assert "failover p99" in await asyncio.to_thread((tmp_path / "r.html").read_text)
    assert victim.proc.wait(10) == -9  # it really was killed, not stopped
    async with httpx.AsyncClient() as http:
        for node in nodes[1:]:  # both survivors took watchers and pushed frames to them
            r = await http.get(f"{node.url}/readyz")
            assert r.json()["frames_sent"] > 0
    return report


async def test_a_node_killed_under_its_watchers_loses_none_of_them(
    start_server: Callable[..., ServerProcess], make_venue: Any, tmp_path: Path
) -> None:
    report = await failover_run(start_server, make_venue, tmp_path, 1000, 2)
    # The 15 s p99 target is the soak's (below): on this shared 2-core machine the figure swings
    # with the load (6 s to 19 s seen at a load average of 14 to 24), and timing targets do not
    # belong in make test. Here: every watcher back (within the harness's 60 s), all exact.
    assert_failover(report, 1000, p99_target_ms=None)


@pytest.mark.soak
@pytest.mark.timeout(600)
async def test_a_node_killed_under_five_thousand_watchers(
    start_server: Callable[..., ServerProcess], make_venue: Any, tmp_path: Path
) -> None:
    report = await failover_run(start_server, make_venue, tmp_path, 5000, 2)
    assert_failover(report, 5000)


def assert_failover(
    report: dict[str, Any], watchers: int, p99_target_ms: float | None = 15_000
) -> None:
    failover = report["failover"]
    print("failover:", failover)
    assert failover["watching"] >= watchers * 0.98  # a few may have been called already
    assert failover["not_recovered"] == 0
    assert failover["recovered"] >= failover["watching"] * 0.98  # the rest left meanwhile
    assert failover["recovery_ms"]["count"] == failover["recovered"]  # the figure is reported
    if p99_target_ms is not None:
        assert failover["recovery_ms"]["p99"] < p99_target_ms
    assert report["final_position_mismatches"] == 0
    assert report["verdict"]["passed"]
    lost = [k for k in report["errors"] if k.startswith(("reconnect_gave_up", "no_first_frame"))]
    assert lost == [], report["errors"]
