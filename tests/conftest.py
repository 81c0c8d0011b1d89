"""Test services: one embedded Redis and PostgreSQL per session (the same code `vqueue serve`
uses), a migrated template database copied per test, a key prefix per test, and real server
processes on free ports."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from server.auth import new_staff_key
from server.config import Secret, Settings
from server.db import Database
from server.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from server.embedded import _exit_with_parent as exit_with_parent
from server.outbox import use_c_loop
from server.store import Store

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DB = "vqueue_template"
SECRET_KEY = "test-secret-key-0123456789abcdef-0123456789"
LOOPBACK = "127.0.0.0/8,::1"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def migrate_database(dsn: str) -> None:
    """Apply the migrations to `dsn`, for sync fixtures."""

    async def migrate() -> None:
        db = await Database.connect(dsn, max_size=1)
        await db.migrate()
        await db.close()

    asyncio.run(migrate())


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    # Not under pytest's own tmp folder: run as root we run PostgreSQL as another user, and every
    # other pytest session on the machine resets /tmp/pytest-of-root to 0700, which locked the
    # server out of its own files mid-run (a PANIC at the next checkpoint).
    folder = Path(tempfile.mkdtemp(prefix="vqueue-test-pg-"))
    server = EmbeddedPostgres(folder)
    server.start()
    migrate_database(server.create_database(TEMPLATE_DB))
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def database_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    name = f"t_{secrets.token_hex(6)}"
    dsn = pg_server.create_database(name, template=TEMPLATE_DB)
    yield dsn
    pg_server.drop_database(name)


@pytest.fixture
def prefix() -> str:
    return f"t{secrets.token_hex(4)}"


@pytest.fixture
def settings(
    redis_server: EmbeddedRedis, database_url: str, prefix: str, tmp_path: Path
) -> Settings:
    return Settings(
        redis_url=Secret(redis_server.url),
        database_url=Secret(database_url),
        secret_key=Secret(SECRET_KEY),
        data_dir=tmp_path,
        redis_prefix=prefix,
        demo=False,
        resync_check_s=0.0,
        pure_python=PURE_PYTHON,
    )


@pytest_asyncio.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    assert settings.redis_url is not None
    s = Store(settings.redis_url.reveal(), settings.redis_prefix, cluster=settings.redis_cluster)
    yield s
    await s.close()


@pytest_asyncio.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    assert settings.database_url is not None
    d = await Database.connect(settings.database_url.reveal(), max_size=2)
    yield d
    await d.close()


@pytest_asyncio.fixture
async def make_venue(db: Database) -> Callable[[str], asyncio.Future[tuple[str, str]]]:
    async def create(name: str = "Venue") -> tuple[str, str]:
        key_id, key, digest = new_staff_key()
        venue_id = await db.create_venue(name, key_id, digest)
        return venue_id, key

    return create  # type: ignore[return-value]


@dataclass
class ServerProcess:
    """A real `vqueue serve` process on a free port."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def start(self, timeout_s: float = 20.0) -> None:
        assert self.log_path is not None
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server", "serve", "--port", str(self.port)],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                # A pytest session killed before its teardown must not leave nodes (and their
                # embedded children) running on the shared machine: SIGTERM them with it.
                preexec_fn=exit_with_parent(signal.SIGTERM),  # noqa: PLW1509
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    self._check_loop()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def _check_loop(self) -> None:
        """The node writes frames with the C loop where it was built, unless this test process
        or the node's own environment asks for the Python one (`make unit`'s second pass sets
        VQ_PURE_PYTHON=1 for both): `/readyz` says which."""
        try:  # a node started with its services down may not answer in time: not checked
            loop = httpx.get(f"{self.url}/readyz", timeout=5).json().get("fanout_loop")
        except httpx.HTTPError:
            return
        assert loop == expected_fanout_loop(PURE_PYTHON or pure_python(self.env)), loop

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""


def somaxconn() -> int:
    """The kernel's cap on any listener's backlog (net.core.somaxconn)."""
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


