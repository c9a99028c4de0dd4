""":class:`WebSocketTransport`: an ``asyncio.Transport`` over an open :class:`~wsstream.connection.WebSocket`.

Any ``asyncio.Protocol`` (``asyncio.StreamReaderProtocol`` included) runs over it unchanged. Writes become
data messages written straight through the connection's core, with no task or Future per write; received text
and binary messages reach ``data_received`` as bytes, boundaries dropped (or ``get_buffer``/``buffer_updated``
for an ``asyncio.BufferedProtocol``).

Callback order is asyncio's: ``connection_made``, ``data_received``*, at most one ``eof_received``, exactly
one ``connection_lost``; ``pause_writing``/``resume_writing`` alternate and stop at ``connection_lost``; no
``data_received`` between ``pause_reading()`` and ``resume_reading()``.

Closing, and how it maps onto the WebSocket closing handshake (RFC 6455 section 7):

- ``write_eof()`` sends Close 1000 after the data already written and keeps delivering what the peer sends
  until its Close, which is EOF. Nothing more may be written.
- ``close(code=None, reason=None)`` sends Close with ``code`` (default :attr:`close_code`, 1000), discards
  what arrives after it, waits for the closing handshake (``close_timeout`` of the WebSocket), then
  ``connection_lost(None)``.
- The peer's Close with 1000/1001 (or no code) is EOF. Any other code, a protocol error or a lost connection
  is ``connection_lost(ConnectionClosedError)`` at once.
- A write once the peer's Close arrived or the connection closed raises :class:`ConnectionClosedError`; data
  is never dropped silently.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Literal

from ..connection import WebSocket
from ..core.frames import OP_BINARY, OP_TEXT
from ..exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from ._hooks import (
    add_writable_callback,
    can_send,
    send_close_nowait,
    send_nowait,
    writing_paused,
)

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "Mode", "WebSocketTransport"]

logger = logging.getLogger("wsstream.streams")

Mode = Literal["binary", "text"]

#: Largest message one write is sent as; bigger writes are split. 16 KiB keeps every per-message buffer on
#: both sides well inside glibc's heap: with 32-64 KiB messages the receiver's allocator kept returning the top
#: of the heap to the kernel and faulting it back (370,000-490,000 page faults per GiB against ~20,000 for
#: TCP), halving throughput (bench/bench_streams.py: 0.52-0.65x of asyncio over TCP at 64 KiB, 0.86-0.90x at
#: 16 KiB). Framing costs 14 bytes per message at most (0.09 %); any peer's max_size is far above it.
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024


def check_options(mode: str, max_message_size: int) -> None:
    """ValueError unless ``mode`` is "binary" or "text" and a message can hold one UTF-8 character."""
    if mode not in ("binary", "text"):
        raise ValueError(f"mode must be 'binary' or 'text', not {mode!r}")
    if max_message_size < 4:
        raise ValueError("max_message_size must be at least 4 bytes (one UTF-8 character)")


class WebSocketTransport(asyncio.Transport):
    """An ``asyncio.Transport`` that carries a byte stream as WebSocket messages.

    ``protocol.connection_made(self)`` is called from the constructor, then messages start flowing (those the
    WebSocket already queued first). ``mode="text"`` sends text messages (written bytes must be UTF-8; a
    character split across writes is held until complete), ``"binary"`` binary ones. ``max_message_size``
    caps one outgoing message. ``close_code``/``close_reason`` are what :meth:`close` sends by default.
    """

    __slots__ = (
        "_backlog",
        "_buffered",
        "_closed",
        "_closing",
        "_eof_pending",
        "_eof_written",
        "_loop",
        "_lost",
        "_max_message_size",
        "_opcode",
        "_peer_closed",
        "_protocol",
        "_reading_paused",
        "_text",
        "_utf8_tail",
        "_watching_lost",
        "_write_paused",
        "_ws",
        "close_code",
        "close_reason",
    )

    # loop.start_tls() accepts transports that mark themselves so: TLS can run inside the WebSocket stream.
    _start_tls_compatible = True

    def __init__(
        self,
        ws: WebSocket,
        protocol: asyncio.BaseProtocol,
        *,
        mode: Mode = "binary",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        close_code: int = 1000,
        close_reason: str = "",
    ) -> None:
        check_options(mode, max_message_size)
        super().__init__()
        self._loop = asyncio.get_running_loop()
        self._ws = ws
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)
        self._text = mode == "text"
        self._opcode = OP_TEXT if self._text else OP_BINARY
        self._max_message_size = max_message_size
        self.close_code = close_code
        self.close_reason = close_reason
        self._utf8_tail = b""  # text mode: an incomplete trailing UTF-8 sequence, held for the next write
        self._backlog: collections.deque[bytes] = collections.deque()  # received while reading is paused
        self._reading_paused = False
        self._write_paused = False  # pause_writing() was reported to the protocol
        self._eof_written = False
        self._eof_pending = False  # the peer closed normally; EOF waits behind the backlog
        self._closing = False  # close() or abort() was called
        self._lost = False  # connection_lost() was called
        self._watching_lost = False
        self._peer_closed: ConnectionClosed | None = None
        self._closed: asyncio.Future[None] = self._loop.create_future()
        protocol.connection_made(self)
        ws.set_message_sink(self._on_message, self._on_closed, hold_close_reply=True)

    # ------------------------------------------------------------------ receiving (WebSocket -> protocol)

    def _on_message(self, message: str | bytes) -> None:
        if self._closing or self._lost:
            return  # after close(): asyncio promises no more data_received
        data = message.encode() if type(message) is str else message
        if not data:
            return
        if self._reading_paused or self._backlog:
            # The rest of one socket read can complete more messages after pause_reading(); keep them.
            self._backlog.append(data)  # type: ignore[arg-type]
            return
        if self._buffered:
            self._feed_buffered(data, True)  # type: ignore[arg-type]
        else:
            self._protocol.data_received(data)  # type: ignore[attr-defined]

    def _feed_buffered(self, data: bytes, respect_pause: bool) -> None:
        """Copy ``data`` into an ``asyncio.BufferedProtocol`` (asyncio's SSLProtocol is one), as asyncio does.

        If the protocol pauses reading part-way, the rest goes back to the front of the backlog.
        """
        protocol: asyncio.BufferedProtocol = self._protocol  # type: ignore[assignment]
        view = memoryview(data)
        pos, end = 0, len(view)
        while pos < end:
            if respect_pause and (self._reading_paused or self._closing or self._lost):
                self._backlog.appendleft(bytes(view[pos:]))
                return
            buffer = memoryview(protocol.get_buffer(end - pos)).cast("B")
            size = min(len(buffer), end - pos)
            if not size:
                raise RuntimeError("get_buffer() returned an empty buffer")
            buffer[:size] = view[pos : pos + size]
            pos += size
            protocol.buffer_updated(size)

    def _feed(self, data: bytes, respect_pause: bool = True) -> None:
        if self._buffered:
            self._feed_buffered(data, respect_pause)
        else:
            self._protocol.data_received(data)  # type: ignore[attr-defined]

    def _on_closed(self, exc: ConnectionClosed) -> None:
        """The WebSocket will deliver no more messages: the peer's Close arrived or the connection ended."""
        self._peer_closed = exc
        # No message can follow; keep the socket read so the end of the TCP connection is seen.
        self._ws.resume_reading()
        if self._closing or self._lost:
            self._watch_lost()
            return
        if isinstance(exc, ConnectionClosedOK):
            self._eof_pending = True
            self._deliver_backlog()
            return
        # Abnormal: what was already received goes first, then the error, now rather than after the TCP close.
        backlog, self._backlog = self._backlog, collections.deque()
        for data in backlog:
            self._feed(data, False)
            if self._lost or self._closing:
                break
        if not isinstance(exc, ConnectionClosedError):
            exc = ConnectionClosedError(exc.code, exc.reason)
        self._connection_lost(exc)

    def _deliver_backlog(self) -> None:
        """Hand queued data (then a pending EOF) to the protocol while reading is not paused."""
        backlog = self._backlog
        while backlog and not self._reading_paused and not self._closing and not self._lost:
            self._feed(backlog.popleft())
        if backlog or self._reading_paused or self._closing or self._lost:
            return
        if self._eof_pending:
            self._eof_pending = False
            keep_open = self._protocol.eof_received()  # type: ignore[attr-defined]
            if keep_open:
                self._watch_lost()
            else:
                self.close()
        elif self._peer_closed is None:
            self._ws.resume_reading()

    def pause_reading(self) -> None:
        """Stop delivering data; the WebSocket stops reading its socket, so the peer's writes block."""
        if not self._reading_paused and not self._closing:
            self._reading_paused = True
            self._ws.pause_reading()

    def resume_reading(self) -> None:
        """Deliver data again (first what arrived while paused, on the next loop iteration)."""
        if self._reading_paused and not self._closing:
            self._reading_paused = False
            if self._backlog or self._eof_pending:
                self._loop.call_soon(self._deliver_backlog)
            else:
                self._ws.resume_reading()

    def is_reading(self) -> bool:
        """True unless reading is paused or the transport is closing."""
        return not self._reading_paused and not self._closing and not self._lost

    # ------------------------------------------------------------------ writing (protocol -> WebSocket)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` as one message, or several of at most ``max_message_size`` bytes.

        Never blocks and never drops data: raises :class:`ConnectionClosedError` once the peer's Close arrived
        or the connection ended, ``RuntimeError`` after :meth:`write_eof`, ``UnicodeDecodeError`` in text mode
        when ``data`` is not UTF-8 (nothing is sent then).
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        ws = self._ws
        if self._eof_written:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not can_send(ws) or self._closing or self._lost:
            raise self._write_error()
        if not data:
            return
        if self._text:
            data = self._complete_utf8(data)
            if not data:
                return
        size = self._max_message_size
        if len(data) <= size:
            send_nowait(ws, self._opcode, data)
        else:
            self._write_split(data, size)
        if not self._write_paused and writing_paused(ws):
            self._pause_protocol()

    def _write_split(self, data: bytes | bytearray | memoryview, size: int) -> None:
        view = memoryview(data).cast("B")
        ws = self._ws
        opcode = self._opcode
        text = self._text
        end = len(view)
        start = 0
        while start < end:
            stop = start + size
            if text and stop < end:
                while view[stop] & 0xC0 == 0x80:  # never split a character between two text messages
                    stop -= 1
            send_nowait(ws, opcode, view[start:stop])
            start = stop

    def _complete_utf8(self, data: bytes | bytearray | memoryview) -> bytes | memoryview:
        """Text mode: the longest complete UTF-8 prefix of tail + data; the rest becomes the new tail."""
        if self._utf8_tail:
            data = self._utf8_tail + bytes(data)
        view = memoryview(data).cast("B")
        end = len(view)
        cut = end
        for i in range(end - 1, max(end - 4, -1), -1):
            lead = view[i]
            if lead & 0xC0 != 0x80:
                if lead >= 0xC0:
                    need = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
                    if end - i < need:
                        cut = i
                break
        head = view[:cut]
        str(head, "utf-8")  # a text message must be UTF-8 (RFC 6455 5.6); raises before any state change
        self._utf8_tail = bytes(view[cut:])
        return head

    def writelines(self, list_of_data: Any) -> None:
        """Write the concatenation of the buffers, as :meth:`write` does."""
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        """Send Close 1000 after the data written so far; keep reading until the peer's Close (EOF).

        ``RuntimeError`` in text mode if an incomplete UTF-8 character is held (it could never be sent).
        """
        if self._eof_written or self._closing or self._lost:
            return
        if self._utf8_tail:
            raise RuntimeError("write_eof() with an incomplete UTF-8 character written in text mode")
        self._eof_written = True
        send_close_nowait(self._ws, 1000, "")

    def can_write_eof(self) -> bool:
        """True: write_eof() is the closing handshake's first half."""
        return True

    def _write_error(self) -> ConnectionClosedError:
        ws = self._ws
        code = ws.close_code
        if code is None:
            code = self.close_code if self._closing else 1006
        return ConnectionClosedError(code, ws.close_reason or "")

    def _pause_protocol(self) -> None:
        self._write_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler(
                {"message": "protocol.pause_writing() failed", "exception": exc, "transport": self,
                 "protocol": self._protocol}
            )
        add_writable_callback(self._ws, self._on_writable)

    def _on_writable(self) -> None:
        if self._lost or not self._write_paused:
            return
        if writing_paused(self._ws):
            add_writable_callback(self._ws, self._on_writable)  # paused again before this ran
            return
        self._write_paused = False
        try:
            self._protocol.resume_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler(
                {"message": "protocol.resume_writing() failed", "exception": exc, "transport": self,
                 "protocol": self._protocol}
            )

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet sent to the socket (framing included), plus a held UTF-8 tail."""
        return self._ws.buffered_amount + len(self._utf8_tail)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """(low, high) of the socket's transport, which drive pause_writing/resume_writing."""
        transport = self._ws.transport
        return transport.get_write_buffer_limits() if transport is not None else (0, 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the high- and low-water marks of the socket's transport (asyncio's defaults apply to None)."""
        transport = self._ws.transport
        if transport is not None:
            transport.set_write_buffer_limits(high, low)

    # ------------------------------------------------------------------ closing

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Send Close (``code``/``reason``, by default :attr:`close_code`/:attr:`close_reason`) after the data
        written so far, run the closing handshake in the background, then call ``connection_lost(None)``.

        A UTF-8 character left incomplete in text mode turns the code into 1007 (data that cannot be sent).
        """
        if self._closing or self._lost:
            return
        self._closing = True
        if code is None:
            code = self.close_code
        if reason is None:
            reason = self.close_reason
        if self._utf8_tail:
            code, reason = 1007, "incomplete UTF-8 character at close"
            self._utf8_tail = b""
        self._backlog.clear()
        self._eof_pending = False
        ws = self._ws
        ws.resume_reading()  # the peer's Close must be read even if the protocol stopped reading
        send_close_nowait(ws, code, reason)
        # WebSocket.close finds the Close already sent: it waits for the handshake, at most close_timeout.
        self._loop.create_task(ws.close(code, reason)).add_done_callback(self._on_ws_closed)

    def _on_ws_closed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: WebSocket.close only raises when cancelled
        self._connection_lost(None)

    def abort(self) -> None:
        """Drop the connection at once, without a closing handshake; ``connection_lost(None)`` follows."""
        if self._lost:
            return
        self._closing = True
        self._backlog.clear()
        self._eof_pending = False
        self._utf8_tail = b""
        self._ws.abort()
        self._loop.call_soon(self._connection_lost, None)

    def is_closing(self) -> bool:
        """True once close() or abort() was called, or the connection is gone."""
        return self._closing or self._lost

    def _watch_lost(self) -> None:
        """Call connection_lost(None) when the WebSocket's TCP connection is closed."""
        if self._watching_lost or self._lost:
            return
        self._watching_lost = True
        task = self._loop.create_task(self._ws.wait_closed())
        task.add_done_callback(lambda _: self._connection_lost(None))

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._backlog.clear()
        self._write_paused = False
        try:
            self._protocol.connection_lost(exc)
        finally:
            if not self._closed.done():
                self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until ``connection_lost`` has been called."""
        await asyncio.shield(self._closed)

    # ------------------------------------------------------------------ the rest of asyncio.Transport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``"websocket"`` (the :class:`WebSocket`), ``"subprotocol"``, and whatever the socket's transport
        answers (``"peername"``, ``"sockname"``, ``"ssl_object"``, ``"socket"``, ...)."""
        if name == "websocket":
            return self._ws
        if name == "subprotocol":
            return self._ws.subprotocol
        transport = self._ws.transport
        return transport.get_extra_info(name, default) if transport is not None else default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Switch the protocol callbacks go to (asyncio's contract)."""
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The current protocol."""
        return self._protocol

    @property
    def websocket(self) -> WebSocket:
        """The WebSocket this transport runs over."""
        return self._ws

    def __repr__(self) -> str:
        state = "closed" if self._lost else "closing" if self._closing else "open"
        return f"<WebSocketTransport {state} {'text' if self._text else 'binary'} {self._ws!r}>"
