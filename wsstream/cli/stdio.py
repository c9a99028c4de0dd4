"""Non-blocking stdin and stdout for the event loop: :func:`open_stdio`.

Pipes go through ``loop.connect_read_pipe`` / ``connect_write_pipe`` (on duplicated descriptors, so closing the
transports leaves fds 0 and 1 alone); a socket that is both stdin and stdout becomes one socket transport (its
``write_eof()`` is a real half-close). Regular files, ttys and ``/dev/null`` cannot be registered with epoll, so
a daemon thread serves them instead; so is a stdout pipe shared with stderr (non-blocking, it would make our own
stderr messages fail with EAGAIN). Either way the caller gets an ``asyncio.StreamReader`` with real
back-pressure (the reading thread waits while the buffer is full) and a writer with
``write``/``drain``/``close``/``wait_closed``. Descriptors made non-blocking are made blocking again on close:
the shell shares them.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import socket
import stat
import sys
import threading
from typing import Protocol

__all__ = ["ByteWriter", "Stdio", "open_stdio"]

#: Bytes read from stdin per system call.
READ_SIZE = 256 * 1024
#: stdout buffer above which ``drain()`` waits.
WRITE_HIGH_WATER = 1024 * 1024


class ByteWriter(Protocol):
    """What the pumps need from a writer: the subset of ``asyncio.StreamWriter`` that stdout also offers."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def can_write_eof(self) -> bool: ...

    def write_eof(self) -> None: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


def _kind(fd: int) -> str:
    """"fifo", "socket" (both pollable by epoll) or "other" (files, ttys, /dev/null: not, or not safely)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return "other"
    return "fifo" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "other"


def _same_file(fd1: int, fd2: int) -> bool:
    try:
        a, b = os.fstat(fd1), os.fstat(fd2)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class _ThreadFlowControl:
    """Stands in for a transport under a StreamReader: the reader pauses/resumes the reading thread."""

    __slots__ = ("resumed",)

    def __init__(self) -> None:
        self.resumed = threading.Event()
        self.resumed.set()

    def pause_reading(self) -> None:
        self.resumed.clear()

    def resume_reading(self) -> None:
        self.resumed.set()


def _read_in_thread(fd: int, reader: asyncio.StreamReader, flow: _ThreadFlowControl,
                    loop: asyncio.AbstractEventLoop) -> None:
    """Thread body: read ``fd`` into ``reader`` until EOF, waiting while the reader's buffer is full."""
    try:
        while True:
            flow.resumed.wait()
            try:
                data = os.read(fd, READ_SIZE)
            except OSError as exc:
                loop.call_soon_threadsafe(reader.set_exception, exc)
                return
            if not data:
                loop.call_soon_threadsafe(reader.feed_eof)
                return
            flow.resumed.clear()  # cleared until the loop has taken the chunk (and re-set it if not full)
            loop.call_soon_threadsafe(_feed, reader, flow, data)
    except RuntimeError:
        return  # the loop is closed: nobody is listening any more


def _feed(reader: asyncio.StreamReader, flow: _ThreadFlowControl, data: bytes) -> None:
    flow.resumed.set()
    reader.feed_data(data)  # calls flow.pause_reading() when the buffer passes twice the limit


