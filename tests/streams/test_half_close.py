"""Half-close over the stream adapter: write_eof() ends one direction, the other keeps flowing (as with TCP)."""

from __future__ import annotations

import asyncio
import hashlib
import os

import wsstream


async def test_request_eof_then_response_both_ways() -> None:
    async def digest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Read everything the client sends until its EOF, then answer: needs the write side to stay open.
        data = await reader.read()
        writer.write(hashlib.sha256(data).hexdigest().encode())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await wsstream.start_server(digest, "127.0.0.1", 0)
    try:
        reader, writer = await wsstream.open_connection(f"ws://127.0.0.1:{server.port}/", proxy=None)
        payload = os.urandom(3 * 2**20 + 17)
        writer.write(payload)
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer == hashlib.sha256(payload).hexdigest().encode()
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


async def test_protocol_that_refuses_half_close_closes_at_eof() -> None:
    lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    class NoHalfClose(asyncio.Protocol):
        def eof_received(self) -> bool:
            return False  # like most protocols: the transport closes itself

        def connection_lost(self, exc: Exception | None) -> None:
            lost.set_result(exc)

    async def hold(ws: wsstream.WebSocket) -> None:
        await ws.send(b"hello")
        await ws.close()

    async with wsstream.serve(hold, "127.0.0.1", 0) as server:
        transport, _ = await wsstream.create_connection(NoHalfClose, f"ws://127.0.0.1:{server.port}/", proxy=None)
        assert await asyncio.wait_for(lost, 5) is None
        assert transport.is_closing()
