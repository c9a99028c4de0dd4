"""The connector contract and the machinery every proxy hop shares.

A connector answers one question: how does a client get a byte pipe to the origin server? Its single method
has the shape of ``loop.create_connection`` (see :class:`Connector`). Proxy connectors are built from *hops*:
each hop turns a pipe to its proxy into a pipe to the next address (the next proxy, or the origin), so a hop
can run over any other connector's tunnel (:class:`TunnelConnector`). While a hop talks to its proxy, the
transport belongs to a :class:`Pipe`, a small buffering protocol; once the tunnel is up the transport is
handed to the caller's protocol with every byte that arrived after the proxy's reply.

This module owns: the ``Connector`` protocol, ``Pipe``, ``Attempt`` (the ``timeout`` and the step in progress,
so a failure can say which hop failed), the hand-over, and the TLS step to the origin.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import sys
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar, cast, runtime_checkable
from urllib.parse import urlsplit

__all__ = ["Attempt", "Connector", "Pipe", "TunnelConnector", "hand_over", "redact", "run_bounded"]

_T = TypeVar("_T")

# Bytes a hop buffers before it stops reading: a proxy's reply is a few hundred bytes, anything past this is a
# peer talking out of turn and waits in the kernel until the caller's protocol takes over.
_PIPE_HIGH_WATER = 2**18


@runtime_checkable
class Connector(Protocol):
    """How a client reaches the origin server: the shape of ``loop.create_connection``.

    ``connect`` returns a transport connected to ``host:port`` (through TLS when ``ssl`` is given, checking
    the certificate against ``server_hostname`` or else ``host``) whose protocol is ``protocol_factory()``,
    with ``connection_made`` already called and any bytes that arrived early already passed to
    ``data_received``. ``timeout`` (seconds, or None) bounds the whole connect, every proxy hop included;
    running out raises the built-in ``TimeoutError`` naming the step that was in progress.
    """

    async def connect(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None,
        server_hostname: str | None,
        timeout: float | None,
    ) -> tuple[asyncio.Transport, asyncio.Protocol]: ...


class Attempt:
    """One call to ``connect``: its time budget and the step in progress (for the message of a timeout)."""

    __slots__ = ("deadline", "step", "timeout")

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        self.step = "connecting"

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None when unbounded."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - asyncio.get_running_loop().time())


async def run_bounded(attempt: Attempt, work: Awaitable[_T]) -> _T:
    """Await ``work`` within ``attempt.timeout``; on expiry raise the built-in ``TimeoutError`` naming the
    step.

    ``work`` must close whatever it opened when cancelled: that is how a timeout releases a half-built tunnel.
    """
    if attempt.timeout is None:
        return await work
    try:
        return await asyncio.wait_for(work, attempt.timeout)
    except asyncio.TimeoutError:  # before 3.11 not the built-in TimeoutError
        raise TimeoutError(f"timed out after {attempt.timeout:g} s: {attempt.step}") from None


def redact(url: str) -> str:
    """``url`` without its password, fit for an error message or a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


class Pipe(asyncio.Protocol):
    """The protocol that owns a transport while a hop talks to its proxy: buffers what arrives, reads on
    demand.

    ``transport`` may be replaced (TLS to the proxy wraps the TCP transport; the pipe stays the protocol).
    """

    __slots__ = ("_buffer", "_closed", "_eof", "_exc", "_paused", "_waiter", "transport")

    transport: asyncio.Transport

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._eof = False
        self._closed = False
        self._exc: BaseException | None = None
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > _PIPE_HIGH_WATER and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        # Keep the transport: the caller's protocol decides what a half-close means once it takes over.
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._exc = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # reading and writing during a hop's handshake

    @property
    def at_eof(self) -> bool:
        """The peer half-closed or the connection is gone: no more bytes will come."""
        return self._eof or self._closed

    def write(self, data: bytes) -> None:
        """Send ``data`` to the peer (handshake messages are small: no flow control needed)."""
        self.transport.write(data)

    async def _more(self) -> None:
        """Wait until something arrives; raise ``IncompleteReadError`` when nothing ever will."""
        if self.at_eof:
            raise asyncio.IncompleteReadError(bytes(self._buffer), None)
        if self._paused:
            self._paused = False
            self.transport.resume_reading()
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def read_exactly(self, n: int) -> bytes:
        """The next ``n`` bytes; ``IncompleteReadError`` if the peer stops first."""
        while len(self._buffer) < n:
            await self._more()
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def read_some(self, limit: int) -> bytes:
        """What is buffered, up to ``limit`` bytes, waiting for at least one; ``b""`` at EOF."""
        while not self._buffer:
            if self.at_eof:
                return b""
            await self._more()
        data = bytes(self._buffer[:limit])
        del self._buffer[:limit]
        return data

    async def read_head(self, limit: int) -> bytes | None:
        """Everything up to and including the first empty line (an HTTP head), or None past ``limit`` bytes.

        Bare LF line ends are accepted, as RFC 9112 allows a recipient to.
        """
        start = 0
        while True:
            crlf = self._buffer.find(b"\r\n\r\n", start)
            lf = self._buffer.find(b"\n\n", start)
            ends = [i + len(sep) for i, sep in ((crlf, b"\r\n\r\n"), (lf, b"\n\n")) if i >= 0]
            if ends:
                end = min(ends)
                head = bytes(self._buffer[:end])
                del self._buffer[:end]
                return head
            if len(self._buffer) > limit:
                return None
            start = max(0, len(self._buffer) - 3)
            await self._more()

    def take_buffer(self) -> bytes:
        """Remove and return every buffered byte."""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def buffered(self) -> int:
        return len(self._buffer)

    def abort(self) -> None:
        """Drop the connection at once (a failed or cancelled hop)."""
        if hasattr(self, "transport"):
            self.transport.abort()

    async def start_tls(self, context: ssl_module.SSLContext, server_hostname: str, attempt: Attempt) -> None:
        """Run a TLS client handshake over the current transport; the pipe stays its protocol.

        TLS inside TLS (an ``https://`` proxy, then a ``wss://`` origin) needs ``start_tls`` on an SSL
        transport. Python 3.11's rewritten SSL transport declares itself fit for that; 3.10's works too but
        does not say so, so the flag is set on that one transport (tested on 3.10.13).
        """
        if self._buffer or self.at_eof:
            raise ConnectionError(f"{len(self._buffer)} unexpected bytes or EOF from the peer before the TLS handshake")
        transport = self.transport
        if sys.version_info < (3, 11) and not getattr(transport, "_start_tls_compatible", False):
            transport._start_tls_compatible = True  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        remaining = attempt.remaining()
        tls_transport = await loop.start_tls(
            transport,
            self,
            context,
            server_hostname=server_hostname,
            ssl_handshake_timeout=remaining if remaining else None,
        )
        assert tls_transport is not None
        self.transport = tls_transport


