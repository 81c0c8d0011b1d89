"""The bare join: the least a join endpoint can do, as the reference vqueue's joins are held to.

A Starlette endpoint under the same uvicorn as `vqueue serve` (uvloop, httptools, no access
log) that parses the JSON body and runs one Lua script, the writes every join needs (INCR the
queue's seq, ZADD the line, HSET the ticket, XADD the event, PUBLISH the notice), and answers
201. No token, no validation beyond the JSON, no persister: what vqueue adds on top of this is
what `loadtest.bench_joins` measures.

Run: python -m loadtest.barejoin --port 8001 --redis redis://127.0.0.1:6379/1
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import AsyncIterator

import orjson
import redis.asyncio as aioredis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# KEYS: seq, line, ticket prefix, stream, channel. ARGV: name, time (ms).
JOIN_LUA = """
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], seq, seq)
redis.call('HSET', KEYS[3] .. seq, 'number', seq, 'name', ARGV[1], 'status', 'waiting',
           'joined_at', ARGV[2])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 100000, '*', 'kind', 'joined', 'seq', seq)
redis.call('PUBLISH', KEYS[5], seq)
return seq
"""
PREFIX = "barejoin:"


def create_app(redis_url: str) -> Starlette:
    client = aioredis.Redis.from_url(redis_url)
    script = client.register_script(JOIN_LUA)

    async def join(request: Request) -> Response:
        queue = request.path_params["queue"]
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return Response(b'{"error":"bad_json"}', 400, media_type="application/json")
        name = body.get("name", "") if isinstance(body, dict) else ""
        base = f"{PREFIX}{queue}:"
        keys = [base + "seq", base + "line", base + "t:", base + "events", base + "notices"]
        seq = await script(keys=keys, args=[str(name), int(time.time() * 1000)])
        payload = orjson.dumps({"queue": queue, "number": int(seq), "status": "waiting"})
        return Response(payload, 201, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    routes = [Route("/v1/queues/{queue}/tickets", join, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.barejoin", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="a Redis URL (its keys start barejoin:)")
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.redis),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
