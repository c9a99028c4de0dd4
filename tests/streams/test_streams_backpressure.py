"""Back-pressure both ways with bounded memory: unread readers stop the sender, relays stay flat.

A sender that could push 1 GiB must stall after a bounded amount (kernel socket buffers, the transports'
high-water marks and the StreamReader's 2 * limit) when nobody reads, and every byte must still arrive intact
once reading resumes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable

import wsstream
from tests.streams.helpers import TIMEOUT, Recorder, ServerFactory, wait_until_stalled
from wsstream.streams import WebSocketTransport, create_connection, open_connection, open_stream

WsServerFactory = Callable[..., Awaitable[str]]

CHUNK = 64 * 1024
ATTEMPT = 2**30  # what an unbounded sender would push
BOUND = 48 * 2**20  # loopback socket buffers can reach several MiB each; everything else is KiB


class Flood:
    """Writes CHUNK-sized pieces of a repeating pattern with drain() until ATTEMPT bytes or an error."""

    def __init__(self) -> None:
        self.written = 0
        self.block = os.urandom(CHUNK)

    async def run(self, writer: asyncio.StreamWriter) -> None:
        try:
            while self.written < ATTEMPT:
                writer.write(self.block)
                self.written += CHUNK
                await writer.drain()
        except wsstream.ConnectionClosed:
            pass

    def expected(self, size: int) -> bytes:
        return (self.block * (size // CHUNK + 1))[:size]


async def test_unread_client_reader_stalls_the_server_writer(stream_server: ServerFactory) -> None:
    flood = Flood()
    task: list[asyncio.Task[None]] = []

    async def callback(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task.append(asyncio.ensure_future(flood.run(writer)))
        await task[0]

    reader, writer = await open_connection(await stream_server(callback), proxy=None)
    stalled_at = await wait_until_stalled(lambda: flood.written)
    assert 0 < stalled_at < BOUND
    transport = writer.transport
    assert isinstance(transport, WebSocketTransport)
    assert not transport.is_reading()
    # Reading resumes the flow: everything arrives, in order.
    data = await asyncio.wait_for(reader.readexactly(stalled_at + 10 * CHUNK), TIMEOUT)
    assert data == flood.expected(len(data))
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), TIMEOUT)


async def test_unread_server_reader_stalls_the_client_writer(stream_server: ServerFactory) -> None:
    go = asyncio.Event()
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def callback(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await go.wait()
        received.set_result(await reader.readexactly(20 * CHUNK))
        writer.close()

    _, writer = await open_connection(await stream_server(callback), proxy=None)
    flood = Flood()
    sending = asyncio.ensure_future(flood.run(writer))
    stalled_at = await wait_until_stalled(lambda: flood.written)
    assert 0 < stalled_at < BOUND
    assert not sending.done()
    go.set()
    assert await asyncio.wait_for(received, TIMEOUT) == flood.expected(20 * CHUNK)
    await asyncio.wait_for(sending, TIMEOUT)  # ends with the server's close


async def test_pause_and_resume_writing_alternate(ws_server: WsServerFactory) -> None:
    go = asyncio.Event()

    async def handler(ws: wsstream.WebSocket) -> None:
        await go.wait()
        async for _ in ws:
            pass

    transport, protocol = await create_connection(Recorder, await ws_server(handler), proxy=None)
    block = b"z" * CHUNK
    for _ in range(ATTEMPT // CHUNK):
        transport.write(block)
        if protocol.events[-1][0] == "pause_writing":
            break
        await asyncio.sleep(0)
    assert protocol.events[-1][0] == "pause_writing"
    low, high = transport.get_write_buffer_limits()
    assert transport.get_write_buffer_size() > high
    go.set()
    for _ in range(2000):
        if protocol.events[-1][0] == "resume_writing":
            break
        await asyncio.sleep(0.01)
    assert protocol.events[-1][0] == "resume_writing"
    assert transport.get_write_buffer_size() <= low
    names = [n for n in protocol.names() if n in ("pause_writing", "resume_writing")]
    assert names == ["pause_writing", "resume_writing"]
    transport.close()
    assert await asyncio.wait_for(protocol.lost, TIMEOUT) is None


async def test_no_data_received_while_reading_is_paused(ws_server: WsServerFactory) -> None:
    async def handler(ws: wsstream.WebSocket) -> None:
        for i in range(200):
            await ws.send(b"%04d" % i)
        await ws.close()

    class PausesOnData(Recorder):
        def data_received(self, data: bytes) -> None:
            assert self.transport is not None and self.transport.is_reading(), "data while paused"
            super().data_received(data)
            self.transport.pause_reading()

    transport, protocol = await create_connection(PausesOnData, await ws_server(handler), proxy=None)
    for _ in range(10_000):
        data = asyncio.ensure_future(protocol.got_data.wait())
        await asyncio.wait([data, protocol.lost], timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        data.cancel()
        if protocol.lost.done():
            break
        protocol.got_data.clear()
        await asyncio.sleep(0)
        assert not transport.is_reading()
        transport.resume_reading()
    assert await asyncio.wait_for(protocol.lost, TIMEOUT) is None
    assert protocol.data() == b"".join(b"%04d" % i for i in range(200))
    assert protocol.names()[-2:] == ["eof_received", "connection_lost"]


async def pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peak: list[int], eof: bool = True
) -> None:
    """Copy reader to writer with back-pressure; record the writer's largest buffer in peak[0]."""
    while chunk := await reader.read(CHUNK):
        writer.write(chunk)
        peak[0] = max(peak[0], writer.transport.get_write_buffer_size())
        await writer.drain()
    if eof:
        writer.write_eof()


