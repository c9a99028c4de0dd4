"""The server: :func:`serve` listens and runs a handler per WebSocket connection; :class:`WebSocketServer`.

Each accepted connection costs one task, created once its upgrade request has been read; it runs
``process_request``, answers the handshake, then the handler, then the closing handshake (1000 after a normal
return, 1011 when the handler raised).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Union, cast

from .client import resolve_compression
from .connection import WebSocket
from .core import handshake
from .core.http11 import Request, Response
from .deadlines import deadlines
from .exceptions import ConnectionClosed, HandshakeError

if TYPE_CHECKING:
    from .core.deflate import Deflate

__all__ = ["Handler", "Server", "WebSocketServer", "serve"]

logger = logging.getLogger("wsstream.server")

Handler = Callable[[WebSocket], Awaitable[None]]
ProcessRequest = Callable[[WebSocket, Request], Union[Response, None, Awaitable[Union[Response, None]]]]
SelectSubprotocol = Callable[[WebSocket, Sequence[str]], Union[str, None]]
Origins = Sequence[Union[str, "re.Pattern[str]", None]]


class Server:
    """Accepts WebSocket connections and runs their handler; :class:`WebSocketServer` adds a listener.

    ``handler`` is a coroutine function taking the :class:`WebSocket`, or a mapping ``{path: handler}``
    (paths compared without the query string; other paths get 404).
    """

    def __init__(
        self,
        handler: Handler | Mapping[str, Handler],
        *,
        subprotocols: Sequence[str] | None = None,
        select_subprotocol: SelectSubprotocol | None = None,
        process_request: ProcessRequest | None = None,
        origins: Origins | None = None,
        compression: Any = None,
        max_size: int | None = 100 * 2**20,
        max_queue: int | None = 16,
        write_limit: int = 64 * 1024,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        open_timeout: float | None = 10.0,
        close_timeout: float | None = 10.0,
        track_clients: bool = True,
        max_header_count: int | None = None,
        max_line_size: int | None = None,
        skip_utf8_validation: bool = False,
        auto_pong: bool = True,
        server_header: str | None = None,
    ) -> None:
        self.handler = handler
        self.subprotocols = subprotocols
        self.select_subprotocol = select_subprotocol
        self.process_request = process_request
        self.origins = origins
        self.deflate: Deflate | None = resolve_compression(compression)
        self.open_timeout = open_timeout
        self.track_clients = track_clients
        self.server_header = server_header
        self.ws_options: dict[str, Any] = dict(
            max_size=max_size,
            max_queue=max_queue,
            write_limit=write_limit,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            auto_pong=auto_pong,
            skip_utf8_validation=skip_utf8_validation,
            max_header_count=max_header_count,
            max_line_size=max_line_size,
        )
        #: Every connection past its handshake and not yet closed.
        self.clients: set[WebSocket] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._closing = False

    def make_protocol(self) -> WebSocket:
        """A protocol factory for ``loop.create_server``: one :class:`WebSocket` per accepted connection."""
        ws = WebSocket(is_client=False, **self.ws_options)
        ws._server_hook = self._request_received
        if self.open_timeout is not None:
            ws._open_timer = deadlines(ws._loop, self.open_timeout).add(_abort_if_connecting, ws)
        return ws

    def _request_received(self, ws: WebSocket, request: Request) -> asyncio.Task[None]:
        task = ws._loop.create_task(self._run(ws, request))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        return task

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, request: Request | None = None
    ) -> None:
        """Take over a connection accepted elsewhere (ws's ``handleUpgrade``) and run it to the end.

        ``reader``/``writer`` come from ``asyncio.start_server`` or ``open_connection``. When the caller has
        already read the request head, pass it as ``request``; bytes still buffered in ``reader`` are kept.
        Returns when the handler has returned and the connection is closed.
        """
        transport = writer.transport
        transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        buffered = bytes(reader._buffer)  # type: ignore[attr-defined]  # read ahead by the StreamReader
        reader._buffer.clear()  # type: ignore[attr-defined]
        ws = self.make_protocol()
        started: list[asyncio.Task[None]] = []
        if request is None:
            ws._server_hook = lambda ws, request: started.append(self._request_received(ws, request))
        transport.set_protocol(ws)
        ws.connection_made(transport)
        if request is None:
            if buffered:
                ws.data_received(buffered)
            await ws.wait_closed()
            if started:
                await started[0]
            return
        ws._head = None
        ws.request = request
        ws._pending = buffered
        transport.pause_reading()
        await self._request_received(ws, request)

    def _route(self, path: str) -> Handler | None:
        if not isinstance(self.handler, Mapping):
            return self.handler
        return self.handler.get(path.partition("?")[0])

    def _origin_allowed(self, request: Request) -> bool:
        if self.origins is None:
            return True
        origin = request.headers.get("Origin")
        for allowed in self.origins:
            if allowed is None:
                if origin is None:
                    return True
            elif origin is not None:
                if isinstance(allowed, str) and allowed == origin:
                    return True
                if isinstance(allowed, re.Pattern) and allowed.fullmatch(origin):
                    return True
        return False

    async def _run(self, ws: WebSocket, request: Request) -> None:
        try:
            handler = await self._handshake(ws, request)
        except Exception:
            logger.exception("opening handshake failed")
            ws._refuse(Response(500, body=b"Failed to open a WebSocket connection.\n"))
            return
        if handler is None:
            return
        if self.track_clients:
            self.clients.add(ws)
        try:
            await handler(ws)
        except ConnectionClosed:
            await ws.close()  # the peer went away while the handler was talking to it: a normal end
        except Exception:
            logger.exception("connection handler failed")
            await ws.close(1011, "internal error")
        else:
            await ws.close()
        finally:
            self.clients.discard(ws)

    async def _handshake(self, ws: WebSocket, request: Request) -> Handler | None:
        """Answer the upgrade request; return the handler to run, or None when we refused."""
        if self.process_request is not None:
            # First, as in websockets: it may answer any request, a plain GET (a health check, a page) included.
            refusal = self.process_request(ws, request)
            if inspect.isawaitable(refusal):
                refusal = await refusal
            if refusal is not None:
                ws._refuse(refusal)
                return None
        try:
            key = handshake.check_request(request)
        except HandshakeError as exc:
            status = getattr(exc, "status", 400)
            headers = [("Sec-WebSocket-Version", "13, 8")] if status == 426 else None
            ws._refuse(Response(status, headers, f"Failed to open a WebSocket connection: {exc}.\n"))
            return None
        handler = self._route(request.path)
        if handler is None:
            ws._refuse(Response(404, body=b"Not Found\n"))
            return None
        if not self._origin_allowed(request):
            ws._refuse(Response(403, body=b"Origin not allowed\n"))
            return None
        offered = handshake.offered_subprotocols(request)
        if self.select_subprotocol is not None:
            subprotocol = self.select_subprotocol(ws, offered)
            if subprotocol is not None and subprotocol not in offered:
                raise ValueError(f"select_subprotocol chose {subprotocol!r}, which the client did not offer")
        else:
            subprotocol = handshake.select_subprotocol(offered, self.subprotocols)
        try:
            extension, codec = handshake.negotiate_extensions(request, self.deflate)
        except HandshakeError as exc:
            ws._refuse(Response(400, body=f"Failed to open a WebSocket connection: {exc}.\n"))
            return None
        if ws._transport is None or ws._transport.is_closing():
            return None
        headers = [("Server", self.server_header)] if self.server_header else None
        response = handshake.build_response(key, subprotocol, extension, headers)
        limit = self.deflate.concurrency_limit if self.deflate is not None else 10
        ws._open(handshake.Accepted(subprotocol, [extension] if extension else [], codec), response, limit)
        request.compact()
        return handler

    async def close(self, code: int = 1001, reason: str = "") -> None:
        """Close every client with ``code`` and wait for their handlers to finish."""
        self._closing = True
        await asyncio.gather(*(ws.close(code, reason) for ws in list(self.clients)), return_exceptions=True)
        if self._handlers:
            await asyncio.wait(list(self._handlers))


def _abort_if_connecting(ws: WebSocket) -> None:
    if ws._conn is None:
        ws.abort()


class WebSocketServer:
    """A listening WebSocket server, as returned by :func:`serve`."""

    def __init__(self, server: Server, listener: asyncio.Server) -> None:
        self.server = server
        self.listener = listener
        self._close_task: asyncio.Task[None] | None = None

    @property
    def clients(self) -> set[WebSocket]:
        """The open connections (when ``track_clients`` is on)."""
        return self.server.clients

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets."""
        return tuple(self.listener.sockets)

    @property
    def port(self) -> int | None:
        """The TCP port of the first listening socket (None for a unix socket)."""
        for sock in self.listener.sockets:
            name = sock.getsockname()
            if isinstance(name, tuple):
                return int(name[1])
        return None

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, request: Request | None = None
    ) -> None:
        """Take over a connection accepted elsewhere; see :meth:`Server.handle`."""
        await self.server.handle(reader, writer, request=request)

    def close(self, code: int = 1001, reason: str = "") -> None:
        """Stop listening and close every client with ``code``; :meth:`wait_closed` waits for the end."""
        if self._close_task is None:
            self.listener.close()
            self._close_task = asyncio.get_running_loop().create_task(self.server.close(code, reason))

    async def wait_closed(self) -> None:
        """Wait until the server is closed and every connection handler has returned."""
        if self._close_task is not None:
            await asyncio.shield(self._close_task)
        await self.listener.wait_closed()

    async def serve_forever(self) -> None:
        """Serve until cancelled; then close."""
        try:
            await self.listener.serve_forever()
        except asyncio.CancelledError:
            self.close()
            await self.wait_closed()
            raise

    async def __aenter__(self) -> WebSocketServer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        await self.wait_closed()


