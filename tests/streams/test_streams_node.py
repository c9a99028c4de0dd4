"""256 MiB each way between our stream adapter and Node ws's ``createWebSocketStream``, both roles.

The peer is ``tests/streams/node/stream_peer.js``; it needs ``npm ci`` in ``tests/streams/node``. Without
node or its ``ws`` module these tests skip, unless ``WSSTREAM_REQUIRE_ALL=1``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.streams.helpers import TIMEOUT
from tests.support import skip_or_fail
from wsstream.streams import open_connection, start_server

NODE_DIR = Path(__file__).resolve().parent / "node"
SIZE = 256 * 2**20


def node_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "ws" / "package.json").exists():
        return "tests/streams/node/node_modules/ws is missing (run: npm ci --prefix tests/streams/node)"
    return None


@pytest.fixture(autouse=True)
def _need_node() -> None:
    reason = node_missing()
    if reason is not None:
        skip_or_fail(reason)


@pytest.fixture
async def peer_process() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    processes: list[asyncio.subprocess.Process] = []
    yield processes
    for process in processes:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), TIMEOUT)


async def spawn(processes: list[asyncio.subprocess.Process], *args: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "stream_peer.js"), *args, stdout=asyncio.subprocess.PIPE
    )
    processes.append(process)
    return process


async def read_json(process: asyncio.subprocess.Process) -> dict[str, object]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 5 * TIMEOUT)
    assert line, "the node peer exited early"
    result: dict[str, object] = json.loads(line)
    return result


async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, process: asyncio.subprocess.Process) -> None:
    """Send SIZE random bytes in random writes while hashing SIZE received; compare with the peer's digests."""
    up = os.urandom(SIZE)

    async def send() -> None:
        rng = random.Random(11)
        view = memoryview(up)
        pos = 0
        while pos < SIZE:
            step = rng.randint(1, 2**20)
            writer.write(view[pos : pos + step])
            pos += step
            await writer.drain()

    sending = asyncio.ensure_future(send())
    digest, left = hashlib.sha256(), SIZE
    while left:
        chunk = await asyncio.wait_for(reader.read(min(left, 2**20)), TIMEOUT)
        assert chunk, f"EOF with {left} bytes missing"
        digest.update(chunk)
        left -= len(chunk)
    await asyncio.wait_for(sending, TIMEOUT)
    report = await read_json(process)
    assert report["bytes"] == SIZE
    assert report["received"] == hashlib.sha256(up).hexdigest()  # what we sent, as Node got it
    assert report["sent"] == digest.hexdigest()  # what Node sent, as we got it
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # Node's duplex.end(): Close 1000 is EOF
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
    assert await asyncio.wait_for(process.wait(), TIMEOUT) == 0


async def test_open_connection_to_node_create_websocket_stream(
    peer_process: list[asyncio.subprocess.Process],
) -> None:
    process = await spawn(peer_process, "server", str(SIZE))
    port = (await read_json(process))["port"]
    reader, writer = await open_connection(f"ws://127.0.0.1:{port}/", proxy=None, compression=None)
    await asyncio.wait_for(talk(reader, writer, process), 10 * TIMEOUT)


async def test_node_create_websocket_stream_to_start_server(peer_process: list[asyncio.subprocess.Process]) -> None:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    processes: list[asyncio.subprocess.Process] = []

    async def callback(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await talk(reader, writer, processes[0])
        except BaseException as exc:
            done.set_exception(exc)
            raise
        done.set_result(None)

    server = await start_server(callback, "127.0.0.1", 0)
    try:
        processes.append(await spawn(peer_process, "client", str(SIZE), f"ws://127.0.0.1:{server.port}/"))
        await asyncio.wait_for(done, 10 * TIMEOUT)
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), TIMEOUT)
