"""permessage-deflate at the asyncio layer: per-message control, thread offload ordering, bombs, limits."""

from __future__ import annotations

import asyncio
import os
import zlib

import pytest

import wsstream
from tests.support import echo
from wsstream import ConnectionClosedError
from wsstream.core import handshake
from wsstream.core.http11 import HeadParser


async def rsv1_bits_of(messages: list[tuple[object, bool | None]]) -> list[bool]:
    """Send ``(message, compress)`` pairs from a wsstream client to a raw server; return each frame's RSV1 bit."""
    seen: asyncio.Queue[bool] = asyncio.Queue()

    async def raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = HeadParser()
        while not parser.feed(await reader.read(4096)):
            pass
        key = handshake.check_request(parser.request())
        writer.write(handshake.build_response(key, None, "permessage-deflate").serialize())
        data = parser.leftover
        while True:
            while len(data) < 2:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                data += chunk
            length = data[1] & 0x7F
            header = 2 + {126: 2, 127: 8}.get(length, 0) + 4
            while len(data) < header:
                data += await reader.read(65536)
            if length == 126:
                length = int.from_bytes(data[2:4], "big")
            elif length == 127:
                length = int.from_bytes(data[2:10], "big")
            while len(data) < header + length:
                data += await reader.read(65536)
            await seen.put(bool(data[0] & 0x40))
            data = data[header + length :]

    server = await asyncio.start_server(raw, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with wsstream.connect(f"ws://127.0.0.1:{port}/", proxy=None) as ws:
        for message, compress in messages:
            await ws.send(message, compress=compress)  # type: ignore[arg-type]
        bits = [await asyncio.wait_for(seen.get(), 5) for _ in messages]
        ws.abort()
    server.close()
    return bits


async def test_threshold_and_per_message_switch() -> None:
    big = "a" * 5000
    bits = await rsv1_bits_of([(big, None), ("small", None), (big, False), ("small", True), (b"b" * 2000, None)])
    assert bits == [True, False, False, True, True]


async def test_large_compressions_run_in_a_thread_and_keep_message_order() -> None:
    async with wsstream.serve(echo, "127.0.0.1", 0, compression="deflate") as server:
        async with wsstream.connect(f"ws://127.0.0.1:{server.port}/", proxy=None) as ws:
            big = os.urandom(512) * 4096  # 2 MiB, compressible, above the thread threshold
            sends = [ws.send(big), ws.send("after"), ws.send(big[:100_000]), ws.send(b"last")]
            await asyncio.gather(*sends)
            assert await ws.recv() == big
            assert await ws.recv() == "after"
            assert await ws.recv() == big[:100_000]
            assert await ws.recv() == b"last"


async def test_decompression_bomb_fails_with_1009_and_bounded_memory() -> None:
    # 64 MiB of zeros deflate to about 64 KiB; the server's max_size is 1 MiB.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(bytes(64 * 2**20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert bomb.endswith(b"\x00\x00\xff\xff")
    payload = bomb[:-4]
    async with wsstream.serve(echo, "127.0.0.1", 0, compression="deflate", max_size=2**20) as server:
        async with wsstream.connect(f"ws://127.0.0.1:{server.port}/", proxy=None) as ws:
            conn = ws._conn
            assert conn is not None
            ws.transport.write(conn.send_compressed(2, payload))  # type: ignore[union-attr]
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.code == 1009


async def test_client_without_compression_talks_to_compressing_server() -> None:
    async with wsstream.serve(echo, "127.0.0.1", 0, compression=wsstream.Deflate(level=1)) as server:
        async with wsstream.connect(f"ws://127.0.0.1:{server.port}/", proxy=None, compression=None) as ws:
            assert ws.extensions == []
            await ws.send("x" * 10000)
            assert await ws.recv() == "x" * 10000


async def test_no_context_takeover_options_negotiate_and_work() -> None:
    options = wsstream.Deflate(server_no_context_takeover=True, client_no_context_takeover=True,
                               server_max_window_bits=10, client_max_window_bits=10)
    async with wsstream.serve(echo, "127.0.0.1", 0, compression="deflate") as server:
        async with wsstream.connect(f"ws://127.0.0.1:{server.port}/", proxy=None, compression=options) as ws:
            assert "server_no_context_takeover" in ws.extensions[0]
            for i in range(5):
                message = f"message {i} " * 300
                await ws.send(message)
                assert await ws.recv() == message
