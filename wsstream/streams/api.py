"""The stream functions: a WebSocket as asyncio's ``StreamReader``/``StreamWriter`` or any ``asyncio.Protocol``.

``open_connection``/``start_server`` mirror asyncio's functions of the same names, ``open_stream`` wraps a
WebSocket you already have (ws's ``createWebSocketStream``), ``create_connection`` mirrors
``loop.create_connection``. The reader and writer are asyncio's own classes over a
:class:`~wsstream.streams.transport.WebSocketTransport`; asyncio's ``StreamReaderProtocol`` does the rest.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..client import connect
from ..connection import WebSocket
from ..server import WebSocketServer, serve
from .transport import DEFAULT_MAX_MESSAGE_SIZE, Mode, WebSocketTransport, check_options

__all__ = ["create_connection", "open_connection", "open_stream", "start_server"]

logger = logging.getLogger("wsstream.streams")

_DEFAULT_LIMIT = 2**16  # asyncio's StreamReader default

ClientConnectedCallback = Callable[[asyncio.StreamReader, asyncio.StreamWriter], "Awaitable[None] | None"]
P = TypeVar("P", bound=asyncio.BaseProtocol)


def open_stream(
    ws: WebSocket,
    *,
    mode: Mode = "binary",
    limit: int = _DEFAULT_LIMIT,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    close_code: int = 1000,
    close_reason: str = "",
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Wrap an open WebSocket as ``(StreamReader, StreamWriter)``; from now on the stream owns its messages.

    Reading from the socket pauses while more than ``2 * limit`` bytes wait unread (asyncio's rule).
    ``writer.transport`` is the :class:`WebSocketTransport` (``writer.transport.close(4000, "reason")``).
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = WebSocketTransport(
        ws, protocol, mode=mode, max_message_size=max_message_size, close_code=close_code,
        close_reason=close_reason,
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def open_connection(
    uri: str,
    *,
    mode: Mode = "binary",
    limit: int = _DEFAULT_LIMIT,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    close_code: int = 1000,
    close_reason: str = "",
    **connect_options: Any,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to ``uri`` (every :func:`wsstream.connect` option applies) and return ``(reader, writer)``."""
    check_options(mode, max_message_size)
    ws = await connect(uri, **connect_options)
    try:
        return open_stream(
            ws, mode=mode, limit=limit, max_message_size=max_message_size, close_code=close_code,
            close_reason=close_reason,
        )
    except BaseException:
        ws.abort()
        raise


async def create_connection(
    protocol_factory: Callable[[], P],
    uri: str,
    *,
    mode: Mode = "binary",
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    close_code: int = 1000,
    close_reason: str = "",
    **connect_options: Any,
) -> tuple[WebSocketTransport, P]:
    """Connect to ``uri`` and run ``protocol_factory()`` over the WebSocket, like ``loop.create_connection``.

    ``connection_made`` has been called when this returns.
    """
    check_options(mode, max_message_size)
    ws = await connect(uri, **connect_options)
    try:
        protocol = protocol_factory()
        transport = WebSocketTransport(
            ws, protocol, mode=mode, max_message_size=max_message_size, close_code=close_code,
            close_reason=close_reason,
        )
    except BaseException:
        ws.abort()
        raise
    return transport, protocol


async def start_server(
    client_connected_cb: ClientConnectedCallback,
    host: str | None = None,
    port: int | None = None,
    *,
    mode: Mode = "binary",
    limit: int = _DEFAULT_LIMIT,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    close_code: int = 1000,
    close_reason: str = "",
    **serve_options: Any,
) -> WebSocketServer:
    """Serve WebSocket connections, calling ``client_connected_cb(reader, writer)`` for each, as
    ``asyncio.start_server`` does (a plain function or a coroutine function).

    Every :func:`wsstream.serve` option applies. A connection stays open after the callback returns, until the
    writer is closed or the peer closes; a callback that raises is logged and its connection closed with 1011.
    """
    check_options(mode, max_message_size)

    async def handler(ws: WebSocket) -> None:
        reader, writer = open_stream(
            ws, mode=mode, limit=limit, max_message_size=max_message_size, close_code=close_code,
            close_reason=close_reason,
        )
        transport = writer.transport
        assert isinstance(transport, WebSocketTransport)
        try:
            result = client_connected_cb(reader, writer)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("Unhandled exception in client_connected_cb")
            transport.close(1011, "internal error")
        await transport.wait_closed()

    return await serve(handler, host, port, **serve_options)
