"""Bulk data through open_connection <-> start_server: every byte arrives, in order, both ways at once."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random

from tests.streams.helpers import TIMEOUT, ServerFactory
from wsstream.streams import open_connection

SIZE = 256 * 2**20


def payload(size: int) -> bytes:
    return os.urandom(size)


async def send_randomly(writer: asyncio.StreamWriter, data: bytes, seed: int, max_write: int) -> None:
    """Write ``data`` in random-sized pieces (1 byte to max_write), draining after each."""
    rng = random.Random(seed)
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        step = rng.randint(1, max_write)
        writer.write(view[pos : pos + step])
        pos += step
        await writer.drain()


async def hash_exactly(reader: asyncio.StreamReader, size: int, seed: int) -> str:
    """Read exactly ``size`` bytes with random read sizes; return their SHA-256."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    left = size
    while left:
        chunk = await reader.read(min(left, rng.randint(1, 2**20)))
        assert chunk, f"EOF with {left} bytes missing"
        digest.update(chunk)
        left -= len(chunk)
    return digest.hexdigest()


async def exchange(
    stream_server: ServerFactory, size: int, *, max_write: int, **options: object
) -> tuple[str, str, str, str]:
    """Both sides send ``size`` random bytes while reading the other's; then a clean close.

    Returns (sent by client, received by server, sent by server, received by client) digests.
    """
    up, down = payload(size), payload(size)
    server_got: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sending = asyncio.ensure_future(send_randomly(writer, down, 3, max_write))
        server_got.set_result(await hash_exactly(reader, size, 4))
        await sending
        assert await reader.read() == b""  # the client's write_eof
        writer.close()
        await writer.wait_closed()

    uri = await stream_server(serve, max_size=2**20, **options)
    reader, writer = await open_connection(uri, proxy=None, max_size=2**20, **options)  # type: ignore[arg-type]
    sending = asyncio.ensure_future(send_randomly(writer, up, 5, max_write))
    client_got = await hash_exactly(reader, size, 6)
    await sending
    writer.write_eof()
    assert await reader.read() == b""  # the server's Close answers ours: EOF
    writer.close()
    await writer.wait_closed()
    return hashlib.sha256(up).hexdigest(), await server_got, hashlib.sha256(down).hexdigest(), client_got


async def test_256_mib_both_ways_with_random_write_sizes(stream_server: ServerFactory) -> None:
    sent_up, got_up, sent_down, got_down = await asyncio.wait_for(
        exchange(stream_server, SIZE, max_write=2**20), 10 * TIMEOUT
    )
    assert got_up == sent_up
    assert got_down == sent_down


async def test_small_writes(stream_server: ServerFactory) -> None:
    sent_up, got_up, sent_down, got_down = await asyncio.wait_for(
        exchange(stream_server, 2 * 2**20, max_write=300), TIMEOUT
    )
    assert (got_up, got_down) == (sent_up, sent_down)


async def test_writes_larger_than_max_message_size_are_split(stream_server: ServerFactory) -> None:
    sent_up, got_up, sent_down, got_down = await asyncio.wait_for(
        exchange(stream_server, 8 * 2**20, max_write=3 * 2**20, max_message_size=100_000), TIMEOUT
    )
    assert (got_up, got_down) == (sent_up, sent_down)
