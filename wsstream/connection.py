"""The asyncio message layer: :class:`WebSocket`, one class for both client and server connections.

A :class:`WebSocket` is the ``asyncio.Protocol`` of its transport: received bytes go straight to the sans-I/O
:class:`~wsstream.core.protocol.Connection`, completed messages go to a queue (or straight to a waiting
:meth:`WebSocket.recv`), and frames are written to the transport by :meth:`WebSocket.send` without a task or a
Future when nothing needs waiting for.

Back-pressure: reading from the socket pauses while ``max_queue`` messages wait unread and resumes when the
queue falls to a quarter of that; :meth:`send` returns at once while the transport's buffer is under
``write_limit`` and waits for it to drain below a quarter of it otherwise.

The opening handshake is driven by :mod:`wsstream.client` and :mod:`wsstream.server`; this module only collects
the HTTP head and the bytes after it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, Union, cast

from . import handoff as _handoff
from .core.frames import OP_BINARY, OP_CONT, OP_TEXT
from .core.handshake import Accepted
from .core.http11 import DEFAULT_MAX_HEADER_COUNT, DEFAULT_MAX_LINE_SIZE, HeadParser, Request, Response
from .core.protocol import CloseReceived, Connection, Pong, State
from .deadlines import Deadline, deadlines
from .exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, HandshakeError, ProtocolError

if TYPE_CHECKING:
    from .core.deflate import PerMessageDeflate

__all__ = ["Data", "WebSocket"]

logger = logging.getLogger("wsstream")

Data = Union[str, bytes]
DataLike = Union[str, bytes, bytearray, memoryview]

#: Largest response body kept from a refused handshake (InvalidStatus.response.body).
MAX_REFUSAL_BODY = 64 * 1024
#: Bytes accepted after the HTTP head while the handshake is being settled (the server's process_request and
#: handler lookup, the client's checks); beyond this, reading pauses until the connection opens. Reading is
#: not paused up front: that cost two system calls per handshake for a case that rarely happens.
MAX_EARLY_DATA = 64 * 1024
#: Frames written while received messages still wait in the queue are collected up to this many bytes and
#: written with one system call: a handler answering a burst of pipelined messages makes one send(), not one
#: per message. Nothing is held back otherwise (request/response writes go straight out), and the batch is
#: written before recv() waits and at the end of the event loop iteration at the latest.
COALESCE_LIMIT = 16 * 1024
#: Messages at least this large are compressed in a worker thread: inline, zlib would hold the event loop for
#: about 2 ms per 64 KiB at the default level, while the thread hand-off costs 5-20 % of that
#: (bench/bench_deflate.py, docs/compression.md).
COMPRESS_IN_THREAD = 64 * 1024

_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def compression_limiter(loop: asyncio.AbstractEventLoop, limit: int) -> asyncio.Semaphore:
    """The semaphore bounding thread-offloaded compressions on ``loop`` (one per distinct limit)."""
    per_loop = _limiters.get(loop)
    if per_loop is None:
        per_loop = _limiters[loop] = {}
    semaphore = per_loop.get(limit)
    if semaphore is None:
        semaphore = per_loop[limit] = asyncio.Semaphore(limit)
    return semaphore


class WebSocket(asyncio.Protocol):
    """A WebSocket connection, client or server side.

    Obtain one from :func:`wsstream.connect` or as the argument of a :func:`wsstream.serve` handler.
    """

    __slots__ = (
        "_close_timer",
        "_close_waiters",
        "_compression_limit",
        "_conn",
        "_drain_waiters",
        "_flush_scheduled",
        "_handoff",
        "_handshake_waiter",
        "_head",
        "_hold_close_reply",
        "_in_receive",
        "_keepalive_timer",
        "_loop",
        "_lost",
        "_max_queue",
        "_messages",
        "_open_timer",
        "_out",
        "_out_size",
        "_pending",
        "_pings",
        "_queue_paused",
        "_reading_stopped",
        "_recv_waiter",
        "_refusal_body_left",
        "_resume_at",
        "_send_lock",
        "_server_hook",
        "_sink",
        "_sink_closed",
        "_transport",
        "_user_paused",
        "_write_paused",
        "auto_pong",
        "close_timeout",
        "extensions",
        "is_client",
        "latency",
        "max_size",
        "ping_interval",
        "ping_timeout",
        "request",
        "response",
        "skip_utf8_validation",
        "subprotocol",
        "write_limit",
    )

    def __init__(
        self,
        *,
        is_client: bool,
        max_size: int | None = 100 * 2**20,
        max_queue: int | None = 16,
        write_limit: int = 64 * 1024,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float | None = 10.0,
        auto_pong: bool = True,
        skip_utf8_validation: bool = False,
        max_header_count: int | None = None,
        max_line_size: int | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.is_client = is_client
        self.max_size = max_size
        self._max_queue = max_queue if max_queue else 0
        self._resume_at = max(self._max_queue // 4, 0)
        self.write_limit = write_limit
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.auto_pong = auto_pong
        self.skip_utf8_validation = skip_utf8_validation
        self.subprotocol: str | None = None
        self.extensions: list[str] = []
        self.request: Request | None = None
        self.response: Response | None = None
        self.latency = 0.0
        self._transport: asyncio.Transport | None = None
        self._conn: Connection | None = None
        self._head: HeadParser | None = HeadParser(
            DEFAULT_MAX_HEADER_COUNT if max_header_count is None else max_header_count,
            DEFAULT_MAX_LINE_SIZE if max_line_size is None else max_line_size,
        )
        self._pending = b""  # bytes received after the HTTP head, before the connection is open
        self._refusal_body_left = 0
        self._handshake_waiter: asyncio.Future[None] | None = None
        self._server_hook: Callable[[WebSocket, Request], object] | None = None
        self._sink: Callable[[Data], None] | None = None
        self._sink_closed: Callable[[ConnectionClosed], None] | None = None
        self._hold_close_reply = False
        # Created on the first message that has to wait: an idle connection should not carry an empty deque.
        self._messages: collections.deque[Data] | None = None
        self._recv_waiter: asyncio.Future[Data] | None = None
        self._queue_paused = False
        self._user_paused = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._send_lock: asyncio.Lock | None = None
        self._pings: dict[bytes, tuple[asyncio.Future[float] | None, float]] = {}
        self._keepalive_timer: asyncio.TimerHandle | Deadline | None = None
        self._open_timer: Deadline | None = None  # the server's open_timeout, until the handshake ends
        self._out: list[bytes] | None = None  # frames collected while queued messages are being answered
        self._out_size = 0
        self._flush_scheduled = False
        self._reading_stopped = False  # the application waits in wait_closed(): it reads no more messages
        self._close_timer: asyncio.TimerHandle | None = None
        self._lost = False  # connection_lost() has run
        self._close_waiters: list[asyncio.Future[None]] | None = None  # close()/wait_closed() callers
        # Set only while data_received hands a control event on (_in_receive): the receiver settled in this
        # read, with a message or by a Close, for data_received to wake once every event is handled.
        self._handoff: tuple[asyncio.Future[Data], _handoff.Held | None] | None = None
        self._in_receive = False
        self._compression_limit = 10

    # ------------------------------------------------------------------ asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self._transport = transport
        transport.set_write_buffer_limits(high=self.write_limit)

    def data_received(self, data: bytes) -> None:
        conn = self._conn
        if conn is None:
            self._receive_handshake(data)
            return
        events = conn.receive_data(data)
        if conn.outgoing:
            self._flush_outgoing(conn)
        handoff = None
        for event in events:
            kind = type(event)
            if kind is bytes or kind is str:
                if self._sink is not None:
                    self._sink(event)  # type: ignore[arg-type]
                    continue
                waiter = self._recv_waiter
                if waiter is not None:
                    self._recv_waiter = None
                    if not waiter.done():
                        # The task runs once every event is in place, so that it finds the rest queued.
                        handoff = (waiter, _handoff.settle(waiter, event))  # type: ignore[misc]
                        continue
                messages = self._messages
                if messages is None:
                    messages = self._messages = collections.deque()
                messages.append(event)  # type: ignore[arg-type]
                if self._max_queue and len(messages) >= self._max_queue and not self._queue_paused:
                    self._queue_paused = True
                    if not self._user_paused:
                        self._transport.pause_reading()  # type: ignore[union-attr]
            else:
                # While it handles the event, a message handed to the waiting recv() above counts as unread (a
                # Close must wait for it), and a receiver woken by a Close is left for the end of this method.
                self._handoff = handoff
                self._in_receive = True
                try:
                    self._receive_control(event)
                finally:
                    self._in_receive = False
                handoff, self._handoff = self._handoff, None
        if handoff is not None:
            _handoff.wake(*handoff)

    def eof_received(self) -> bool | None:
        # Returning None closes the transport: a peer that half-closes is done with the connection.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        conn = self._conn
        if conn is not None:
            conn.receive_eof()
        for timer in (self._keepalive_timer, self._close_timer, self._open_timer):
            if timer is not None:
                timer.cancel()
        self._keepalive_timer = self._close_timer = self._open_timer = None
        handshake = self._handshake_waiter
        if handshake is not None and not handshake.done():
            if self.response is not None and self._refusal_body_left:
                handshake.set_result(None)  # a refusal whose body ended with the connection
            else:
                handshake.set_exception(ConnectionError("connection closed during the opening handshake"))
        self._lost = True
        if self._pings:
            closed = self._closed_exception()
            for waiter, _ in self._pings.values():
                if waiter is not None and not waiter.done():
                    waiter.set_exception(closed)
            self._pings.clear()
        self._write_paused = False
        self._release_drain_waiters()
        # Last, once the state is final: the woken tasks may run right here (wsstream.handoff).
        self._wake_receiver()
        close_waiters, self._close_waiters = self._close_waiters, None
        if close_waiters:
            for close_waiter in close_waiters:
                if not close_waiter.done():
                    _handoff.wake(close_waiter, _handoff.settle(close_waiter, None))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._release_drain_waiters()

    # ------------------------------------------------------------------ opening handshake plumbing

    def _receive_handshake(self, data: bytes) -> None:
        head = self._head
        if head is None:
            # Head complete, connection not open yet (server deciding, client reading a refusal's body).
            self._pending += data
            if self._refusal_body_left:
                self._refusal_body_left = max(0, self._refusal_body_left - len(data))
                if not self._refusal_body_left:
                    self._finish_refusal_body()
            elif len(self._pending) > MAX_EARLY_DATA:
                # A peer sending frames before the handshake is settled: stop reading until it is (_open).
                self._transport.pause_reading()  # type: ignore[union-attr]
            return
        try:
            if not head.feed(data):
                return
            self._head = None
            self._pending = head.leftover
            if self.is_client:
                response = head.response()
                self.response = response
                if response.status != 101:
                    length = response.headers.get("Content-Length", "0") or "0"
                    wanted = min(int(length), MAX_REFUSAL_BODY) if length.isdigit() else 0
                    self._refusal_body_left = max(0, wanted - len(self._pending))
                    if self._refusal_body_left:
                        return
                    self._finish_refusal_body()
                    return
                self._set_handshake_result(None)
            else:
                request = head.request()
                self.request = request
                assert self._server_hook is not None
                self._server_hook(self, request)
        except HandshakeError as exc:
            if self.is_client:
                self._set_handshake_result(exc)
            else:
                status = getattr(exc, "status", 431 if getattr(exc, "too_large", False) else 400)
                self._refuse(Response(status, body=f"Failed to open a WebSocket connection: {exc}.\n"))

    def _finish_refusal_body(self) -> None:
        assert self.response is not None
        self.response.body = self._pending[:MAX_REFUSAL_BODY]
        self._set_handshake_result(None)

    def _set_handshake_result(self, exc: BaseException | None) -> None:
        waiter = self._handshake_waiter
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    async def _client_handshake(self, request: Request) -> Response:
        """Send the upgrade request; return the server's response (its body read when it is a refusal)."""
        self.request = request
        self._handshake_waiter = self._loop.create_future()
        self._transport.write(request.serialize())  # type: ignore[union-attr]
        await self._handshake_waiter
        assert self.response is not None
        return self.response

    def _refuse(self, response: Response) -> None:
        """Server side: answer the upgrade request with an HTTP error and close."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            self.response = response
            transport.write(response.serialize())
            transport.close()

    def _open(self, accepted: Accepted, response: Response | None = None, compression_limit: int = 10) -> None:
        """The handshake succeeded: start the WebSocket connection (server: after writing the 101 response).

        ``compression_limit`` is ``Deflate.concurrency_limit``: compressions this loop runs in threads at once.
        """
        self._compression_limit = compression_limit
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        transport = self._transport
        assert transport is not None
        self.subprotocol = accepted.subprotocol
        self.extensions = accepted.extensions
        self._conn = Connection(
            self.is_client,
            max_size=self.max_size,
            auto_pong=self.auto_pong,
            skip_utf8_validation=self.skip_utf8_validation,
            deflate=accepted.deflate,
            auto_close_reply=False,
        )
        if response is not None:
            self.response = response
            transport.write(response.serialize())
        if self.ping_interval is not None:
            # Armed for every connection and often cancelled unfired: the shared queue's timer is the cheaper one.
            self._keepalive_timer = deadlines(self._loop, self.ping_interval).add(WebSocket._keepalive, self)
        pending, self._pending = self._pending, b""
        if pending:
            self.data_received(pending)
        if self._lost:
            # The connection was lost while the handshake was being settled: what arrived before is delivered,
            # then the end (connection_lost came before there was a Connection to tell).
            self._conn.receive_eof()
            return
        if not transport.is_closing() and not self._queue_paused and not self._user_paused:
            transport.resume_reading()  # in case early data paused it; a no-op otherwise

    # ------------------------------------------------------------------ receiving

    async def recv(self) -> Data:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Raises :class:`ConnectionClosedOK` after a normal close and :class:`ConnectionClosedError` after an
        abnormal one, once every message received before the close has been returned.
        Only one coroutine may wait in ``recv`` at a time.
        """
        messages = self._messages
        if messages:
            message = messages.popleft()
            if self._queue_paused and len(messages) <= self._resume_at:
                self._resume_from_queue()
            return message
        waiter = self._next_waiter()
        try:
            return await waiter
        except asyncio.CancelledError:
            self._recv_cancelled(waiter)
            raise

    def __aiter__(self) -> AsyncIterator[Data]:
        return self

    async def __anext__(self) -> Data:
        # recv() written out again rather than awaited: one coroutine less per message.
        messages = self._messages
        if messages:
            message = messages.popleft()
            if self._queue_paused and len(messages) <= self._resume_at:
                self._resume_from_queue()
            return message
        try:
            waiter = self._next_waiter()
            return await waiter
        except ConnectionClosedOK:
            raise StopAsyncIteration from None
        except asyncio.CancelledError:
            self._recv_cancelled(waiter)
            raise

    def _next_waiter(self) -> asyncio.Future[Data]:
        """The Future the next message will be delivered to; raises ConnectionClosed if none will come."""
        if self._receiving_done():
            conn = self._conn
            if conn is not None and conn.close_received is not None and conn.close_sent is None:
                self._reply_to_close()  # every message before the peer's Close has been read
            raise self._closed_exception()
        if self._recv_waiter is not None:
            raise RuntimeError("another coroutine is already waiting for the next message")
        if self._out:
            self._flush()  # about to wait for the peer: what we owe it goes out first
        waiter: asyncio.Future[Data] = self._loop.create_future()
        self._recv_waiter = waiter
        return waiter

    def _recv_cancelled(self, waiter: asyncio.Future[Data]) -> None:
        if self._recv_waiter is waiter:
            self._recv_waiter = None
        elif waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            # Delivered as we were cancelled: keep it for next time.
            if self._messages is None:
                self._messages = collections.deque()
            self._messages.appendleft(waiter.result())

    def _receiving_done(self) -> bool:
        conn = self._conn
        if conn is None or self._lost:
            return self._lost
        return conn.close_received is not None or conn.failure is not None or conn.state == State.CLOSED

    def set_message_sink(
        self,
        on_message: Callable[[Data], None] | None,
        on_closed: Callable[[ConnectionClosed], None] | None = None,
        *,
        hold_close_reply: bool = False,
    ) -> None:
        """Deliver messages to ``on_message`` as they arrive instead of queueing them for :meth:`recv`.

        For adapters that would otherwise run a ``recv()`` loop in a task (the stream adapters): messages already
        queued are handed over first, in order. ``on_closed`` is called once, with the exception :meth:`recv`
        would raise, when no more messages will come. The sink applies its own back-pressure with
        :meth:`pause_reading`. ``None`` restores queueing.

        ``hold_close_reply=True`` gives TCP's half-close: the peer's normal Close only ends the incoming
        direction (``on_closed``); we may go on sending until :meth:`send_close_nowait` or :meth:`close`
        answers it, at the latest after ``close_timeout``.
        """
        self._sink = on_message
        self._sink_closed = on_closed
        self._hold_close_reply = hold_close_reply and on_message is not None
        if on_message is not None:
            while self._messages:
                on_message(self._messages.popleft())
            self._messages = None
            if self._queue_paused:
                self._resume_from_queue()
            conn = self._conn
            if conn is not None and conn.close_received is not None and conn.close_sent is None:
                self._reply_to_close()  # held for the queue the sink has just taken
            elif self._receiving_done():
                self._wake_receiver()

    def send_nowait(self, data: bytes | bytearray | memoryview, *, binary: bool = True) -> None:
        """Write one data message now, without waiting for the send buffer to drain (for synchronous adapters
        such as the stream transport; check :attr:`writing_paused` or use :meth:`add_writable_callback`).

        Raises :class:`ConnectionClosed` once a Close was sent or the connection is gone.
        """
        conn = self._conn
        if conn is None or not conn.can_send_data or self._transport is None or self._transport.is_closing():
            raise self._send_closed_exception()
        self._write(conn.send_data(OP_BINARY if binary else OP_TEXT, data))

    def send_close_nowait(self, code: int = 1000, reason: str = "") -> bool:
        """Write a Close frame now, after every frame already written; False if one was already sent.

        Unlike :meth:`close` this neither waits for the peer's Close nor arms ``close_timeout``: the caller
        keeps reading until the peer answers (a stream's ``write_eof``).
        """
        conn = self._conn
        transport = self._transport
        if conn is None or transport is None or transport.is_closing() or conn.state == State.CLOSED:
            return False
        if conn.close_received is not None:
            # Answering a Close that was held (half-close): this completes the closing handshake.
            self._reply_to_close()
            return True
        frame = conn.send_close(code, reason)
        if not frame:
            return False
        self._write(frame)
        self._flush()
        return True

    @property
    def writing_paused(self) -> bool:
        """True while the socket's send buffer is above its high-water mark (``write_limit``)."""
        return self._write_paused

    def add_writable_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the send buffer drains below its low-water mark or the connection is lost."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        waiter.add_done_callback(lambda _: callback())
        if self._transport is None or self._lost:
            waiter.set_result(None)
        else:
            self._drain_waiters.append(waiter)

    def _wake_receiver(self) -> None:
        on_closed = self._sink_closed
        if on_closed is not None:
            self._sink_closed = None
            on_closed(self._closed_exception())
        waiter = self._recv_waiter
        if waiter is not None:
            self._recv_waiter = None
            if not waiter.done():
                held = _handoff.settle_exception(waiter, self._closed_exception())
                if self._in_receive:
                    self._handoff = (waiter, held)  # data_received wakes it once every event is handled
                else:
                    _handoff.wake(waiter, held)

    def _resume_from_queue(self) -> None:
        self._queue_paused = False
        transport = self._transport
        if not self._user_paused and transport is not None and not transport.is_closing():
            transport.resume_reading()

    def pause_reading(self) -> None:
        """Stop reading from the socket (ws's ``pause``); messages already received stay queued."""
        if not self._user_paused:
            self._user_paused = True
            transport = self._transport
            if not self._queue_paused and transport is not None and not transport.is_closing() and self._conn:
                transport.pause_reading()

    def resume_reading(self) -> None:
        """Undo :meth:`pause_reading` (ws's ``resume``)."""
        if self._user_paused:
            self._user_paused = False
            transport = self._transport
            if not self._queue_paused and transport is not None and not transport.is_closing() and self._conn:
                transport.resume_reading()

    def _receive_control(self, event: object) -> None:
        if isinstance(event, Pong):
            self._receive_pong(event.payload)
        elif type(event) is CloseReceived or isinstance(event, ProtocolError):
            conn = self._conn
            assert conn is not None and self._transport is not None
            if isinstance(event, ProtocolError):
                logger.debug("failing the connection: %s", event)
            elif conn.close_sent is None:
                if self._hold_close_reply and self._sink is not None:
                    # Half-close: the incoming direction ends here; our Close follows when the sink is done.
                    self._arm_close_timer(self._reply_to_close)
                    self._wake_receiver()
                    return
                if (self._messages or self._handoff is not None) and self._sink is None and not self._reading_stopped:
                    # Messages the peer sent before its Close are still unread: let the application answer
                    # them before our Close goes out (recv() sends it once the queue is empty), within
                    # close_timeout.
                    self._arm_close_timer(self._reply_to_close)
                    return
                self._write(conn.reply_to_close())
            self._end_closing_handshake()

    def _reply_to_close(self) -> None:
        conn = self._conn
        if conn is not None and conn.close_sent is None and self._transport is not None:
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
            if not self._transport.is_closing():
                self._write(conn.reply_to_close())
            self._end_closing_handshake()

    def _end_closing_handshake(self) -> None:
        """Both Closes are out (or the connection failed): wake the receiver and let TCP go."""
        conn = self._conn
        assert conn is not None and self._transport is not None
        if not self.is_client or conn.failure is not None:
            # The server closes TCP first (RFC 6455 7.1.1); a failed connection is closed by either side.
            self._flush()
            self._transport.close()
        elif conn.close_handshake_done:
            self._arm_close_timer()
        self._wake_receiver()

    def _flush_outgoing(self, conn: Connection) -> None:
        transport = self._transport
        assert transport is not None
        if not transport.is_closing():
            for frame in conn.outgoing:
                self._write(frame)
        conn.outgoing.clear()

    # ------------------------------------------------------------------ sending

    async def send(
        self,
        message: DataLike | Iterable[DataLike] | AsyncIterable[DataLike],
        *,
        binary: bool | None = None,
        compress: bool | None = None,
    ) -> None:
        """Send a message: ``str`` as text, bytes-like as binary (``binary=`` overrides).

        An iterable or async iterable of chunks is sent as one fragmented message (each chunk a frame).
        ``compress=False`` sends this message uncompressed even when permessage-deflate is agreed;
        ``compress=True`` compresses it even below the threshold. Waits while the send buffer is above
        ``write_limit``. Raises :class:`ConnectionClosed` once the closing handshake has started.
        """
        conn = self._conn
        if conn is None or not conn.can_send_data:
            raise self._send_closed_exception()
        lock = self._send_lock
        if lock is None or not lock.locked():
            # Fast path: a whole message written at once, nothing to wait for but the drain.
            kind = type(message)
            if kind is str:
                opcode = OP_BINARY if binary else OP_TEXT
                data: bytes | bytearray | memoryview = message.encode()  # type: ignore[union-attr]
            elif kind is bytes or kind is bytearray or kind is memoryview:
                opcode = OP_TEXT if binary is False else OP_BINARY
                data = message  # type: ignore[assignment]
            else:
                opcode = -1
            if opcode != -1:
                if conn.deflate is None:
                    frame = conn.send_data(opcode, data, False)
                else:
                    frame = _encode_inline(conn, opcode, data, compress)
                if frame:
                    self._write(frame)
                    if self._write_paused:
                        await self._drain()
                    return
        # Slow paths hold the send lock so that no other message gets between their frames.
        if self._send_lock is None:
            self._send_lock = asyncio.Lock()
        async with self._send_lock:
            await self._send_locked(message, binary, compress)

    async def _send_locked(
        self,
        message: DataLike | Iterable[DataLike] | AsyncIterable[DataLike],
        binary: bool | None,
        compress: bool | None,
    ) -> None:
        """The whole of :meth:`send` for a caller holding the send lock."""
        conn = self._conn
        if conn is None or not conn.can_send_data:
            raise self._send_closed_exception()
        if isinstance(message, str):
            opcode = OP_BINARY if binary else OP_TEXT
            data: bytes | bytearray | memoryview = message.encode()
        elif isinstance(message, (bytes, bytearray, memoryview)):
            opcode = OP_TEXT if binary is False else OP_BINARY
            data = message
        elif isinstance(message, (Iterable, AsyncIterable)):
            await self._send_fragments(message, binary)  # type: ignore[arg-type]
            return
        else:
            raise TypeError(f"cannot send {type(message).__name__}: expected str, bytes-like or an iterable of them")
        frame = _encode_inline(conn, opcode, data, compress)
        if not frame:
            deflate = conn.deflate
            assert deflate is not None
            # In a worker thread so the event loop keeps running; the limiter bounds how many compressions
            # run at once on this loop (Deflate.concurrency_limit). The codec is not thread-safe: the send
            # lock also guarantees one compression at a time per connection, in message order.
            data = bytes(data)  # the caller may reuse its buffer while we wait
            async with compression_limiter(self._loop, self._compression_limit):
                payload = await self._loop.run_in_executor(None, deflate.compress, data)
            if not conn.can_send_data:
                raise self._send_closed_exception()
            frame = conn.send_compressed(opcode, payload)
        await self._write_frame(frame)

    async def _send_fragments(self, chunks: Iterable[DataLike] | AsyncIterable[DataLike], binary: bool | None) -> None:
        """One fragmented message, a frame per chunk (the send lock is held). Fragments are not compressed."""
        opcode = -1
        previous: bytes | None = None
        conn = self._conn
        assert conn is not None

        async def emit(chunk: DataLike) -> None:
            nonlocal opcode, previous
            is_text = isinstance(chunk, str)
            data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
            if opcode == -1:
                opcode = OP_TEXT if (is_text if binary is None else not binary) else OP_BINARY
                first = opcode
            else:
                first = OP_CONT
            if previous is not None:
                await self._write_frame(previous)
            if not conn.can_send_data:
                raise self._send_closed_exception()
            previous = conn.send_data(first, data, False, fin=False)

        if isinstance(chunks, AsyncIterable):
            async for chunk in chunks:
                await emit(chunk)
        else:
            for chunk in chunks:
                await emit(chunk)
        if previous is None:
            return  # nothing to send: an empty iterable is no message at all
        # The last frame is held back so that it can go out with FIN set.
        await self._write_frame(_with_fin(previous))

    async def _write_frame(self, frame: bytes) -> None:
        self._write(frame)
        if self._write_paused:
            await self._drain()

    def _write(self, frame: bytes) -> None:
        """Write one frame after every frame written before it: all frames go out through here."""
        out = self._out
        if out:
            out.append(frame)
            self._out_size += len(frame)
            if self._out_size >= COALESCE_LIMIT:
                self._flush()
        elif self._messages and len(frame) < COALESCE_LIMIT:
            # More received messages are queued: the application is working through a burst, so collect.
            self._out = [frame]
            self._out_size = len(frame)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush_soon)
        else:
            self._transport.write(frame)  # type: ignore[union-attr]

    def _flush(self) -> None:
        """Write the collected frames now, with one system call."""
        out = self._out
        if out:
            self._out = None
            self._out_size = 0
            transport = self._transport
            if transport is not None and not transport.is_closing():
                if len(out) == 1:
                    transport.write(out[0])
                else:
                    transport.writelines(out)

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        self._flush()

    async def _drain(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            if self._conn is not None and self._conn.state == State.CLOSED:
                raise self._closed_exception()
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def _release_drain_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def ping(self, data: DataLike = b"") -> float:
        """Send a Ping and wait for its Pong; return the round trip in seconds (also in :attr:`latency`).

        An empty ``data`` is replaced by 4 random bytes so that concurrent pings can be told apart.
        """
        conn = self._conn
        if conn is None or not conn.can_send_data:
            raise self._send_closed_exception()
        payload = data.encode() if isinstance(data, str) else bytes(data)
        if not payload:
            payload = os.urandom(4)
            while payload in self._pings:
                payload = os.urandom(4)
        elif payload in self._pings:
            raise ValueError("already waiting for a pong with this payload")
        frame = conn.send_ping(payload)
        waiter: asyncio.Future[float] = self._loop.create_future()
        self._pings[payload] = (waiter, self._loop.time())
        self._write(frame)
        self._flush()
        return await waiter

    async def pong(self, data: DataLike = b"") -> None:
        """Send an unsolicited Pong (or answer a Ping yourself when ``auto_pong=False``)."""
        conn = self._conn
        if conn is None or not conn.can_send_data:
            raise self._send_closed_exception()
        self._write(conn.send_pong(data.encode() if isinstance(data, str) else bytes(data)))

    def _receive_pong(self, payload: bytes) -> None:
        pings = self._pings
        if payload not in pings:
            return
        now = self._loop.time()
        # A Pong answers the Ping with its payload and every Ping sent before it (RFC 6455 5.5.3).
        for key in list(pings):
            waiter, sent_at = pings.pop(key)
            if waiter is not None and not waiter.done():
                waiter.set_result(now - sent_at)
            if key == payload:
                self.latency = now - sent_at
                break

    def _keepalive(self) -> None:
        """Timer callback: ping the peer; fail the connection with 1011 if no Pong comes within ping_timeout."""
        self._keepalive_timer = None
        conn = self._conn
        transport = self._transport
        if conn is None or transport is None or conn.state != State.OPEN or transport.is_closing():
            return
        payload = os.urandom(4)
        self._pings[payload] = (None, self._loop.time())
        self._write(conn.send_ping(payload))
        if self.ping_timeout is not None:
            self._keepalive_timer = self._loop.call_later(self.ping_timeout, self._keepalive_check, payload)
        elif self.ping_interval is not None:
            self._keepalive_timer = self._loop.call_later(self.ping_interval, self._keepalive)

    def _keepalive_check(self, payload: bytes) -> None:
        self._keepalive_timer = None
        if payload in self._pings:
            logger.debug("keepalive ping timed out; failing the connection")
            self._fail(1011, "keepalive ping timeout")
            return
        if self.ping_interval is not None:
            delay = max(0.0, self.ping_interval - (self.ping_timeout or 0.0))
            self._keepalive_timer = self._loop.call_later(delay, self._keepalive)

    # ------------------------------------------------------------------ closing

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Run the closing handshake: send Close, wait for the peer's Close and the end of the TCP connection,
        at most ``close_timeout`` seconds, then drop the connection."""
        conn = self._conn
        transport = self._transport
        if conn is None or transport is None:
            if transport is not None:
                transport.abort()
            await self._until_lost()
            return
        if conn.state != State.CLOSED and not transport.is_closing():
            # Answering the peer's Close echoes its code; otherwise ours starts the closing handshake.
            frame = conn.reply_to_close() if conn.close_received is not None else conn.send_close(code, reason)
            if frame:
                self._write(frame)
            self._flush()
            # The peer's Close can only be seen by reading: a paused connection would wait for close_timeout.
            if self._user_paused or self._queue_paused:
                self._user_paused = self._queue_paused = False
                transport.resume_reading()
            if conn.close_handshake_done and not self.is_client:
                transport.close()
        if not self._lost:
            # A timer rather than wait_for(): no task per close, and the abort it does is all a timeout needs.
            # None when the transport is already closing with nothing left to write: the end is on its way.
            timer = None
            ending = transport.is_closing() and not transport.get_write_buffer_size()
            if self.close_timeout is not None and not ending:
                timer = self._loop.call_later(self.close_timeout, transport.abort)
            try:
                await self._until_lost()
            finally:
                if timer is not None:
                    timer.cancel()

    def abort(self) -> None:
        """Drop the connection at once, without a closing handshake (ws's ``terminate``)."""
        if self._transport is not None:
            self._transport.abort()

    async def wait_closed(self) -> None:
        """Wait until the TCP connection is closed.

        Waiting here also says that unread messages will not be answered: a Close from the peer is replied
        to at once instead of after the queue has been read.
        """
        if not self._lost:
            self._reading_stopped = True
            conn = self._conn
            held_for_queue = not self._hold_close_reply  # a half-close hold is the sink's to release
            if held_for_queue and conn is not None and conn.close_received is not None and conn.close_sent is None:
                self._reply_to_close()
        await self._until_lost()

    async def _until_lost(self) -> None:
        """Wait for connection_lost(); a cancelled caller leaves the other waiters waiting."""
        if self._lost:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        if self._close_waiters is None:
            self._close_waiters = []
        self._close_waiters.append(waiter)
        await waiter

    def _fail(self, code: int, reason: str) -> None:
        conn = self._conn
        transport = self._transport
        if conn is not None and transport is not None and not transport.is_closing():
            frame = conn.send_close(code, reason)
            if frame:
                self._write(frame)
            self._flush()
            conn.failure = conn.failure or ProtocolError(reason, code)
            transport.close()
            self._wake_receiver()

    def _arm_close_timer(self, action: Callable[[], None] | None = None) -> None:
        """After close_timeout, run ``action`` (default: drop the connection)."""
        if self._close_timer is None and self.close_timeout is not None and self._transport is not None:
            self._close_timer = self._loop.call_later(self.close_timeout, action or self._transport.abort)

    # ------------------------------------------------------------------ state and properties

    @property
    def state(self) -> State:
        """CONNECTING during the opening handshake, OPEN, CLOSING once a Close was sent or received, CLOSED."""
        if self._lost:
            return State.CLOSED
        conn = self._conn
        if conn is None:
            return State.CONNECTING
        return conn.state

    @property
    def close_code(self) -> int | None:
        """The peer's close code (1005 if its Close had none), the code we failed the connection with,
        1006 if the connection was lost without a Close, None while open."""
        conn = self._conn
        if conn is not None:
            if conn.close_received is not None:
                return conn.close_received[0]
            if conn.failure is not None:
                return conn.failure.code
        return 1006 if self._lost else None

    @property
    def close_reason(self) -> str | None:
        """The reason that goes with :attr:`close_code`."""
        conn = self._conn
        if conn is not None:
            if conn.close_received is not None:
                return conn.close_received[1]
            if conn.failure is not None:
                return str(conn.failure)
        return "" if self._lost else None

    def _closed_exception(self) -> ConnectionClosed:
        code = self.close_code
        reason = self.close_reason or ""
        conn = self._conn
        clean = conn is not None and conn.failure is None and code in (1000, 1001, 1005)
        return (ConnectionClosedOK if clean else ConnectionClosedError)(code if code is not None else 1006, reason)

    def _send_closed_exception(self) -> Exception:
        if self._conn is None and not self._lost:
            return RuntimeError("the opening handshake has not completed")
        return self._closed_exception()

    @property
    def local_address(self) -> Any:
        """The socket's own address (``sockname``)."""
        return self._transport.get_extra_info("sockname") if self._transport is not None else None

    @property
    def remote_address(self) -> Any:
        """The peer's address (``peername``)."""
        return self._transport.get_extra_info("peername") if self._transport is not None else None

    @property
    def buffered_amount(self) -> int:
        """Bytes accepted by :meth:`send` and not yet written to the socket."""
        return self._out_size + (self._transport.get_write_buffer_size() if self._transport is not None else 0)

    @property
    def transport(self) -> asyncio.Transport | None:
        """The underlying transport (TCP, TLS or a proxy tunnel)."""
        return self._transport

    @property
    def deflate(self) -> PerMessageDeflate | None:
        """The agreed permessage-deflate codec, if any."""
        return self._conn.deflate if self._conn is not None else None

    def __repr__(self) -> str:
        side = "client" if self.is_client else "server"
        return f"<WebSocket {side} {self.state.name} {self.remote_address}>"


def _encode_inline(
    conn: Connection, opcode: int, data: bytes | bytearray | memoryview, compress: bool | None
) -> bytes:
    """The frame of a whole message, compressed when deflate is agreed and the message calls for it;
    b"" when it is large enough to be compressed in a worker thread instead."""
    deflate = conn.deflate
    if deflate is None or compress is False or (compress is None and len(data) < deflate.threshold):
        return conn.send_data(opcode, data, False)
    if len(data) < COMPRESS_IN_THREAD:
        return conn.send_compressed(opcode, deflate.compress(data))
    return b""


def _with_fin(frame: bytes) -> bytes:
    """The same frame with FIN set (the mask, if any, stays valid: it covers the payload, not the header)."""
    return bytes((frame[0] | 0x80,)) + frame[1:]
