"""Start the embedded Redis and PostgreSQL when REDIS_URL / DATABASE_URL are not set."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field, replace

from server.config import Secret, Settings
from server.embedded import EmbeddedPostgres, EmbeddedRedis
from server.supervisor import Supervisor

log = logging.getLogger(__name__)


@dataclass
class RunningServices:
    settings: Settings  # with the embedded services' URLs filled in
    redis: EmbeddedRedis | None
    postgres: EmbeddedPostgres | None
    supervisor: Supervisor | None = field(default=None, init=False)

    def supervise(self) -> None:
        """Restart whichever child dies from now on (`vqueue serve`: a long-lived node)."""
        children = [service for service in (self.redis, self.postgres) if service is not None]
        if children and self.supervisor is None:
            self.supervisor = Supervisor(children)
            self.supervisor.start()

    def stop(self) -> None:
        if self.supervisor is not None:  # first, or it would restart what is being stopped
            self.supervisor.stop()
        for service in (self.redis, self.postgres):
            if service is not None:
                service.stop()


def start_embedded(settings: Settings) -> RunningServices:
    """Start whichever of Redis and PostgreSQL has no URL, under `settings.data_dir`."""
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    # Owner only; a PostgreSQL run as another user (we are root) needs the search bit to pass.
    data.chmod(0o711 if os.geteuid() == 0 and settings.database_url is None else 0o700)
    redis = postgres = None
    try:
        if settings.redis_url is None:
            redis = EmbeddedRedis(data / "redis")
            url = redis.start()
            settings = replace(settings, redis_url=Secret(url))
            shown = f"127.0.0.1:{redis.port}"
            print(f"vqueue: embedded Redis at {shown} (data in {data / 'redis'})", file=sys.stderr)
        if settings.database_url is None:
            postgres = EmbeddedPostgres(data / "postgres")
            dsn = postgres.start()
            settings = replace(settings, database_url=Secret(dsn))
            where = f"on port {postgres.port} (data in {data / 'postgres'})"
            print(f"vqueue: embedded PostgreSQL {where}", file=sys.stderr)
    except BaseException:
        for service in (redis, postgres):
            if service is not None:
                service.stop()
        raise
    return RunningServices(settings, redis, postgres)
