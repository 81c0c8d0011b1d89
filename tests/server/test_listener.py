"""server.listener: the node's loop accepts every waiting connection each time its listening
socket is ready, on a real uvloop loop with real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from collections.abc import Iterator
from typing import Any, cast

import pytest

from server import listener
from server.listener import AcceptingServer, Loop, new_event_loop

WAITING = 300  # connections queued in the kernel before the server's first turn


class Echo(asyncio.Protocol):
    opened: list[asyncio.Transport] = []  # every test's server side, closed after each test

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        Echo.opened.append(self.transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = new_event_loop()
    try:
        yield running
    finally:
        running.run_until_complete(asyncio.sleep(0.05))  # hand-overs under way finish
        for transport in Echo.opened:
            transport.close()
        Echo.opened.clear()
        running.run_until_complete(asyncio.sleep(0.05))  # and so do the closes
        running.close()


@contextlib.contextmanager
def queue_of(
    loop: asyncio.AbstractEventLoop, per_turn: int
) -> Iterator[tuple[AcceptingServer, socket.socket, list[socket.socket]]]:
    """A server not yet serving, and `WAITING` connections the kernel has completed and queued
    on its listening socket."""
    listening = listener.listening_sockets("127.0.0.1", 0, 4096)
    port = listening[0].getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(WAITING)]
    server = AcceptingServer(loop, Echo, listening, per_turn=per_turn)
    try:
        yield server, listening[0], clients
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())
        for client in clients:
            client.close()


@pytest.mark.parametrize(("per_turn", "first_turn"), [(4096, WAITING), (10, 10)])
def test_each_time_the_listener_is_ready_it_accepts_what_waits_up_to_its_share(
    loop: asyncio.AbstractEventLoop, per_turn: int, first_turn: int
) -> None:
    """The point of it: libuv under uvloop accepts one connection each time."""
    with queue_of(loop, per_turn) as (server, listening, _clients):
        listening.setblocking(False)
        server._accept_waiting(listening)  # what the loop calls when the socket is ready
        assert server.accepted == first_turn
        while server.accepted < WAITING:  # each call takes its share until none is left
            before = server.accepted
            server._accept_waiting(listening)
            assert 0 < server.accepted - before <= per_turn
        server._accept_waiting(listening)  # an empty queue: nothing, and no error
        assert server.accepted == WAITING


def test_a_queue_of_connections_is_served_by_the_running_loop(
    loop: asyncio.AbstractEventLoop,
) -> None:
    with queue_of(loop, 4096) as (server, _listening, clients):
        loop.run_until_complete(server.start_serving())

        def echoed() -> list[bytes]:  # the clients block; the loop runs meanwhile
            for client in clients:
                client.sendall(b"!")
            return [client.recv(1) for client in clients]

        assert loop.run_until_complete(asyncio.to_thread(echoed)) == [b"!"] * WAITING
        assert server.accepted == WAITING


def test_connections_are_served_and_closing_stops_accepting(
    loop: asyncio.AbstractEventLoop,
) -> None:
    loop.run_until_complete(_served_then_closed())


async def _served_then_closed() -> None:
    running = asyncio.get_running_loop()
    assert isinstance(running, Loop)
    server = await running.create_server(Echo, "127.0.0.1", 0, backlog=64)
    assert isinstance(server, AcceptingServer)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello")
    assert await reader.readexactly(5) == b"hello"
    writer.close()
    server.close()
    await server.wait_closed()
    assert not server.is_serving()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


def test_the_listen_backlog_is_the_one_asked_for(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(_backlog_read_back())


async def _backlog_read_back() -> None:
    running = asyncio.get_running_loop()
    server = await running.create_server(Echo, "127.0.0.1", 0, backlog=77)
    try:
        port = server.sockets[0].getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            "ss", "-Hltn", "sport", "=", f":{port}", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        assert out.split()[2] == b"77"  # Send-Q of a listener: its backlog
    finally:
        server.close()


def test_tls_goes_to_uvloops_own_server(loop: asyncio.AbstractEventLoop) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server = loop.run_until_complete(loop.create_server(Echo, "127.0.0.1", 0, ssl=context))
    try:
        assert not isinstance(server, AcceptingServer)
    finally:
        server.close()


class OutOfDescriptors:
    """A listening socket whose accept() fails as when the process has no descriptor left."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.failures = 0

    def fileno(self) -> int:
        return self.real.fileno()

    def setblocking(self, flag: bool) -> None:
        self.real.setblocking(flag)

    def accept(self) -> Any:
        if self.failures < 1:
            self.failures += 1
            raise OSError(errno.EMFILE, "Too many open files")
        return self.real.accept()

    def close(self) -> None:
        self.real.close()


def test_out_of_descriptors_pauses_accepting_then_resumes(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listener, "RETRY_AFTER_S", 0.2)
    loop.run_until_complete(_paused_then_resumed())


async def _paused_then_resumed() -> None:
    running = asyncio.get_running_loop()
    real = listener.listening_sockets("127.0.0.1", 0, 64)[0]
    failing = OutOfDescriptors(real)
    server = AcceptingServer(running, Echo, [failing], per_turn=64)  # type: ignore[list-item]
    await server.start_serving()
    try:
        reader, writer = await asyncio.open_connection(*real.getsockname())
        await asyncio.sleep(0.1)
        assert (failing.failures, server.accepted) == (1, 0)  # waiting, not spinning
        writer.write(b"back")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"back"
        assert server.accepted == 1
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
