"""WebSocket upgrades take turns (server.httpprotocol): a batch per turn of the event loop, so a
reconnect storm's handshakes cannot hold the loop, and a staff call with it, for seconds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from websockets.asyncio.client import connect

from server.httpprotocol import LimitedHttpProtocol, Upgrades, protocol_class, upgrades_of
from tests.conftest import SharedServer
from tests.server.test_ws import closed_with, next_message
from tests.server.threaded import RunningServer, eventually, serve_in_thread


class Waiting:
    def __init__(self, number: int, done: list[int]) -> None:
        self.number, self.done = number, done

    def upgrade_now(self) -> None:
        self.done.append(self.number)


def seven_waiting() -> tuple[Upgrades, list[int]]:
    """Upgrades of 3 a turn (1 while busy) with seven waiting; the numbers handed over."""
    done: list[int] = []
    upgrades = Upgrades(per_turn=3, per_turn_busy=1)
    for number in range(7):
        upgrades.add(cast(LimitedHttpProtocol, Waiting(number, done)))
    return upgrades, done


async def handed_over_after_turns(done: list[int], turns: int) -> list[int]:
    """How many were handed over after each of `turns` turns of the loop."""
    seen = []
    for _ in range(turns):
        await asyncio.sleep(0)  # one turn of the loop
        seen.append(len(done))
    return seen


async def test_upgrades_are_handed_over_a_batch_per_turn_in_order() -> None:
    _upgrades, done = seven_waiting()
    assert await handed_over_after_turns(done, 4) == [3, 6, 7, 7]
    assert done == list(range(7))


async def test_while_a_request_is_answered_fewer_are_handed_over_per_turn() -> None:
    upgrades, done = seven_waiting()
    upgrades.requests = 1
    busy = await handed_over_after_turns(done, 2)
    upgrades.requests = 0
    assert busy + await handed_over_after_turns(done, 2) == [1, 2, 5, 7]
    assert done == list(range(7))


HANG_S = 3.0


class Counting:
    """An app whose `/count` answers how many requests its loop is answering, itself included;
    `/hang` answers after a while, or never to a client that has gone."""

    def __init__(self) -> None:
        self.hanging = 0

    async def count(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(upgrades_of(asyncio.get_running_loop()).requests))

    async def hang(self, request: Request) -> PlainTextResponse:
        self.hanging += 1
        await asyncio.sleep(HANG_S)
        return PlainTextResponse("late")


@pytest.fixture
def counting() -> Iterator[tuple[Counting, RunningServer]]:
    app = Counting()
    routes = [Route("/count", app.count), Route("/hang", app.hang)]
    running = serve_in_thread(Starlette(routes=routes), http=protocol_class(30.0))
    yield app, running
    running.stop()


async def test_a_request_counts_until_answered_or_its_client_goes(
    counting: tuple[Counting, RunningServer],
) -> None:
    app, running = counting
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.port}") as http:

        async def count() -> str:
            return (await http.get("/count")).text

        assert [await count() for _ in range(3)] == ["1", "1", "1"]  # one kept-alive connection
        _reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"GET /hang HTTP/1.1\r\nhost: x\r\n\r\n")
        await eventually(lambda: app.hanging == 1)
        assert await count() == "2"
        writer.close()  # gone before its answer, which comes after HANG_S
        await writer.wait_closed()
        counts = [await count()]
        while counts[-1] != "1" and len(counts) < 50:  # well within HANG_S
            await asyncio.sleep(0.02)
            counts.append(await count())
        assert counts[-1] == "1"


async def test_a_loops_upgrades_do_not_keep_the_loop_alive() -> None:
    loop = asyncio.get_running_loop()
    assert upgrades_of(loop) is upgrades_of(loop)
    assert not any(value is loop for value in vars(upgrades_of(loop)).values())


def test_a_connection_closed_while_it_waited_is_not_handed_over() -> None:
    calls: list[str] = []

    def hand_over() -> bool:
        calls.append("hand over")
        return True

    waiting: Any = SimpleNamespace(
        transport=SimpleNamespace(is_closing=lambda: True),
        _hand_over_parsed=hand_over,
        parser=object(),
        _answering=0,
        _answered=lambda count: None,
    )
    LimitedHttpProtocol.upgrade_now(waiting)
    assert calls == [] and waiting.parser is None  # the parser's cycle is broken all the same


async def test_a_burst_of_upgrades_all_open_and_read(shared_server: SharedServer) -> None:
    """Four times a turn's batch at once: each is handed over, and reads its first message."""

    async def one() -> int | None:
        ws = await connect(shared_server.server.ws_url, subprotocols=["vq1.json"])  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "watch", "token": "forged.token"}))
        error = await next_message(ws, timeout_s=20.0)
        assert error["type"] == "error"
        return await closed_with(ws, timeout_s=20.0)

    codes = await asyncio.gather(*(one() for _ in range(256)))
    assert codes == [1008] * 256
