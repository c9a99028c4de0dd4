"""The few :class:`~wsstream.connection.WebSocket` internals the stream transport needs, in one place.

``asyncio.Transport.write`` is synchronous, so the transport cannot go through the awaitable
:meth:`WebSocket.send`; it writes frames through the connection's sans-I/O core instead, and it must learn
when the socket's write buffer drains without a task per write. Until ``WebSocket`` grows public hooks for these
(``send_nowait``, ``send_close_nowait``, ``writing_paused`` and ``add_writable_callback``, proposed in the
streams report), this module is the only place that reaches into its private attributes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..connection import WebSocket
from ..core.protocol import State

__all__ = [
    "add_writable_callback",
    "can_send",
    "reply_to_held_close",
    "send_close_nowait",
    "send_nowait",
    "writing_paused",
]


def can_send(ws: WebSocket) -> bool:
    """True while data frames may be sent: no Close sent (nor the peer's answered), socket not closing."""
    conn = ws._conn
    transport = ws._transport
    return conn is not None and conn.can_send_data and transport is not None and not transport.is_closing()


def send_nowait(ws: WebSocket, opcode: int, data: bytes | bytearray | memoryview) -> None:
    """Write one whole data message as a frame now (compressed if deflate was agreed); check can_send first."""
    conn = ws._conn
    assert conn is not None and ws._transport is not None
    ws._write(conn.send_data(opcode, data))


def send_close_nowait(ws: WebSocket, code: int, reason: str) -> bool:
    """Write a Close frame now, after everything already written; False if a Close was already sent."""
    conn = ws._conn
    transport = ws._transport
    if conn is None or transport is None or transport.is_closing() or conn.state == State.CLOSED:
        return False
    frame = conn.send_close(code, reason)
    if not frame:
        return False
    ws._write(frame)
    ws._flush()
    return True


def writing_paused(ws: WebSocket) -> bool:
    """True while the socket's transport has told the WebSocket to pause writing (buffer above high water)."""
    return ws._write_paused


def add_writable_callback(ws: WebSocket, callback: Callable[[], None]) -> None:
    """Call ``callback`` once the socket's buffer drains below its low-water mark or the connection is lost.

    Rides on the WebSocket's own drain waiters (a Future, not a Task): cheap enough to arm once per pause.
    """
    waiter: asyncio.Future[None] = ws._loop.create_future()
    waiter.add_done_callback(lambda _: callback())
    if ws._transport is None or ws._closed_waiter.done():
        waiter.set_result(None)
    else:
        ws._drain_waiters.append(waiter)


def reply_to_held_close(ws: WebSocket) -> None:
    """Answer a peer's Close that the WebSocket held back while messages sat in its queue.

    A Close that arrives before the sink is set waits for ``recv()`` to empty the queue; the sink has just taken
    the queue, so answer now instead of after ``close_timeout``. (Belongs in ``set_message_sink``.)
    """
    conn = ws._conn
    if conn is not None and conn.close_received is not None and conn.close_sent is None:
        ws._reply_to_close()
