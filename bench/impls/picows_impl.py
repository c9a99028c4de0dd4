"""Peer and fixed driver: ``picows`` (Cython), compression not offered (picows has none).

Owns the picows echo server and callback client. The same client drives every implementation's server for the
"as server" figures, and the same server answers every implementation's client for the "as client" figures.
``use_aiofastnet=False`` keeps picows on the event loop's own transports, like every other Python peer and the
raw baseline, so a ratio compares framing code and not socket layers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect, ws_create_server

from .common import HOST, CallbackPump, Conn, Workload, handshakes, idle, run_callback_workload

_MAX_FRAME = 1 << 24


class EchoListener(WSListener):
    """Server side: echo data frames as they come, answer Close and hang up."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is WSMsgType.BINARY or msg_type is WSMsgType.TEXT or msg_type is WSMsgType.CONTINUATION:
            transport.send(msg_type, frame.get_payload_as_memoryview(), frame.fin)
        elif msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


class PumpListener(WSListener):
    """Client side: counts echoed messages through a CallbackPump."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.transport: WSTransport | None = None
        self.pump = CallbackPump(self.send_one)
        self.message_bytes = 0

    def send_one(self) -> None:
        self.transport.send(WSMsgType.BINARY, self.data)  # type: ignore[union-attr]

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is WSMsgType.BINARY or msg_type is WSMsgType.CONTINUATION:
            self.message_bytes += frame.payload_size
            if frame.fin:
                n, self.message_bytes = self.message_bytes, 0
                self.pump.received(n)
        elif msg_type is WSMsgType.CLOSE:
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.pump.lost(None)


async def start_server(port: int) -> tuple[int, Callable[[], Awaitable[None]]]:
    """Listen on HOST:port (0 = any) and return (bound port, coroutine function that stops the server)."""
    server = await ws_create_server(
        lambda _request: EchoListener(),
        HOST,
        port,
        max_frame_size=_MAX_FRAME,
        use_aiofastnet=False,
        backlog=1024,
    )

    async def stop() -> None:
        server.close()

    return server.sockets[0].getsockname()[1], stop


async def _open(port: int, data: bytes) -> tuple[WSTransport, PumpListener]:
    transport, listener = await ws_connect(
        lambda: PumpListener(data), f"ws://{HOST}:{port}/", max_frame_size=_MAX_FRAME, use_aiofastnet=False
    )
    assert isinstance(listener, PumpListener)
    return transport, listener


async def _open_pumps(port: int, n: int, data: bytes) -> list[CallbackPump]:
    return [(await _open(port, data))[1].pump for _ in range(n)]


async def _connect(port: int) -> Conn:
    transport, _ = await _open(port, b"")

    async def close() -> None:
        transport.send_close(WSCloseCode.OK)
        await asyncio.wait_for(transport.wait_disconnected(), 10)

    async def unused(*_: Any) -> None:
        raise NotImplementedError

    return unused, unused, close


async def client(w: Workload, port: int, seconds: float, server_pid: int) -> dict[str, Any]:
    """Run workload ``w`` with the picows client against ``port``."""
    if w.name == "handshake":
        return await handshakes(_connect, w, port, seconds, server_pid)
    if w.name == "idle2000":
        return await idle(_connect, w, port, server_pid)
    return await run_callback_workload(_open_pumps, w, port, seconds, server_pid)
