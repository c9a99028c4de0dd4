"""``broadcast()``: one message to many connections, encoded once, without waiting for slow receivers."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from .connection import DataLike, WebSocket
from .core.frames import OP_BINARY, OP_TEXT
from .core.mask import build_frame
from .core.protocol import State

__all__ = ["broadcast"]

logger = logging.getLogger("wsstream")


def broadcast(connections: Iterable[WebSocket], message: DataLike, *, binary: bool | None = None) -> int:
    """Send ``message`` to every open connection in ``connections``; return how many it was written to.

    The frame is built once for all server-side connections (their frames are unmasked, so identical) and
    written straight into each transport's buffer: nothing waits, so a slow receiver cannot hold the others
    back. A connection whose send buffer is already above its ``write_limit`` is skipped (and logged)
    rather than allowed to buffer without bound. Broadcast frames are never compressed: with context
    takeover each connection's compressor state differs, so one encoding cannot serve them all.
    Client-side connections must mask each frame with their own key and are framed one by one.
    """
    if isinstance(message, str):
        payload: bytes | bytearray | memoryview = message.encode()
        opcode = OP_BINARY if binary else OP_TEXT
    else:
        payload = message
        opcode = OP_TEXT if binary is False else OP_BINARY
    shared: bytes | None = None
    sent = 0
    for ws in connections:
        conn = ws._conn
        transport = ws._transport
        if conn is None or transport is None or conn.state != State.OPEN or transport.is_closing():
            continue
        if ws._write_paused:
            logger.warning("broadcast: skipping %r, its send buffer is full", ws)
            continue
        if ws._send_lock is not None and ws._send_lock.locked():
            continue  # a fragmented or offloaded message is in flight: a frame now would corrupt it
        if conn.is_client:
            ws._write(conn.send_data(opcode, payload, False))
        else:
            if shared is None:
                shared = build_frame(0x80 | opcode, payload, None)
            ws._write(shared)
        sent += 1
    return sent