async def test_tcp_to_websocket_relay_stays_flat(stream_server: ServerFactory) -> None:
    """TCP client -> relay (asyncio TCP server) -> websocket stream -> slow start_server sink."""
    total = 64 * 2**20
    digest: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def slow_sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sha = hashlib.sha256()
        while chunk := await reader.read(4096):
            sha.update(chunk)
            await asyncio.sleep(0)
        digest.set_result(sha.hexdigest())
        writer.close()

    uri = await stream_server(slow_sink)
    peaks = [0]

    async def relay(tcp_reader: asyncio.StreamReader, tcp_writer: asyncio.StreamWriter) -> None:
        ws_reader, ws_writer = await open_connection(uri, proxy=None)
        await pipe(tcp_reader, ws_writer, peaks)
        await ws_reader.read()
        tcp_writer.close()

    relay_server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = relay_server.sockets[0].getsockname()[1]
    tcp_reader, tcp_writer = await asyncio.open_connection("127.0.0.1", port)
    data = os.urandom(2**20)
    for _ in range(total // len(data)):
        tcp_writer.write(data)
        await asyncio.wait_for(tcp_writer.drain(), TIMEOUT)
    tcp_writer.write_eof()
    expected = hashlib.sha256(data * (total // len(data))).hexdigest()
    assert await asyncio.wait_for(digest, TIMEOUT) == expected
    # The relay never holds more than the high-water mark plus the chunk that crossed it (plus framing).
    assert 0 < peaks[0] <= 64 * 1024 + CHUNK + 14
    await asyncio.wait_for(tcp_reader.read(), TIMEOUT)
    tcp_writer.close()
    relay_server.close()
    await relay_server.wait_closed()


async def test_websocket_to_websocket_relay_stays_flat(ws_server: WsServerFactory) -> None:
    """A fast websocket source relayed to a slow websocket sink through two stream adapters."""
    total = 32 * 2**20
    digest: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    block = os.urandom(CHUNK)

    async def slow_sink(ws: wsstream.WebSocket) -> None:
        sha = hashlib.sha256()
        reader, writer = open_stream(ws)
        while chunk := await reader.read(4096):
            sha.update(chunk)
            await asyncio.sleep(0)
        digest.set_result(sha.hexdigest())
        writer.close()
        await writer.wait_closed()

    async def source(ws: wsstream.WebSocket) -> None:
        for _ in range(total // CHUNK):
            await ws.send(block)
        await ws.close()

    sink_uri = await ws_server(slow_sink)
    source_uri = await ws_server(source)
    in_reader, in_writer = await open_connection(source_uri, proxy=None)
    _out_reader, out_writer = await open_connection(sink_uri, proxy=None)
    peaks = [0]
    await asyncio.wait_for(pipe(in_reader, out_writer, peaks), 2 * TIMEOUT)
    assert await asyncio.wait_for(digest, TIMEOUT) == hashlib.sha256(block * (total // CHUNK)).hexdigest()
    assert 0 < peaks[0] <= 64 * 1024 + CHUNK + 14
    in_writer.close()
    out_writer.close()
    await asyncio.wait_for(out_writer.wait_closed(), TIMEOUT)