def hand_over(
    pipe: Pipe, protocol_factory: Callable[[], asyncio.Protocol]
) -> tuple[asyncio.Transport, asyncio.Protocol]:
    """Give ``pipe``'s transport to a new ``protocol_factory()`` as if it had just connected.

    Events are replayed in order: ``connection_made``, the bytes that arrived after the last hop's reply,
    ``eof_received`` and ``connection_lost`` if they already happened. Runs without yielding, so nothing can
    slip in between.
    """
    transport = pipe.transport
    protocol = protocol_factory()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    leftover = pipe.take_buffer()
    if leftover:
        _deliver(protocol, leftover)
    if pipe._paused:
        pipe._paused = False
        transport.resume_reading()
    if pipe._eof and not pipe._closed and not protocol.eof_received():
        transport.close()
    if pipe._closed:
        protocol.connection_lost(pipe._exc if isinstance(pipe._exc, Exception) else None)
    return transport, protocol


def _deliver(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Pass ``data`` to a ``Protocol`` or a ``BufferedProtocol``."""
    if isinstance(protocol, asyncio.BufferedProtocol):
        view = memoryview(data)
        while view:
            buf = memoryview(protocol.get_buffer(len(view)))
            n = min(len(buf), len(view))
            if n == 0:
                raise RuntimeError("BufferedProtocol.get_buffer() returned an empty buffer")
            buf[:n] = view[:n]
            protocol.buffer_updated(n)
            view = view[n:]
    else:
        assert isinstance(protocol, asyncio.Protocol)
        protocol.data_received(data)


class TunnelConnector:
    """A connector made of proxy hops: it can open a tunnel over another connector's tunnel.

    Subclasses implement :meth:`open_tunnel`; ``connect`` adds the origin TLS and the hand-over. ``name`` is
    how a hop is named in errors ("proxy socks5://127.0.0.1:1080", or "proxy 2/3 ..." inside a chain).
    """

    __slots__ = ()

    async def open_tunnel(
        self, host: str, port: int, attempt: Attempt, *, via: Pipe | None = None, name: str | None = None
    ) -> Pipe:
        """A pipe whose far end is ``host:port``; ``via`` is a pipe already reaching this hop's first
        proxy."""
        raise NotImplementedError

    @property
    def first_address(self) -> tuple[str, int]:
        """The address this connector dials first (a proxy), which a previous hop must tunnel to."""
        raise NotImplementedError

    async def connect(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> tuple[asyncio.Transport, asyncio.Protocol]:
        """See :class:`Connector`."""
        attempt = Attempt(timeout)
        return await run_bounded(attempt, self._connect(protocol_factory, host, port, ssl, server_hostname, attempt))

    async def _connect(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        ssl: ssl_module.SSLContext | None,
        server_hostname: str | None,
        attempt: Attempt,
    ) -> tuple[asyncio.Transport, asyncio.Protocol]:
        pipe = await self.open_tunnel(host, port, attempt)
        try:
            if ssl is not None:
                attempt.step = f"TLS handshake with {format_address(host, port)} inside the tunnel"
                await pipe.start_tls(ssl, server_hostname or host, attempt)
            return hand_over(pipe, protocol_factory)
        except BaseException:
            pipe.abort()
            raise


def format_address(host: str, port: int) -> str:
    """``host:port`` with an IPv6 literal in brackets, as in a URL authority or a CONNECT target."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"