def pure_python(env: Mapping[str, str]) -> bool:
    """VQ_PURE_PYTHON in `env`, read as a node reads it."""
    return Settings.from_environ({"VQ_PURE_PYTHON": env.get("VQ_PURE_PYTHON", "")}).pure_python


def expected_fanout_loop(pure: bool) -> str:
    """What `/readyz` says of the fan-out's write loop (`fanout_loop`): "c" where it was built,
    unless asked for the Python one."""
    built = importlib.util.find_spec("server._straight") is not None
    return "python" if pure or not built else "c"


# `make unit`'s second pass sets VQ_PURE_PYTHON: every fan-out in this process, and in the nodes
# it starts, writes with the loop in Python, as the apps it builds do (`Settings.pure_python`).
PURE_PYTHON = pure_python(os.environ)
use_c_loop(not PURE_PYTHON)


def server_env(settings: Settings, **extra: str) -> dict[str, str]:
    assert settings.redis_url is not None and settings.database_url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VQ_", "REDIS_", "DATABASE_"))}
    env.update(
        REDIS_URL=settings.redis_url.reveal(),
        DATABASE_URL=settings.database_url.reveal(),
        VQ_SECRET_KEY=SECRET_KEY,
        VQ_REDIS_PREFIX=settings.redis_prefix,
        VQ_DATA_DIR=str(settings.data_dir),
        VQ_DEMO="0",
        # The drift check off: live-path tests must pass on notices alone (a test of the check
        # itself turns it on).
        VQ_RESYNC_CHECK_S="0",
        VQ_LOG_LEVEL="INFO",
        # The abuse limits exempt loopback here; the tests of the limits set their own.
        VQ_RATE_EXEMPT=LOOPBACK,
    )
    if "VQ_PURE_PYTHON" in os.environ:  # `make unit`'s second pass: the fan-out loop in Python
        env["VQ_PURE_PYTHON"] = os.environ["VQ_PURE_PYTHON"]
    env.update(extra)
    return env


def create_venue_sync(dsn: str, name: str = "Venue") -> tuple[str, str]:
    """(venue id, staff key), for sync fixtures."""

    async def create() -> tuple[str, str]:
        db = await Database.connect(dsn, max_size=1)
        try:
            key_id, key, digest = new_staff_key()
            return await db.create_venue(name, key_id, digest), key
        finally:
            await db.close()

    return asyncio.run(create())


@dataclass
class SharedServer:
    """One server for a whole test module, with two venues' keys."""

    server: ServerProcess
    settings: Settings
    key: str
    other_key: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def shared_server(
    redis_server: EmbeddedRedis,
    pg_server: EmbeddedPostgres,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SharedServer]:
    name = f"m_{secrets.token_hex(6)}"
    dsn = pg_server.create_database(name, template=TEMPLATE_DB)
    tmp = tmp_path_factory.mktemp("shared")
    settings = Settings(
        redis_url=Secret(redis_server.url),
        database_url=Secret(dsn),
        secret_key=Secret(SECRET_KEY),
        data_dir=tmp,
        redis_prefix=f"m{secrets.token_hex(4)}",
        demo=False,
    )
    _, key = create_venue_sync(dsn, "Venue A")
    _, other = create_venue_sync(dsn, "Venue B")
    server = ServerProcess(server_env(settings))
    server.log_path = tmp / "server.log"
    server.start()
    yield SharedServer(server, settings, key, other)
    server.stop()
    pg_server.drop_database(name)
    assert "Traceback" not in server.log_text(), server.log_text()[-4000:]


@pytest.fixture
def start_server(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(node_settings: Settings | None = None, **extra: str) -> ServerProcess:
        """A node on `settings`, or on `node_settings` (other services), with `extra` env."""
        server = ServerProcess(server_env(node_settings or settings, **extra))
        server.log_path = tmp_path / f"server-{len(started)}.log"
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:  # all of them, before a failed check below can skip one
        server.stop()
    for server in started:
        tail = server.log_text()
        assert "Traceback" not in tail, tail[-4000:]
