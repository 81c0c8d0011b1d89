"""WebSocket upgrades take turns (server.httpprotocol): a batch per turn of the event loop, so a
reconnect storm's handshakes cannot hold the loop, and a staff call with it, for seconds."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any, cast

from websockets.asyncio.client import connect

from server.httpprotocol import LimitedHttpProtocol, Upgrades, upgrades_of
from tests.conftest import SharedServer
from tests.server.test_ws import closed_with, next_message


class Waiting:
    def __init__(self, number: int, done: list[int]) -> None:
        self.number, self.done = number, done

    def upgrade_now(self) -> None:
        self.done.append(self.number)


async def test_upgrades_are_handed_over_a_batch_per_turn_in_order() -> None:
    done: list[int] = []
    upgrades = Upgrades(per_turn=3)
    for number in range(7):
        upgrades.add(cast(LimitedHttpProtocol, Waiting(number, done)))
    seen = []
    for _ in range(4):
        await asyncio.sleep(0)  # one turn of the loop
        seen.append(len(done))
    assert seen == [3, 6, 7, 7]
    assert done == list(range(7))


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
