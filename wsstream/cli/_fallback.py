"""Temporary stand-in for ``wsstream.streams.open_stream`` while the stream adapter is being written.

Only what the CLI pumps use: a StreamReader fed by the WebSocket's message sink (pausing the socket when full)
and a writer that sends each drained batch as one message. Deleted once ``wsstream.streams`` lands.
"""

from __future__ import annotations

import asyncio

from ..connection import Data, WebSocket
from ..exceptions import ConnectionClosed, ConnectionClosedOK


class _Flow:
    __slots__ = ("ws",)

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    def pause_reading(self) -> None:
        self.ws.pause_reading()

    def resume_reading(self) -> None:
        self.ws.resume_reading()


class _Writer:
    __slots__ = ("_buffer", "_closing", "_mode", "_ws")

    def __init__(self, ws: WebSocket, mode: str) -> None:
        self._ws = ws
        self._mode = mode
        self._buffer = bytearray()
        self._closing: asyncio.Task[None] | None = None

    def write(self, data: bytes) -> None:
        self._buffer += data

    async def drain(self) -> None:
        if self._buffer:
            data, self._buffer = bytes(self._buffer), bytearray()
            await self._ws.send(data, binary=self._mode == "binary")

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        async def flush_and_close() -> None:
            await self.drain()
            await self._ws.close()

        self._closing = asyncio.ensure_future(flush_and_close())

    def close(self) -> None:
        if self._closing is None:
            self.write_eof()

    async def wait_closed(self) -> None:
        await self._ws.wait_closed()


def open_stream(ws: WebSocket, *, mode: str = "binary", limit: int = 2**16) -> tuple[asyncio.StreamReader, _Writer]:
    """Reader and writer over ``ws`` (see the module docstring for what is left out)."""
    reader = asyncio.StreamReader(limit=limit)
    reader.set_transport(_Flow(ws))  # type: ignore[arg-type]

    def on_message(message: Data) -> None:
        reader.feed_data(message.encode() if isinstance(message, str) else message)

    def on_closed(exc: ConnectionClosed) -> None:
        if isinstance(exc, ConnectionClosedOK):
            reader.feed_eof()
        else:
            reader.set_exception(exc)

    ws.set_message_sink(on_message, on_closed)
    return reader, _Writer(ws, mode)
