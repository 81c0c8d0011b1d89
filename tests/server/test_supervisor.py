"""The supervisor on its own, with a real Redis child: a SIGKILL is reaped and restarted on the
same port from the AOF; a child that cannot start is retried with pauses, not in a busy loop."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import redis

from server.embedded import EmbeddedRedis
from server.supervisor import BACKOFF_S, Supervisor
from tests.server.faults import process_state, wait_for, zombie_children


def _pid(url: str) -> int:
    with redis.Redis.from_url(url, socket_timeout=1) as client:
        return int(client.info("server")["process_id"])


def _answers_with_new_pid(url: str, old: int) -> bool:
    try:
        return _pid(url) != old
    except redis.RedisError:
        return False


def test_a_killed_child_is_reaped_and_restarted_on_its_port(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    supervisor = Supervisor([server])
    supervisor.start()
    try:
        with redis.Redis.from_url(url) as client:
            client.set("kept", "yes")
        for kills in range(1, 4):  # and again: a healthy child is restarted at once every time
            old = _pid(url)
            os.kill(old, signal.SIGKILL)
            took = wait_for(lambda old=old: _answers_with_new_pid(url, old), 5, "no restart")
            assert took < 5
            assert process_state(old) is None  # reaped, not a zombie
            assert zombie_children(os.getpid()) == []
            with redis.Redis.from_url(url) as client:
                assert client.get("kept") == b"yes"  # from the AOF, on the same URL
            # Counted once the supervisor's start() returns, which may come just after the new
            # child answers the test; killing it before then is a failed start-up, retried,
            # not a restart (CI once killed it there and counted 2).
            wait_for(lambda kills=kills: supervisor.restarts == kills, 5, "restart not counted")
        assert supervisor.restarts == 3
    finally:
        supervisor.stop()
        server.stop()
    assert not server.running


def test_a_child_that_keeps_failing_is_retried_with_pauses(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    server.start()
    supervisor = Supervisor([server])
    supervisor.start()
    try:
        server._executable = tmp_path / "broken"  # from now on every start fails at once
        server._executable.write_text("#!/bin/sh\nexit 1\n")
        server._executable.chmod(0o755)
        os.kill(_pid(server.url), signal.SIGKILL)
        time.sleep(sum(BACKOFF_S[:3]) + 0.5)  # the scenario: how many tries fit in 2 s
        assert supervisor.restarts == 0
        assert 2 <= supervisor.failed_starts <= 4  # paused between tries, no busy loop
    finally:
        supervisor.stop()
        server.stop()
