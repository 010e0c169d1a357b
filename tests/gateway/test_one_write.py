"""A response's head and body leave in one write (ADR 0025): the connection's transport over a
real TCP connection on the loopback, the bytes read by a real peer."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from gateway.http.protocol import OneWrite


class _Counted(asyncio.Transport):
    """The real transport, with the writes it was given counted."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def __getattribute__(self, name: str) -> Any:
        if name in ("transport", "writes", "write"):
            return object.__getattribute__(self, name)
        return getattr(object.__getattribute__(self, "transport"), name)


@asynccontextmanager
async def _connection() -> AsyncIterator[tuple[OneWrite, _Counted, socket.socket]]:
    """A server side transport wrapped in OneWrite, and the peer's socket."""
    loop = asyncio.get_running_loop()
    made: asyncio.Future[asyncio.Transport] = loop.create_future()

    class Protocol(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            made.set_result(transport)

    server = await loop.create_server(Protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    peer = socket.create_connection(("127.0.0.1", port))
    peer.settimeout(5)
    counted = _Counted(await made)
    try:
        yield OneWrite(counted, loop), counted, peer
    finally:
        peer.close()
        counted.transport.close()
        server.close()
        await server.wait_closed()


async def _read(peer: socket.socket, until: Callable[[bytes], bool]) -> bytes:
    received = b""
    while not until(received):
        chunk = await asyncio.to_thread(peer.recv, 65536)
        if not chunk:
            break
        received += chunk
    return received


async def _turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def test_a_head_and_its_body_are_one_write() -> None:
    async def scenario() -> None:
        async with _connection() as (transport, counted, peer):
            transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
            assert counted.writes == []  # held
            transport.write(b"hello")
            assert counted.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"]
            await _turn()  # the held write's turn finds nothing left to send
            assert len(counted.writes) == 1
            assert await _read(peer, lambda r: r.endswith(b"hello")) == counted.writes[0]

    asyncio.run(scenario())


def test_a_write_that_none_follows_leaves_at_the_next_turn() -> None:
    async def scenario() -> None:
        async with _connection() as (transport, counted, peer):
            transport.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            assert transport.get_write_buffer_size() >= 40  # what is held counts as buffered
            await _turn()
            assert counted.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]
            head = await _read(peer, lambda r: r.endswith(b"\r\n\r\n"))
            assert head.startswith(b"HTTP/1.1 200 OK")
            transport.writelines([b"5\r\n", b"hello\r\n"])  # a chunk later: held again
            transport.write(b"0\r\n\r\n")
            assert counted.writes[1:] == [b"5\r\nhello\r\n0\r\n\r\n"]
            assert await _read(peer, lambda r: r.endswith(b"0\r\n\r\n")) == counted.writes[1]

    asyncio.run(scenario())


def test_closing_and_ending_send_what_is_held_first() -> None:
    async def scenario() -> None:
        async with _connection() as (transport, _counted, peer):
            transport.write(b"answer before the end")
            assert transport.can_write_eof()
            transport.write_eof()  # a refused request's answer, then our side ends
            assert await _read(peer, lambda _r: False) == b"answer before the end"
        async with _connection() as (transport, _counted, peer):
            transport.write(b"last words")
            transport.close()
            assert transport.is_closing()
            assert await _read(peer, lambda _r: False) == b"last words"
            await _turn()  # the held write's turn, after the close: nothing, no error

    asyncio.run(scenario())


def test_an_abort_drops_what_is_held() -> None:
    async def scenario() -> None:
        async with _connection() as (transport, counted, peer):
            transport.write(b"never sent")
            transport.abort()
            await _turn()
            assert counted.writes == []
            assert await _read(peer, lambda _r: False) == b""

    asyncio.run(scenario())


def test_the_gateway_answers_whole_over_one_connection(client: httpx.Client) -> None:
    """Many requests over one kept-alive connection, reads and errors, each answered whole."""
    for n in range(30):
        response = client.get("metadata" if n % 3 else f"Patient/none-{n}")
        assert response.status_code == (200 if n % 3 else 404)
        assert response.json()["resourceType"] in ("CapabilityStatement", "OperationOutcome")
        assert int(response.headers["content-length"]) == len(response.content)
