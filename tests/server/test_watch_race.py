"""Connect storms while staff call next: every watcher ends exact with the drift check off.

This is the race `protocol/watch.py` closes (docs/architecture.md, "The watch state machine"):
a watcher whose ticket read is in flight while a call-next notice is applied. Before the fix a
few watchers of each storm stayed one place behind for good. The storm comes from the bundled
harness in two client processes (one Python client cannot keep a node busy enough to open the
window); with the periodic drift check off, nothing else can hide a missed frame.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT

SCENARIOS = [
    ("join-spike", ["--watchers", "3000", "--duration", "6", "--call-rate", "2"]),
    ("reconnect-storm", ["--watchers", "3000", "--duration", "6", "--call-rate", "2"]),
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("scenario", "args"), SCENARIOS, ids=[s for s, _ in SCENARIOS])
async def test_a_storm_during_calls_ends_exact(
    scenario: str, args: list[str], start_server: Any, make_venue: Any, tmp_path: Path
) -> None:
    _, key = await make_venue("Storm")
    node = start_server(VQ_RESYNC_CHECK_S="0")
    queue = f"s-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        r = await http.put(
            f"/v1/queues/{queue}", json={"name": "S"}, headers={"Authorization": f"Bearer {key}"}
        )
        assert r.status_code == 201
        report = tmp_path / "report.json"
        command = [sys.executable, "-m", "server", "loadtest", "--url", node.url]
        command += ["--queue", queue, "--staff-key", key, "--scenario", scenario]
        command += ["--processes", "2", "--no-progress", "--json", str(report), *args]
        done = await asyncio.to_thread(
            subprocess.run, command, cwd=ROOT, capture_output=True, timeout=280, check=False
        )
        result = json.loads(report.read_text())
        assert result["final_position_mismatches"] == 0, result["mismatch_examples"]
        assert done.returncode == 0, done.stdout.decode()[-3000:]
        resyncs = (await http.get("/readyz")).json()["resyncs"]
    # Nothing repaired anything: no resync of any kind after each queue's first snapshot.
    assert resyncs["drift"] == 0
    assert sum(resyncs.values()) == resyncs.get("initial", 1), resyncs
