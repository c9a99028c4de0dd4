"""Moving bytes and lines: :func:`copy`, :func:`splice` (a local byte stream <-> a WebSocket stream),
:func:`read_line`, :func:`ws_stream` (the stream adapter over a WebSocket) and :class:`Progress` (``--progress``).

Every copy waits on ``drain()`` after each write, so a slow side slows the other instead of filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from typing import Literal

from ..connection import WebSocket
from ..streams import open_stream
from .stdio import ByteWriter

__all__ = ["Activity", "Progress", "close_discarding", "copy", "read_line", "splice", "ws_stream"]

#: Bytes per read when copying a stream.
CHUNK = 256 * 1024

Counter = Callable[[int], None]


def ws_stream(ws: WebSocket, mode: Literal["text", "binary"]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The byte-stream view of ``ws`` (:func:`wsstream.streams.open_stream`): incoming messages as one byte
    stream, writes sent as ``mode`` messages; ``write_eof()`` sends Close 1000 after the data written."""
    return open_stream(ws, mode=mode, limit=CHUNK)


def _discard(message: str | bytes) -> None:
    pass


async def close_discarding(ws: WebSocket, code: int = 1000, reason: str = "") -> None:
    """Close ``ws`` when nobody reads it any more: unread messages are dropped so that reading goes on and the
    peer's Close can arrive (a full message queue pauses the socket, and the handshake would then time out)."""
    ws.set_message_sink(_discard)
    await ws.close(code, reason)


async def copy(reader: asyncio.StreamReader, writer: ByteWriter, count: Counter | None = None) -> int:
    """Copy ``reader`` to ``writer`` until EOF; return the number of bytes. Does not close ``writer``."""
    total = 0
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
        total += len(data)
        if count is not None:
            count(len(data))
    return total


async def read_line(reader: asyncio.StreamReader) -> bytes | None:
    """The next line without its ``\\n`` / ``\\r\\n``; None at EOF. A line longer than the reader's limit comes
    back in pieces of the limit (rather than failing); a last line without a newline is returned as is."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial or None
    except asyncio.LimitOverrunError as exc:
        return await reader.readexactly(exc.consumed)
    line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    return line


class Activity:
    """When data last arrived: ``--linger`` waits for a quiet spell before closing."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def touch(self, n: int = 0) -> None:
        self._event.set()

    async def wait_quiet(self, seconds: float) -> None:
        """Return once nothing has arrived for ``seconds`` (at once when ``seconds`` is 0)."""
        while seconds > 0:
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), seconds)
            except asyncio.TimeoutError:
                return


async def splice(
    local_reader: asyncio.StreamReader,
    local_writer: ByteWriter,
    ws_reader: asyncio.StreamReader,
    ws_writer: ByteWriter,
    progress: Progress | None = None,
    linger: float | None = 0.0,
) -> None:
    """Pump local -> WebSocket and WebSocket -> local until the WebSocket side ends.

    Local EOF sends Close (1000) once nothing has arrived for ``linger`` seconds (None: never; the peer closes);
    the WebSocket's end half-closes the local side where it can. Raises what the WebSocket reader raises on an
    abnormal close (``ConnectionClosedError``).
    """
    activity = Activity()

    def received(n: int) -> None:
        activity.touch()
        if progress is not None:
            progress.received(n)

    async def upstream() -> None:
        await copy(local_reader, ws_writer, progress.sent if progress is not None else None)
        if linger is not None:
            await activity.wait_quiet(linger)
            ws_writer.write_eof()

    up = asyncio.ensure_future(upstream())
    try:
        await copy(ws_reader, local_writer, received)
        if local_writer.can_write_eof():
            with contextlib.suppress(OSError):
                local_writer.write_eof()
        with contextlib.suppress(OSError):
            await local_writer.drain()
    finally:
        if not up.done():
            up.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await up  # errors sending after the WebSocket ended are not news: the reader's outcome is


def _format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Progress:
    """``--progress``: bytes sent and received and their rates, on stderr once a second and at the end."""

    __slots__ = ("_last", "_started", "_task", "_tty", "in_bytes", "out_bytes")

    def __init__(self) -> None:
        self.out_bytes = 0
        self.in_bytes = 0
        self._started = time.monotonic()
        self._last = (self._started, 0, 0)
        self._tty = sys.stderr.isatty()
        self._task: asyncio.Task[None] | None = None

    def sent(self, n: int) -> None:
        self.out_bytes += n

    def received(self, n: int) -> None:
        self.in_bytes += n

    def start(self) -> None:
        """Begin printing once a second."""
        self._task = asyncio.ensure_future(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._print(final=False)

    def stop(self) -> None:
        """Stop the ticker and print the totals with the mean rates."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._print(final=True)

    def _print(self, final: bool) -> None:
        now = time.monotonic()
        if final:
            since, out0, in0 = self._started, 0, 0
        else:
            since, out0, in0 = self._last
            self._last = (now, self.out_bytes, self.in_bytes)
        elapsed = max(now - since, 1e-9)
        line = (
            f"wsstream: sent {_format_bytes(self.out_bytes)} ({_format_bytes((self.out_bytes - out0) / elapsed)}/s), "
            f"received {_format_bytes(self.in_bytes)} ({_format_bytes((self.in_bytes - in0) / elapsed)}/s)"
        )
        if final:
            line += f" in {now - self._started:.1f} s"
        end = "\n" if final or not self._tty else ""
        prefix = "\r\x1b[K" if self._tty else ""
        with contextlib.suppress(OSError):
            sys.stderr.write(prefix + line + end)
            sys.stderr.flush()
