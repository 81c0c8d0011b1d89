"""A tiny stand-in for vqueue that speaks the contract the harness uses (its events API holds
joins and calls only), and can lie.

`--skew N` adds N to every position it sends over WebSocket (the staff list stays true), so the
harness's final position check must see mismatches; `--lose-calls` never tells a called ticket's
watcher, so the harness must count lost calls. `GET /readyz` reports `frames_sent`, the
exact number of WebSocket messages this server sent, for the frame-count check.
Run: python tests/loadtest/fakeserver.py --port P [--skew N] [--lose-calls]
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


@dataclass
class Line:
    skew: int
    lose_calls: bool = False
    numbers: list[int] = field(default_factory=list)  # waiting, in order
    sockets: dict[int, set[WebSocket]] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    seq: int = 0
    frames_sent: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)  # the log: joins and calls

    async def send(self, ws: WebSocket, message: dict[str, Any]) -> None:
        try:
            await ws.send_text(orjson.dumps(message).decode())
        except (RuntimeError, WebSocketDisconnect):
            return
        self.frames_sent += 1

    def position_of(self, number: int) -> dict[str, Any]:
        return {
            "type": "position",
            "ticket_id": f"q.{number}",
            "position": self.numbers.index(number) + 1 + self.skew,
            "waiting": len(self.numbers),
            "eta_s": None,
            "seq": self.seq,
        }

    async def moved(self, after: int) -> None:
        for number in [n for n in self.numbers if n > after]:
            for ws in list(self.sockets.get(number, ())):
                await self.send(ws, self.position_of(number))


LINE = Line(skew=0)


async def summary(request: Request) -> Response:
    return JSONResponse({"queue": "q", "name": "q", "state": "open", "waiting": len(LINE.numbers)})


async def join(request: Request) -> Response:
    number = next(LINE.counter)
    LINE.numbers.append(number)
    LINE.seq += 1
    LINE.events.append({"seq": LINE.seq, "type": "joined", "ticket_id": f"q.{number}"})
    body = {
        "ticket_id": f"q.{number}",
        "token": str(number),
        "queue": "q",
        "status": "waiting",
        "position": len(LINE.numbers),
        "number": number,
        "waiting": len(LINE.numbers),
    }
    return JSONResponse(body, 201)


async def tickets(request: Request) -> Response:
    waiting = [
        {"ticket_id": f"q.{n}", "name": None, "position": i + 1, "number": n}
        for i, n in enumerate(LINE.numbers)
    ]
    return JSONResponse({"queue": "q", "waiting": waiting, "called": []})


async def call_next(request: Request) -> Response:
    if not LINE.numbers:
        return Response(status_code=204)
    number = LINE.numbers.pop(0)
    LINE.seq += 1
    LINE.events.append({"seq": LINE.seq, "type": "called", "ticket_id": f"q.{number}"})
    for ws in [] if LINE.lose_calls else list(LINE.sockets.get(number, ())):
        await LINE.send(
            ws, {"type": "called", "ticket_id": f"q.{number}", "counter": "x", "seq": LINE.seq}
        )
    await LINE.moved(number)
    return JSONResponse(
        {
            "ticket_id": f"q.{number}",
            "name": None,
            "counter": "x",
            "status": "called",
            "number": number,
        }
    )


async def events(request: Request) -> Response:
    after = int(request.query_params.get("after_seq", "0"))
    limit = int(request.query_params.get("limit", "100"))
    page = [e for e in LINE.events if e["seq"] > after][:limit]
    return JSONResponse({"events": page, "next_after_seq": page[-1]["seq"] if page else after})


async def readyz(request: Request) -> Response:
    return JSONResponse({"redis": True, "postgres": True, "frames_sent": LINE.frames_sent})


async def watch(ws: WebSocket) -> None:
    await ws.accept(subprotocol="vq1.json")
    first = orjson.loads(await ws.receive_text())
    number = int(first["token"])
    LINE.sockets.setdefault(number, set()).add(ws)
    try:
        if number in LINE.numbers:
            await LINE.send(ws, LINE.position_of(number))
        while True:
            message = orjson.loads(await ws.receive_text())
            if message.get("type") == "leave" and number in LINE.numbers:
                LINE.numbers.remove(number)
                LINE.seq += 1
                await LINE.send(
                    ws,
                    {
                        "type": "status",
                        "ticket_id": f"q.{number}",
                        "status": "left",
                        "seq": LINE.seq,
                    },
                )
                await ws.close(1000)
                await LINE.moved(number)
                return
    except WebSocketDisconnect:
        pass
    finally:
        LINE.sockets.get(number, set()).discard(ws)


app = Starlette(
    routes=[
        Route("/readyz", readyz),
        Route("/v1/queues/q", summary, methods=["GET"]),
        Route("/v1/queues/q/tickets", join, methods=["POST"]),
        Route("/v1/queues/q/tickets", tickets, methods=["GET"]),
        Route("/v1/queues/q/call-next", call_next, methods=["POST"]),
        Route("/v1/queues/q/events", events, methods=["GET"]),
        WebSocketRoute("/v1/ws", watch),
    ]
)

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--skew", type=int, default=0)
    parser.add_argument("--lose-calls", action="store_true")
    args = parser.parse_args()
    LINE.skew = args.skew
    LINE.lose_calls = args.lose_calls
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
    )
