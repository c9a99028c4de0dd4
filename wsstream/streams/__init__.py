"""Streams: a WebSocket as an asyncio byte stream (layer 4 of docs/LAYOUT.md).

:class:`WebSocketTransport` is an ``asyncio.Transport`` over a :class:`~wsstream.connection.WebSocket`;
:func:`open_connection`, :func:`start_server`, :func:`open_stream` and :func:`create_connection` build
asyncio's own ``StreamReader``/``StreamWriter`` or any ``asyncio.Protocol`` on top of it. See ``docs/streams.md``.
"""

from __future__ import annotations

from .api import create_connection, open_connection, open_stream, start_server
from .transport import DEFAULT_MAX_MESSAGE_SIZE, WebSocketTransport

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "WebSocketTransport",
    "create_connection",
    "open_connection",
    "open_stream",
    "start_server",
]
