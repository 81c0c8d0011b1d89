"""`vqueue key create|list|revoke`: staff keys from the command line, the same rules as the API."""

from __future__ import annotations

import argparse
import asyncio

import orjson

from server.config import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p_key = sub.add_parser("key", help="manage staff keys")
    key_sub = p_key.add_subparsers(dest="key_command", required=True)
    p_create = key_sub.add_parser("create", help="create a key and print it (shown once)")
    p_create.add_argument("venue_id")
    p_create.add_argument("--role", choices=("staff", "admin"), default="staff")
    p_create.add_argument("--label", default="")
    p_create.add_argument("--json", action="store_true")
    p_list = key_sub.add_parser("list", help="list a venue's live keys")
    p_list.add_argument("venue_id")
    p_list.add_argument("--json", action="store_true")
    p_revoke = key_sub.add_parser("revoke", help="revoke a key on every node")
    p_revoke.add_argument("key_id")


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from server.auth import new_staff_key
    from server.db import Database
    from server.db.keys import KeyTable
    from server.errors import ApiError
    from server.keyroutes import key_json
    from server.store import KeyRing, Store

    assert settings.database_url is not None and settings.redis_url is not None
    db = await Database.connect(settings.database_url.reveal(), max_size=2)
    store = Store(settings.redis_url.reveal(), settings.redis_prefix)
    table = KeyTable(db)
    try:
        if args.key_command == "create":
            key_id, key, digest = new_staff_key()
            try:
                row = await table.create(args.venue_id, key_id, digest, args.role, args.label[:100])
            except ApiError as exc:
                print(f"vqueue: {exc.message}")
                return 1
            out = {"key_id": row.key_id, "staff_key": key, "label": row.label, "role": row.role}
            print(orjson.dumps(out).decode() if args.json else f"{row.role} key: {key}")
        elif args.key_command == "list":
            rows = [key_json(r) for r in await table.of_venue(args.venue_id)]
            if args.json:
                print(orjson.dumps(rows).decode())
            for r in [] if args.json else rows:
                print(f"{r['key_id']}  {r['role']:5}  {r['label']!r}  used {r['last_used_at']}")
        else:
            try:
                row = await table.revoke(args.key_id)
            except ApiError as exc:
                print(f"vqueue: {exc.message}")
                return 1
            await KeyRing(store).revoke(row.key_id)
            print(f"key {row.key_id} revoked")
        return 0
    finally:
        await store.close()
        await db.close()


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))
