"""Embedded Redis and PostgreSQL: real child processes under tmp_path, started and stopped here."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
import redis

from server.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServiceError, free_port

REPO = Path(__file__).resolve().parents[2]


def _wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    # A zombie no one reaps yet (PID 1 in a container may not) counts as dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _redis_pid(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return int(client.info("server")["process_id"])


async def _fetchval(dsn: str, sql: str) -> object:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


async def _execute(dsn: str, sql: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def test_redis_keeps_a_key_across_stop_and_start(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    try:
        url = server.start()
        assert re.fullmatch(rf"redis://:[0-9a-f]{{48}}@127\.0\.0\.1:{server.port}/0", url)
        assert server.running
        pid = _redis_pid(url)
        assert os.getpgid(pid) == pid  # its own process group: a terminal Ctrl-C skips it
        with redis.Redis.from_url(url) as client:
            client.set("key", "value")
        server.stop()
        assert not server.running
        assert not _alive(pid)
        assert server.start() == url
        with redis.Redis.from_url(url) as client:
            assert client.get("key") == b"value"
    finally:
        server.stop()


def test_redis_keeps_a_write_across_kill_9(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    try:
        url = server.start()
        with redis.Redis.from_url(url) as client:
            client.set("key", "value")
        time.sleep(1.5)  # the scenario, not a wait: a crash after appendfsync everysec's window
        server.kill()
        assert not server.running
        server.start()
        with redis.Redis.from_url(url) as client:
            assert client.get("key") == b"value"
    finally:
        server.stop()


def test_redis_has_the_features_vqueue_needs(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    try:
        with redis.Redis.from_url(server.start(), decode_responses=True) as client:
            major, minor = (
                int(part) for part in client.info("server")["redis_version"].split(".")[:2]
            )
            assert (major, minor) >= (6, 2)
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
            assert client.eval("return redis.call('INCR', KEYS[1])", 1, "n") == 1
            client.xadd("stream", {"a": "1"})
            client.xgroup_create("stream", "group", id="0")
            assert client.xreadgroup("group", "c1", {"stream": ">"})
            claimed = client.xautoclaim("stream", "group", "c2", min_idle_time=0)
            assert len(claimed[1]) == 1
            assert client.publish("channel", "hello") == 0
    finally:
        server.stop()


def test_redis_on_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        # free_port() counts a port that only TIME_WAIT sockets hold as free, as servers bind
        # it (SO_REUSEADDR); so must this socket, or it fails where Redis would not.
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        server = EmbeddedRedis(tmp_path, port=taken.getsockname()[1])
        with pytest.raises(EmbeddedServiceError, match="in use"):
            server.start()
    assert not server.running


def test_a_failed_start_reports_the_log_tail(tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'fatal: no can do'\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(EmbeddedServiceError, match=r"(?s)exited during start-up.*no can do"):
        EmbeddedRedis(tmp_path, executable=fake).start()
    with pytest.raises(EmbeddedServiceError, match="not executable"):
        EmbeddedRedis(tmp_path, executable=tmp_path / "missing").start()


def test_postgres_copies_a_template_and_keeps_data_across_restart(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path)
    try:
        dsn = server.start()
        assert re.fullmatch(
            rf"postgresql://postgres:[0-9a-f]{{48}}@127\.0\.0\.1:{server.port}/vqueue", dsn
        )
        asyncio.run(_execute(dsn, "CREATE TABLE t (x int); INSERT INTO t VALUES (42)"))
        copy = server.create_database("copy_1", template="vqueue")
        assert copy == dsn.rsplit("/", 1)[0] + "/copy_1"
        assert asyncio.run(_fetchval(copy, "SELECT x FROM t")) == 42
        server.stop()
        assert not server.running
        assert server.start() == dsn  # same port, same cluster: initdb is not run again
        assert asyncio.run(_fetchval(copy, "SELECT x FROM t")) == 42
        server.drop_database("copy_1")
        with pytest.raises(asyncpg.InvalidCatalogNameError):
            asyncio.run(_fetchval(copy, "SELECT 1"))
    finally:
        server.stop()


def test_postgres_refuses_odd_database_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="database name"):
        EmbeddedPostgres(tmp_path).create_database('x"; DROP DATABASE vqueue; --')


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root parent switches users")
def test_postgres_started_by_root_runs_unprivileged(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path)  # under /tmp/pytest-of-root, a 0700 folder
    try:
        assert asyncio.run(_fetchval(server.start(), "SELECT 1")) == 1
        pid = (tmp_path / "postgres" / "postmaster.pid").read_text().split()[0]
        uids = next(
            line.split()[1:]
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("Uid:")
        )
        assert "0" not in uids
    finally:
        server.stop()


CHILD_SCRIPT = """
import os, signal, sys
from pathlib import Path
from server.embedded import EmbeddedPostgres, EmbeddedRedis
data = Path(sys.argv[1])
redis, postgres = EmbeddedRedis(data), EmbeddedPostgres(data)
redis.start(), postgres.start()
pg_pid = (data / "postgres" / "postmaster.pid").read_text().split()[0]
print(redis._proc.pid, pg_pid, flush=True)
if sys.argv[2] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")
@pytest.mark.parametrize("ending", ["exit", "kill"])
def test_servers_do_not_outlive_their_parent(tmp_path: Path, ending: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD_SCRIPT, str(tmp_path), ending],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == (-9 if ending == "kill" else 0), result.stderr
    pids = [int(pid) for pid in result.stdout.split()]
    if ending == "exit":  # atexit stopped them before the interpreter returned
        assert not any(_alive(pid) for pid in pids)
    _wait_for(lambda: not any(_alive(pid) for pid in pids))


def test_embedded_redis_refuses_a_client_without_the_password(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    try:
        url = server.start()
        with redis.Redis(host="127.0.0.1", port=server.port) as stranger:
            with pytest.raises(redis.AuthenticationError):
                stranger.set("key", "value")
            with pytest.raises(redis.AuthenticationError):
                stranger.config_get("requirepass")
        with redis.Redis.from_url(url) as client:
            assert client.ping()
        # The password is never on the command line that every user can read with `ps`.
        password = url.split(":")[2].split("@")[0]
        assert password not in Path(f"/proc/{_redis_pid(url)}/cmdline").read_text()
        for private in (tmp_path / "redis.password", tmp_path / "redis.conf", tmp_path / "redis"):
            assert private.stat().st_mode & 0o077 == 0, private
    finally:
        server.stop()


def test_embedded_postgres_refuses_a_client_without_the_password(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path)
    try:
        dsn = server.start()
        without = f"postgresql://postgres@127.0.0.1:{server.port}/vqueue"
        with pytest.raises(asyncpg.InvalidPasswordError):
            asyncio.run(_fetchval(without, "SELECT 1"))
        wrong = f"postgresql://postgres:guess@127.0.0.1:{server.port}/vqueue"
        with pytest.raises(asyncpg.InvalidPasswordError):
            asyncio.run(_fetchval(wrong, "SELECT 1"))
        assert asyncio.run(_fetchval(dsn, "SELECT 1")) == 1
        assert (tmp_path / "postgres.password").stat().st_mode & 0o077 == 0
        assert tmp_path.stat().st_mode & 0o066 == 0  # no one else may list or write it
    finally:
        server.stop()
