"""`docs/asyncapi.yaml` against what a real server sends: every frame of a watch's whole life, in
JSON and msgpack, the staff console's and the board's frames, and the error frames, validated
against the document's message schemas."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import msgpack
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ROOT, SharedServer

DOC_PATH = ROOT / "docs" / "asyncapi.yaml"
DOC_URI = "urn:vqueue:asyncapi"


def load_doc(path: Path = DOC_PATH) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def validators(doc: dict[str, Any]) -> dict[str, Draft202012Validator]:
    """A validator per message `type`, from the payloads of the channel's messages."""
    registry: Registry[Any] = Registry().with_resource(
        DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    out = {}
    for message_ref in doc["channels"]["live"]["messages"].values():
        payload_ref = resolve(doc, message_ref["$ref"])["payload"]["$ref"]
        kind = resolve(doc, payload_ref)["properties"]["type"]["const"]
        out[kind] = Draft202012Validator({"$ref": DOC_URI + payload_ref}, registry=registry)
    return out


def test_the_document_hangs_together() -> None:
    doc = load_doc()
    assert doc["asyncapi"].startswith("3.")
    channel = doc["channels"]["live"]
    assert channel["address"] == "/v1/ws"
    for name, op in doc["operations"].items():
        assert resolve(doc, op["channel"]["$ref"]) is channel, name
        for message in op["messages"]:
            assert resolve(doc, message["$ref"]) in channel["messages"].values(), name
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    sent = {
        m["$ref"].rsplit("/", 1)[1]
        for op in doc["operations"].values()
        for m in op["messages"]
        if op["action"] == "send"
    }
    assert sent == {"position", "called", "status", "queue", "moved", "line", "board", "error"}
    received = {
        m["$ref"].rsplit("/", 1)[1]
        for op in doc["operations"].values()
        for m in op["messages"]
        if op["action"] == "receive"
    }
    assert received == {"watch", "leave", "watch_queue", "watch_board"}


class Recorder:
    """Every frame and close code a real server sends on the connections opened through it."""

    def __init__(self, server: SharedServer) -> None:
        self.url = server.server.ws_url
        self.frames: list[dict[str, Any]] = []
        self.close_codes: list[int] = []

    async def open(self, subprotocol: str = "vq1.json") -> ClientConnection:
        ws = await connect(self.url, subprotocols=[subprotocol])  # type: ignore[list-item]
        assert ws.response is not None and ws.response.headers.get("X-Request-ID")
        return ws

    async def read(self, ws: ClientConnection, until: str | None = None) -> dict[str, Any]:
        """The next frame (or the first of type `until`), decoded and recorded."""
        while True:
            raw = await ws.recv()
            frame = msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
            self.frames.append(frame)
            if until is None or frame["type"] == until:
                return dict(frame)

    async def closed(self, ws: ClientConnection) -> None:
        try:
            while True:
                await self.read(ws)
        except ConnectionClosed:
            pass
        assert ws.close_code is not None
        self.close_codes.append(ws.close_code)


async def test_real_frames_match_the_message_schemas(shared_server: SharedServer) -> None:
    doc = load_doc()
    rec = Recorder(shared_server)
    staff = {"Authorization": f"Bearer {shared_server.key}"}
    queue = f"a-{secrets.token_hex(3)}"
    async with httpx.AsyncClient(base_url=shared_server.url, timeout=10) as http:
        assert (await http.put(f"/v1/queues/{queue}", json={}, headers=staff)).status_code == 201
        tickets = [(await http.post(f"/v1/queues/{queue}/tickets")).json() for _ in range(3)]
        first, second, third = [await rec.open() for _ in range(3)]
        second_packed = await rec.open("vq1.msgpack")
        for ws, t in ((first, tickets[0]), (second, tickets[1]), (second_packed, tickets[1])):
            watch = {"type": "watch", "token": t["token"]}
            packed = ws.subprotocol == "vq1.msgpack"
            await ws.send(msgpack.packb(watch) if packed else json.dumps(watch))
            assert (await rec.read(ws, until="position"))["type"] == "position"
        r = await http.post(
            f"/v1/queues/{queue}/call-next", json={"counter": "desk 2"}, headers=staff
        )
        assert r.status_code == 200
        await rec.read(first, until="called")
        assert (await rec.read(second, until="position"))["position"] == 1
        await http.post(f"/v1/tickets/{tickets[0]['ticket_id']}/served", headers=staff)
        await rec.read(first, until="status")
        await rec.closed(first)
        await second.send(json.dumps({"type": "leave"}))
        await rec.read(second, until="status")
        await rec.closed(second)
        await rec.read(second_packed, until="status")
        await rec.closed(second_packed)
        # Errors: an unknown message, a forged token, a binary frame on vq1.json.
        await third.send(json.dumps({"type": "dance"}))
        await rec.closed(third)
        forged = await rec.open()
        await forged.send(json.dumps({"type": "watch", "token": tickets[2]["token"] + "x"}))
        await rec.closed(forged)
        binary = await rec.open()
        await binary.send(b"\x01\x02")
        await rec.closed(binary)
    check = validators(doc)
    for frame in rec.frames:
        errors = [e.message for e in check[frame["type"]].iter_errors(frame)]
        assert errors == [], (frame, errors)
    assert {f["type"] for f in rec.frames} == {"position", "called", "status", "queue", "error"}
    assert {f["code"] for f in rec.frames if f["type"] == "error"} == {
        "bad_message",
        "unauthorized",
        "unsupported_frame",
    }
    assert {f["status"] for f in rec.frames if f["type"] == "status"} == {"served", "left"}
    documented = {int(c) for c in doc["channels"]["live"]["x-close-codes"]}
    assert sorted(set(rec.close_codes)) == [1000, 1003, 1008]
    assert set(rec.close_codes) <= documented


async def test_staff_line_and_board_frames_match_the_message_schemas(
    shared_server: SharedServer,
) -> None:
    doc = load_doc()
    check = validators(doc)
    rec = Recorder(shared_server)
    staff = {"Authorization": f"Bearer {shared_server.key}"}
    queue = f"a-{secrets.token_hex(3)}"
    sent: list[dict[str, Any]] = []

    async def first(ws: ClientConnection, message: dict[str, Any]) -> None:
        sent.append(message)
        packed = ws.subprotocol == "vq1.msgpack"
        await ws.send(msgpack.packb(message) if packed else json.dumps(message))

    async with httpx.AsyncClient(base_url=shared_server.url, timeout=10) as http:
        made = await http.put(f"/v1/queues/{queue}", json={"board_names": True}, headers=staff)
        assert made.status_code == 201
        await http.post(f"/v1/queues/{queue}/tickets", json={"name": "Ann"})
        await http.post(f"/v1/queues/{queue}/tickets", json={"name": "Bob"})
        line, board, packed_board = (
            await rec.open(),
            await rec.open(),
            await rec.open("vq1.msgpack"),
        )
        await first(line, {"type": "watch_queue", "queue": queue, "key": shared_server.key})
        assert len((await rec.read(line, until="line"))["waiting"]) == 2
        for ws in (board, packed_board):
            await first(ws, {"type": "watch_board", "queue": queue})
            await rec.read(ws, until="board")
        r = await http.post(f"/v1/queues/{queue}/call-next", json={"counter": "3"}, headers=staff)
        assert r.status_code == 200
        while not (await rec.read(line, until="line"))["called"]:
            pass
        for ws in (board, packed_board):
            while not (await rec.read(ws, until="board"))["called"]:
                pass
        await http.post(f"/v1/queues/{queue}/pause", json={}, headers=staff)
        for ws in (line, board, packed_board):
            assert (await rec.read(ws, until="queue"))["state"] == "paused"
            await ws.close()
        # Refusals: another venue's key, a key that is no key, an unknown queue's board.
        refusals = [
            {"type": "watch_queue", "queue": queue, "key": shared_server.other_key},
            {"type": "watch_queue", "queue": queue, "key": "vqk_0123456789abcdef_" + "x" * 43},
            {"type": "watch_board", "queue": f"none-{secrets.token_hex(3)}"},
        ]
        for message in refusals:
            ws = await rec.open()
            await first(ws, message)
            await rec.closed(ws)
    for message in sent:
        assert [e.message for e in check[message["type"]].iter_errors(message)] == []
    for frame in rec.frames:
        errors = [e.message for e in check[frame["type"]].iter_errors(frame)]
        assert errors == [], (frame, errors)
    assert {f["type"] for f in rec.frames} == {"line", "board", "queue", "error"}
    assert any(
        c.get("name") == "Ann" for f in rec.frames if f["type"] == "board" for c in f["called"]
    )
    assert [f["code"] for f in rec.frames if f["type"] == "error"] == [
        "forbidden",
        "unauthorized",
        "queue_not_found",
    ]
    assert rec.close_codes == [1008, 1008, 1008]


def test_a_frame_the_document_does_not_describe_fails(tmp_path: Path) -> None:
    """The check has teeth: an extra field, or a wrong type, is caught."""
    check = validators(load_doc())
    good = {
        "type": "position",
        "ticket_id": "q-1.4",
        "position": 2,
        "waiting": 5,
        "eta_s": None,
        "seq": 9,
    }
    assert list(check["position"].iter_errors(good)) == []
    assert list(check["position"].iter_errors({**good, "secret": 1})) != []
    assert list(check["position"].iter_errors({**good, "position": "2"})) != []
    assert list(check["status"].iter_errors({**good, "type": "status", "status": "gone"})) != []
