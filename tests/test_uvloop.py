"""wsstream on uvloop: its transports implement asyncio's interfaces without subclassing them."""

from __future__ import annotations

import asyncio
import os

import pytest

import wsstream
from tests.support import echo, skip_or_fail

try:
    import uvloop
except ImportError:  # pragma: no cover - installed with the test extras
    uvloop = None


def run_on_uvloop(coro_fn: object) -> None:
    if uvloop is None:
        skip_or_fail("uvloop is not installed")
    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop) if hasattr(asyncio, "Runner") else None
    if runner is None:
        uvloop.install()
        asyncio.run(coro_fn())  # type: ignore[operator]
        asyncio.set_event_loop_policy(None)
        return
    with runner:
        runner.run(coro_fn())  # type: ignore[operator]


def test_messages_streams_and_compression_on_uvloop() -> None:
    async def main() -> None:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        async with wsstream.serve(echo, "127.0.0.1", 0, compression="deflate") as server:
            uri = f"ws://127.0.0.1:{server.port}/"
            async with wsstream.connect(uri, proxy=None) as ws:
                for size in (0, 125, 126, 65536, 3 * 2**20):
                    data = os.urandom(size)
                    await ws.send(data)
                    assert await ws.recv() == data
                await ws.send("z" * 200_000)  # compressed in a worker thread
                assert await ws.recv() == "z" * 200_000
            reader, writer = await wsstream.open_connection(uri, proxy=None)
            writer.write(b"stream bytes")
            await writer.drain()
            assert await reader.readexactly(12) == b"stream bytes"
            writer.close()
            await writer.wait_closed()

    run_on_uvloop(main)


def test_server_close_on_uvloop() -> None:
    async def main() -> None:
        async with wsstream.serve(echo, "127.0.0.1", 0) as server:
            ws = await wsstream.connect(f"ws://127.0.0.1:{server.port}/", proxy=None)
            server.close()
            await server.wait_closed()
            with pytest.raises(wsstream.ConnectionClosedOK):
                await ws.recv()
            assert ws.close_code == 1001

    run_on_uvloop(main)
