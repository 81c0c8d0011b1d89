"""The `vqueue` command line, as a user runs it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtest.options import BACKLOG as HARNESS_BACKLOG
from loadtest.procinfo import listen_backlog
from server.config import LISTEN_BACKLOG, ConfigError, Settings
from server.embedded import free_port
from tests.conftest import ROOT, server_env, somaxconn


def vqueue(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_venue_create_json_and_migrate(settings: Settings) -> None:
    env = server_env(settings)
    done = vqueue(env, "venue", "create", "Clinic", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) == {"venue_id", "staff_key"}
    assert re.fullmatch(r"vqk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", data["staff_key"])
    assert "vqk_" not in done.stderr  # the key is printed once, on stdout only
    again = vqueue(env, "migrate")
    assert again.returncode == 0 and "applied 0 migration" in again.stdout


def test_bad_configuration_fails_fast(settings: Settings) -> None:
    done = vqueue(server_env(settings, VQ_FLUSH_MS="soon"), "migrate")
    assert done.returncode == 2
    assert "VQ_FLUSH_MS" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.timeout(120)
def test_serve_with_nothing_configured_runs_embedded_services(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VQ_", "REDIS_", "DATABASE_"))}
    env["VQ_DATA_DIR"] = str(tmp_path / "data")
    env["VQ_DEMO"] = "1"  # as `make run` sets it
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        key = None
        while key is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "server exited: " + "".join(lines)
            lines.append(line)
            if "staff key" in line:
                key = line.split()[-1]
        assert key is not None
        out = "".join(lines)
        assert "embedded Redis" in out and "embedded PostgreSQL" in out and "/q/demo" in out
        base = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)
        r = httpx.post(
            f"{base}/v1/queues/demo/call-next", headers={"Authorization": f"Bearer {key}"}
        )
        assert r.status_code == 204
        assert httpx.post(f"{base}/v1/queues/demo/tickets", json={}).status_code == 201
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        rest = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, rest
    assert "redis on port" in rest and "postgres on port" in rest  # both stopped cleanly
    assert "Traceback" not in "".join(lines) + rest


def test_venue_create_json_is_pure_json_with_embedded_services(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VQ_", "REDIS_", "DATABASE_"))}
    env["VQ_DATA_DIR"] = str(tmp_path / "data")
    done = vqueue(env, "venue", "create", "Shop", "--json")
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"venue_id", "staff_key"}
    assert "embedded Redis" in done.stderr  # where the services run is still said, on stderr


@pytest.mark.parametrize("given", ["1234", None])
def test_serve_listens_with_the_configured_backlog(start_server: Any, given: str | None) -> None:
    node = start_server(**({} if given is None else {"VQ_LISTEN_BACKLOG": given}))
    wanted = LISTEN_BACKLOG if given is None else int(given)
    assert listen_backlog(int(node.url.rsplit(":", 1)[1])) == min(wanted, somaxconn())


def test_the_harness_compares_with_vqueues_default_backlog() -> None:
    # Its bare server's backlog when `--backlog` is not given: a storm's ratio is only fair
    # against a server that listens with the same one.
    assert HARNESS_BACKLOG == LISTEN_BACKLOG == Settings.from_environ({}).listen_backlog


@pytest.mark.parametrize(
    ("raw", "pure"), [("", False), ("0", False), ("false", False), ("1", True), ("TRUE", True)]
)
def test_vq_pure_python_reads_as_every_other_switch(raw: str, pure: bool) -> None:
    assert Settings.from_environ({"VQ_PURE_PYTHON": raw}).pure_python is pure


def test_a_bad_vq_pure_python_is_refused() -> None:
    with pytest.raises(ConfigError, match="VQ_PURE_PYTHON"):
        Settings.from_environ({"VQ_PURE_PYTHON": "python"})


@pytest.mark.parametrize("raw", ["0", "-5", "65536", "many", "12.5", "0x10"])
def test_a_bad_listen_backlog_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="VQ_LISTEN_BACKLOG"):
        Settings.from_environ({"VQ_LISTEN_BACKLOG": raw})
    assert Settings.from_environ({"VQ_LISTEN_BACKLOG": " 512 "}).listen_backlog == 512
