"""Unmodified asyncio code over WebSocketTransport: aiohttp's HTTP server protocol, asyncio's
StreamReaderProtocol, h11, and TLS layered on top with ``loop.start_tls``."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import h11
import pytest
import trustme
from aiohttp import web

import wsstream
from tests.streams.helpers import TIMEOUT
from wsstream.streams import WebSocketTransport, create_connection, open_connection

WsServerFactory = Callable[..., Awaitable[str]]


async def hello(request: web.BaseRequest) -> web.StreamResponse:
    sha, size = hashlib.sha256(), 0
    async for chunk in request.content.iter_any():
        sha.update(chunk)
        size += len(chunk)
    return web.Response(text=f"{request.method} {request.path} {size} {sha.hexdigest()}")


@pytest.fixture
async def aiohttp_over_websocket(ws_server: WsServerFactory) -> AsyncIterator[str]:
    """A wsstream server whose every connection runs aiohttp's own HTTP/1.1 server protocol, unmodified."""
    http_server = web.Server(hello)

    async def handler(ws: wsstream.WebSocket) -> None:
        transport = WebSocketTransport(ws, http_server())
        await transport.wait_closed()

    yield await ws_server(handler)
    await http_server.shutdown(1.0)


async def h11_exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, requests: list[tuple[str, str, bytes]]
) -> list[tuple[int, bytes]]:
    """Send each (method, target, body) on one keep-alive HTTP/1.1 connection with h11; return (status, body)s."""
    conn = h11.Connection(h11.CLIENT)
    results: list[tuple[int, bytes]] = []
    for method, target, body in requests:
        headers = [("Host", "ws-tunnel"), ("Content-Length", str(len(body)))]
        writer.write(conn.send(h11.Request(method=method, target=target, headers=headers)))
        writer.write(conn.send(h11.Data(data=body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
        status, parts = 0, []
        for _ in range(100_000):
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await asyncio.wait_for(reader.read(65536), TIMEOUT))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
        results.append((status, b"".join(parts)))
        conn.start_next_cycle()
    return results


def expected(method: str, path: str, body: bytes) -> bytes:
    return f"{method} {path} {len(body)} {hashlib.sha256(body).hexdigest()}".encode()


REQUESTS = [("GET", "/a", b""), ("POST", "/upload", b"x" * 3_000_000), ("PUT", "/b?q=1", b"tiny")]


async def test_h11_client_over_open_connection_to_aiohttp_server(aiohttp_over_websocket: str) -> None:
    reader, writer = await open_connection(aiohttp_over_websocket, proxy=None)
    results = await h11_exchange(reader, writer, REQUESTS)
    assert results == [(200, expected(m, t.partition("?")[0], b)) for m, t, b in REQUESTS]
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), TIMEOUT)


async def test_stream_reader_protocol_over_create_connection(aiohttp_over_websocket: str) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, protocol = await create_connection(
        lambda: asyncio.StreamReaderProtocol(reader), aiohttp_over_websocket, proxy=None
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    results = await h11_exchange(reader, writer, REQUESTS[:2])
    assert results == [(200, expected(m, t, b)) for m, t, b in REQUESTS[:2]]
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), TIMEOUT)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="StreamWriter.start_tls() is new in Python 3.11")
async def test_tls_inside_the_websocket_stream_with_start_tls(ws_server: WsServerFactory) -> None:
    """asyncio's own SSLProtocol over WebSocketTransport, both sides: the transport honours its whole contract."""
    ca = trustme.CA()
    cert = ca.issue_cert("inner.test")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    loop = asyncio.get_running_loop()
    payload = bytes(range(256)) * 4096  # 1 MiB

    async def handler(ws: wsstream.WebSocket) -> None:
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        transport = WebSocketTransport(ws, protocol)
        tls_transport = await loop.start_tls(transport, protocol, server_ctx, server_side=True)
        assert tls_transport is not None
        writer = asyncio.StreamWriter(tls_transport, protocol, reader, loop)
        data = await reader.readexactly(len(payload))
        writer.write(hashlib.sha256(data).digest())
        await writer.drain()
        await reader.read()  # the client's close_notify / Close
        writer.close()

    reader, writer = await open_connection(await ws_server(handler), proxy=None)
    await asyncio.wait_for(writer.start_tls(client_ctx, server_hostname="inner.test"), TIMEOUT)
    assert writer.get_extra_info("ssl_object").version().startswith("TLS")
    writer.write(payload)
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(32), TIMEOUT) == hashlib.sha256(payload).digest()
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
