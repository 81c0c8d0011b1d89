"""The `vqueue` command: serve, migrate, venue create, recover, loadtest."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import orjson

from server import keycli, logs
from server.config import ConfigError, Secret, Settings

log = logging.getLogger("vqueue")

DEMO_VENUE = "Demo venue"
DEMO_QUEUE = "demo"


def _secret_file(path: Path) -> str:
    """Read, or create with mode 0600, a secret kept in the data folder."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value


def with_secret(settings: Settings, shared: bool) -> Settings:
    """Fill in the token secret from the data folder; `shared`: other nodes may run too."""
    if settings.secret_key is not None:
        return settings
    if shared:
        log.warning(
            "VQ_SECRET_KEY is unset: using one from %s; every node must share it", settings.data_dir
        )
    return replace(settings, secret_key=Secret(_secret_file(settings.data_dir / "secret_key")))


async def _migrate(settings: Settings) -> list[str]:
    from server.db import Database

    assert settings.database_url is not None
    db = await Database.connect(settings.database_url.reveal(), max_size=2)
    try:
        return await db.migrate()
    finally:
        await db.close()


async def create_venue(settings: Settings, name: str) -> tuple[str, str]:
    from server.auth import new_staff_key
    from server.db import Database

    assert settings.database_url is not None
    db = await Database.connect(settings.database_url.reveal(), max_size=2)
    try:
        key_id, key, digest = new_staff_key()
        venue_id = await db.create_venue(name, key_id, digest)
        return venue_id, key
    finally:
        await db.close()


async def _demo(settings: Settings) -> str:
    """Make sure the demo venue and queue exist; return the demo staff key."""
    from server.db import Database
    from server.store import Store

    key_file = settings.data_dir / "demo_staff_key"
    assert settings.database_url is not None and settings.redis_url is not None
    db = await Database.connect(settings.database_url.reveal(), max_size=2)
    store = Store(
        settings.redis_url.reveal(), settings.redis_prefix, cluster=settings.redis_cluster
    )
    try:
        venue_id = await db.venue_by_name(DEMO_VENUE)
        if venue_id is None or not key_file.exists():
            venue_id, key = await create_venue(settings, DEMO_VENUE)
            key_file.write_text(key)
            key_file.chmod(0o600)
        row = await db.upsert_queue(DEMO_QUEUE, venue_id, "Demo queue")
        if row.venue_id == venue_id:
            await store.upsert_queue(DEMO_QUEUE, venue_id, row.name)
        return key_file.read_text().strip()
    finally:
        await store.close()
        await db.close()


def serve(settings: Settings, host: str, port: int) -> int:
    import uvicorn

    from server.app import create_app
    from server.bootstrap import start_embedded
    from server.httpprotocol import protocol_class

    services = start_embedded(settings) if settings.embedded else None
    try:
        if services is not None:
            settings = services.settings
        settings = with_secret(settings, shared=services is None)
        asyncio.run(_migrate(settings))
        if settings.demo and services is not None:
            key = asyncio.run(_demo(settings))
            base = f"http://{host}:{port}"
            print(f"vqueue: data folder {settings.data_dir.resolve()}", flush=True)
            print(f"vqueue: demo queue   {base}/q/{DEMO_QUEUE}", flush=True)
            print(f"vqueue: staff        {base}/staff/{DEMO_QUEUE}", flush=True)
            print(f"vqueue: staff key    {key}", flush=True)
        if services is not None:
            services.supervise()
        embedded_redis = services.redis if services is not None else None
        uvicorn.run(
            create_app(settings, None if embedded_redis is None else embedded_redis.launches),
            host=host,
            port=port,
            # uvloop, with listeners that accept every waiting connection (server/listener.py)
            loop="server.listener:new_event_loop",
            backlog=settings.listen_backlog,
            http=protocol_class(settings.http_request_timeout_s),
            ws="server.wsprotocol:WebSocketProtocol",
            ws_max_size=64 * 1024,
            ws_per_message_deflate=False,
            ws_ping_interval=settings.ws_ping_s,
            ws_ping_timeout=settings.ws_ping_s,
            lifespan="on",
            log_level=settings.log_level.lower(),
            log_config=None,  # uvicorn's loggers propagate to ours (server.logs)
            access_log=False,
            timeout_graceful_shutdown=5,
            # The client address is resolved by server.clientaddr with VQ_TRUSTED_PROXIES;
            # uvicorn's own rewriting would trust X-Forwarded-For from any local peer.
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=int(settings.http_keepalive_s) or 1,
        )
    finally:
        if services is not None:
            services.stop()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqueue", description="Real-time virtual queue server.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the server")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8000)
    sub.add_parser("migrate", help="apply the SQL migrations to DATABASE_URL")
    p_venue = sub.add_parser("venue", help="manage venues")
    venue_sub = p_venue.add_subparsers(dest="venue_command", required=True)
    p_create = venue_sub.add_parser("create", help="create a venue and print its first staff key")
    p_create.add_argument("name")
    p_create.add_argument("--json", action="store_true", help="print {venue_id, staff_key}")
    keycli.add_parser(sub)
    sub.add_parser("recover", help="rebuild live queues in Redis from the PostgreSQL event log")
    sub.add_parser(
        "loadtest", help="run the load-test harness (see vqueue loadtest --help)", add_help=False
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["loadtest"]:
        from loadtest.cli import main as loadtest_main

        return loadtest_main(args_list[1:])
    args = _parser().parse_args(args_list)
    try:
        settings = Settings.from_environ()
    except ConfigError as exc:
        print(f"vqueue: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if args.command == "serve":
        return serve(settings, args.host, args.port)
    if settings.embedded:
        from server.bootstrap import start_embedded

        running = start_embedded(settings)
        settings = running.settings
    else:
        running = None
    try:
        return _offline(args, settings)
    finally:
        if running is not None:
            running.stop()


def _offline(args: argparse.Namespace, settings: Settings) -> int:
    """Commands that run against the stores and exit."""
    if args.command == "migrate":
        applied = asyncio.run(_migrate(settings))
        print(
            f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else "")
        )
        return 0
    if args.command == "venue":
        asyncio.run(_migrate(settings))
        venue_id, key = asyncio.run(create_venue(settings, args.name))
        if args.json:
            print(orjson.dumps({"venue_id": venue_id, "staff_key": key}).decode())
        else:
            print(f"venue {args.name!r} created: {venue_id}")
            print(f"staff key (shown once, keep it safe): {key}")
        return 0
    if args.command == "key":
        asyncio.run(_migrate(settings))
        return keycli.run(args, settings)
    if args.command == "recover":
        from server.recovery import recover_all

        settings = with_secret(settings, shared=False)
        count = asyncio.run(recover_all(settings))
        print(f"recovered {count} queue(s)")
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
