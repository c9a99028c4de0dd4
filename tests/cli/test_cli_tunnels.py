"""``wsstream -l --forward`` (websockify) and ``wsstream --tcp-listen`` (TCP -> WebSocket), end to end."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

import pytest

import wsstream
from tests.cli.cli_support import TIMEOUT, cli, finish, free_port, listening_port

pytestmark = pytest.mark.timeout(30)


async def _tcp_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def tcp_echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_tcp_echo, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_forward_to_a_tcp_echo_server(tcp_echo_port: int) -> None:
    payload = os.urandom(3 * 2**20)
    async with cli("-l", "127.0.0.1:0", "--forward", f"127.0.0.1:{tcp_echo_port}") as server:
        port = await listening_port(server)
        reader, writer = await wsstream.open_connection(f"ws://127.0.0.1:{port}/", proxy=None)

        async def send() -> None:
            for offset in range(0, len(payload), 50_000):
                writer.write(payload[offset:offset + 50_000])
                await writer.drain()

        sender = asyncio.ensure_future(send())
        echoed = await asyncio.wait_for(reader.readexactly(len(payload)), TIMEOUT)
        await sender
        writer.close()
        await writer.wait_closed()
        status, err = await finish(server, stop=True)
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
    assert (status, err) == (0, b"")


async def test_forward_sends_binary_messages_and_tcp_eof_closes_1000() -> None:
    async def hello_and_bye(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x00hello from tcp")
        await writer.drain()
        writer.close()  # TCP EOF: the WebSocket is closed normally

    tcp = await asyncio.start_server(hello_and_bye, "127.0.0.1", 0)
    async with tcp, cli("-l", "127.0.0.1:0", "--forward", f"127.0.0.1:{tcp.sockets[0].getsockname()[1]}") as server:
        port = await listening_port(server)
        async with wsstream.connect(f"ws://127.0.0.1:{port}/", proxy=None) as ws:
            received = b""
            with pytest.raises(wsstream.ConnectionClosedOK):
                while True:
                    message = await asyncio.wait_for(ws.recv(), TIMEOUT)
                    assert isinstance(message, bytes)
                    received += message
            assert ws.close_code == 1000
        await finish(server, stop=True)
    assert received == b"\x00hello from tcp"


async def test_forward_to_a_closed_port_closes_1011() -> None:
    async with cli("-l", "127.0.0.1:0", "--forward", f"127.0.0.1:{free_port()}") as server:
        port = await listening_port(server)
        async with wsstream.connect(f"ws://127.0.0.1:{port}/", proxy=None) as ws:
            with pytest.raises(wsstream.ConnectionClosedError) as closed:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
        status, err = await finish(server, stop=True)
    assert closed.value.code == 1011
    assert status == 0
    assert b"connection refused" in err


async def test_tcp_listen_tunnels_tcp_clients_to_a_websocket_server(echo_uri: str) -> None:
    payload = os.urandom(2 * 2**20)
    async with cli("--no-proxy", "--tcp-listen", "127.0.0.1:0", echo_uri) as tunnel:
        port = await listening_port(tunnel)
        for _ in range(2):  # a new WebSocket per TCP connection
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            echoed = await asyncio.wait_for(reader.readexactly(len(payload)), TIMEOUT)
            writer.close()
            await writer.wait_closed()
            assert echoed == payload
        status, err = await finish(tunnel, stop=True)
    assert (status, err) == (0, b"")


async def test_tcp_listen_through_forward_end_to_end(tcp_echo_port: int) -> None:
    """TCP client -> wsstream --tcp-listen -> WebSocket -> wsstream -l --forward -> TCP echo server."""
    payload = os.urandom(1 << 20)
    async with cli("-l", "127.0.0.1:0", "--forward", f"127.0.0.1:{tcp_echo_port}") as forward:
        ws_port = await listening_port(forward)
        async with cli("--no-proxy", "--tcp-listen", "127.0.0.1:0", f"ws://127.0.0.1:{ws_port}/") as tunnel:
            tcp_port = await listening_port(tunnel)
            reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
            writer.write(payload)
            assert await asyncio.wait_for(reader.readexactly(len(payload)), TIMEOUT) == payload
            writer.close()
            await writer.wait_closed()
            assert await finish(tunnel, stop=True) == (0, b"")
        assert await finish(forward, stop=True) == (0, b"")


async def test_tcp_listen_oneshot_reports_an_unreachable_url() -> None:
    dead = free_port()
    async with cli("--no-proxy", "--oneshot", "--tcp-listen", "127.0.0.1:0", f"ws://127.0.0.1:{dead}/") as tunnel:
        port = await listening_port(tunnel)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # The tunnel could not be built: the TCP connection ends (reset or EOF), and the run fails.
        with pytest.raises(ConnectionError):
            if await asyncio.wait_for(reader.read(1), TIMEOUT) == b"":
                raise ConnectionResetError
        writer.close()
        status, err = await finish(tunnel)
    assert status == 1
    assert err.endswith(f"wsstream: connection refused: 127.0.0.1:{dead}\n".encode())