class ThreadWriter:
    """A writer for a blocking descriptor: a daemon thread does the ``write()`` calls, in order."""

    __slots__ = ("_done", "_error", "_fd", "_loop", "_pending", "_queue", "_waiters")

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self._fd = fd
        self._loop = loop
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._pending = 0
        self._error: OSError | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._done: asyncio.Future[None] = loop.create_future()
        threading.Thread(target=self._run, name="wsstream-stdout", daemon=True).start()

    def _run(self) -> None:
        try:
            while (data := self._queue.get()) is not None:
                view = memoryview(data)
                try:
                    while view:
                        view = view[os.write(self._fd, view):]
                except OSError as exc:
                    self._loop.call_soon_threadsafe(self._failed, exc)
                    return
                self._loop.call_soon_threadsafe(self._written, len(data))
            self._loop.call_soon_threadsafe(self._finish)
        except RuntimeError:
            return  # the loop is closed

    def _written(self, n: int) -> None:
        self._pending -= n
        if self._pending <= WRITE_HIGH_WATER // 4:
            self._wake()

    def _failed(self, exc: OSError) -> None:
        self._error = exc
        self._wake()
        self._finish()

    def _finish(self) -> None:
        if not self._done.done():
            self._done.set_result(None)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def write(self, data: bytes) -> None:
        """Queue ``data``; raises the error of an earlier write (BrokenPipeError, ...)."""
        if self._error is not None:
            raise self._error
        if data:
            self._pending += len(data)
            self._queue.put(bytes(data))

    async def drain(self) -> None:
        """Wait while more than the high-water mark is queued."""
        while self._pending > WRITE_HIGH_WATER and self._error is None:
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            await waiter
        if self._error is not None:
            raise self._error

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("cannot half-close this descriptor")

    def close(self) -> None:
        """Flush what is queued, then stop the thread (the descriptor stays open)."""
        self._queue.put(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._done)


class Stdio:
    """stdin as a StreamReader, stdout as a :class:`ByteWriter`; :meth:`aclose` flushes and restores the fds."""

    def __init__(self, stdin: asyncio.StreamReader, stdout: ByteWriter,
                 transports: list[asyncio.BaseTransport], nonblocking_fds: list[int]) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self._transports = transports
        self._nonblocking_fds = nonblocking_fds

    async def aclose(self) -> None:
        """Flush stdout and give the descriptors back in blocking mode (the shell shares them)."""
        try:
            self.stdout.close()
            await asyncio.wait_for(self.stdout.wait_closed(), 10)
        except (OSError, asyncio.TimeoutError):
            pass
        for transport in self._transports:
            transport.close()
        for fd in self._nonblocking_fds:
            with contextlib.suppress(OSError):
                os.set_blocking(fd, True)


async def open_stdio(limit: int = 2**20) -> Stdio:
    """Wrap fds 0 and 1 for the running loop; ``limit`` is the StreamReader limit (and longest line)."""
    loop = asyncio.get_running_loop()
    sys.stdout.flush()
    if _kind(0) == "socket" and _same_file(0, 1):
        # One socket as both (inetd, some ProxyCommand setups): one full-duplex transport, whose write_eof()
        # is a real shutdown(SHUT_WR). A write-pipe transport would take incoming data for a hang-up.
        sock = socket.socket(fileno=os.dup(0))
        reader, writer = await asyncio.open_connection(sock=sock, limit=limit)
        writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        return Stdio(reader, writer, [], [0])

    transports: list[asyncio.BaseTransport] = []
    nonblocking: list[int] = []
    stdin = asyncio.StreamReader(limit=limit)
    if _kind(0) in ("fifo", "socket"):
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stdin), os.fdopen(os.dup(0), "rb", 0)
        )
        transports.append(transport)
        nonblocking.append(0)
    else:
        flow = _ThreadFlowControl()
        stdin.set_transport(flow)  # type: ignore[arg-type]  # only pause_reading/resume_reading are used
        threading.Thread(target=_read_in_thread, args=(0, stdin, flow, loop), name="wsstream-stdin",
                         daemon=True).start()

    stdout: ByteWriter
    if _kind(1) == "fifo" and not _same_file(1, 2):
        w_transport, w_protocol = await loop.connect_write_pipe(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), os.fdopen(os.dup(1), "wb", 0)
        )
        w_transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        stdout = asyncio.StreamWriter(w_transport, w_protocol, None, loop)
        nonblocking.append(1)
    else:
        # Files, ttys, a pipe shared with stderr, and a socket of its own (a write-pipe transport watches a
        # socket for readability as a sign of hang-up, which data sent our way would trigger).
        stdout = ThreadWriter(1, loop)
    return Stdio(stdin, stdout, transports, nonblocking)
