"""What the stream transport needs from :class:`~wsstream.connection.WebSocket`, in one place.

``asyncio.Transport.write`` is synchronous, so the transport cannot go through the awaitable
:meth:`WebSocket.send`: it uses the WebSocket's synchronous hooks (``send_nowait``, ``send_close_nowait``,
``writing_paused``, ``add_writable_callback``), and this module is the one place that names them.
"""

from __future__ import annotations

from collections.abc import Callable

from ..connection import WebSocket
from ..core.frames import OP_BINARY

__all__ = ["add_writable_callback", "can_send", "send_close_nowait", "send_nowait", "writing_paused"]


def can_send(ws: WebSocket) -> bool:
    """True while data frames may be sent: no Close sent, connection up, socket not closing."""
    conn = ws._conn
    transport = ws.transport
    return conn is not None and conn.can_send_data and transport is not None and not transport.is_closing()


def send_nowait(ws: WebSocket, opcode: int, data: bytes | bytearray | memoryview) -> None:
    """Write one whole data message as a frame now (compressed if deflate was agreed); check can_send first."""
    ws.send_nowait(data, binary=opcode == OP_BINARY)


def send_close_nowait(ws: WebSocket, code: int, reason: str) -> bool:
    """Write a Close frame now, after everything already written; False if a Close was already sent."""
    return ws.send_close_nowait(code, reason)


def writing_paused(ws: WebSocket) -> bool:
    """True while the socket's transport has told the WebSocket to pause writing (buffer above high water)."""
    return ws.writing_paused


def add_writable_callback(ws: WebSocket, callback: Callable[[], None]) -> None:
    """Call ``callback`` once the socket's buffer drains below its low-water mark or the connection is lost."""
    ws.add_writable_callback(callback)
