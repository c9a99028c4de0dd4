"""The limit: a raw asyncio TCP echo with 4-byte big-endian length-prefix framing (server and client).

Owns: the baseline every ratio is taken against. It does what a WebSocket implementation must do at minimum
(frame, buffer, parse, write back per message) on a plain ``asyncio.Protocol``, with no masking, no handshake
and no validation. Its "handshake" is a bare TCP connect and close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

from .common import HOST, CallbackPump, Conn, Workload, handshakes, idle, run_callback_workload

_HEADER = 4


class EchoServerProtocol(asyncio.Protocol):
    """Echo every complete length-prefixed message back as it is parsed."""

    __slots__ = ("buffer", "transport")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos, end = 0, len(buf)
        write = self.transport.write  # type: ignore[union-attr]
        while end - pos >= _HEADER:
            stop = pos + _HEADER + int.from_bytes(buf[pos : pos + _HEADER], "big")
            if stop > end:
                break
            write(bytes(buf[pos:stop]))
            pos = stop
        if pos:
            del buf[:pos]


class PumpClientProtocol(asyncio.Protocol):
    """Client side of the echo: counts returned messages through a CallbackPump."""

    __slots__ = ("buffer", "frame", "pump", "transport")

    def __init__(self, data: bytes) -> None:
        self.buffer = bytearray()
        self.frame = len(data).to_bytes(_HEADER, "big") + data
        self.transport: asyncio.Transport | None = None
        self.pump = CallbackPump(self.send_one)

    def send_one(self) -> None:
        self.transport.write(self.frame)  # type: ignore[union-attr]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos, end = 0, len(buf)
        received = self.pump.received
        while end - pos >= _HEADER:
            size = int.from_bytes(buf[pos : pos + _HEADER], "big")
            stop = pos + _HEADER + size
            if stop > end:
                break
            received(size)
            pos = stop
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.pump.lost(exc)


class _ClosingProtocol(asyncio.Protocol):
    """Resolves ``closed`` when the connection is gone (handshake/idle workloads)."""

    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def start_server(port: int) -> tuple[int, Callable[[], Awaitable[None]]]:
    """Listen on HOST:port (0 = any) and return (bound port, coroutine function that stops the server)."""
    server = await asyncio.get_running_loop().create_server(EchoServerProtocol, HOST, port, backlog=1024)

    async def stop() -> None:
        server.close()

    return server.sockets[0].getsockname()[1], stop


async def _open_pumps(port: int, n: int, data: bytes) -> list[CallbackPump]:
    loop = asyncio.get_running_loop()
    pumps = []
    for _ in range(n):
        _, proto = await loop.create_connection(lambda: PumpClientProtocol(data), HOST, port)
        pumps.append(proto.pump)
    return pumps


async def _connect(port: int) -> Conn:
    transport, proto = await asyncio.get_running_loop().create_connection(_ClosingProtocol, HOST, port)

    async def close() -> None:
        transport.close()
        await proto.closed

    async def unused(*_: Any) -> None:
        raise NotImplementedError

    return unused, unused, close


async def client(w: Workload, port: int, seconds: float, server_pid: int) -> dict[str, Any]:
    """Run workload ``w`` as the raw client against a raw server on ``port``."""
    if w.name == "handshake":
        return await handshakes(_connect, w, port, seconds, server_pid)
    if w.name == "idle2000":
        return await idle(_connect, w, port, server_pid)
    return await run_callback_workload(_open_pumps, w, port, seconds, server_pid)