class serve:
    """Start a WebSocket server on ``host``/``port`` (or ``unix_socket``, or ``sock``).

    Returns a :class:`WebSocketServer`. Options not listed here are those of :class:`Server`.
    """

    def __init__(
        self,
        handler: Handler | Mapping[str, Handler],
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        *,
        unix_socket: str | os.PathLike[str] | None = None,
        sock: socket.socket | None = None,
        ssl: ssl_module.SSLContext | None = None,
        reuse_port: bool | None = None,
        backlog: int = 1024,
        **options: Any,
    ) -> None:
        self.server = Server(handler, **options)
        self.host = host
        self.port = port
        self.unix_socket = unix_socket
        self.sock = sock
        self.ssl = ssl
        self.reuse_port = reuse_port
        self.backlog = backlog
        self._ws_server: WebSocketServer | None = None

    def __await__(self) -> Generator[Any, None, WebSocketServer]:
        return self._start().__await__()

    async def _start(self) -> WebSocketServer:
        loop = asyncio.get_running_loop()
        factory = self.server.make_protocol
        if self.unix_socket is not None:
            listener = await loop.create_unix_server(
                factory, os.fspath(self.unix_socket), ssl=self.ssl, backlog=self.backlog
            )
        elif self.sock is not None:
            listener = await loop.create_server(factory, sock=self.sock, ssl=self.ssl, backlog=self.backlog)
        else:
            listener = await loop.create_server(
                factory,
                self.host,
                self.port,  # type: ignore[arg-type]  # None is valid at run time; typeshed is stricter
                ssl=self.ssl,
                reuse_port=self.reuse_port,
                backlog=self.backlog,
            )
        self._ws_server = WebSocketServer(self.server, listener)
        return self._ws_server

    async def __aenter__(self) -> WebSocketServer:
        return await self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ws_server is not None:
            self._ws_server.close()
            await self._ws_server.wait_closed()
