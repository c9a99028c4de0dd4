"""wsstream itself (``wsstream-py`` is this module run with WSSTREAM_NO_SPEEDUPS=1), compression disabled.

Owns the wsstream echo server and its await-style client for every workload, written against the public API
(/work/shared/API.md): ``serve``, ``connect``, ``send``, ``recv``, ``async for``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import wsstream

from .common import HOST, Conn, Workload, run_workload


async def _echo(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


async def start_server(port: int) -> tuple[int, Callable[[], Awaitable[None]]]:
    """Listen on HOST:port (0 = any) and return (bound port, coroutine function that stops the server)."""
    server = await wsstream.serve(_echo, HOST, port, compression=None, backlog=1024)

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    assert server.port is not None
    return server.port, stop


async def _connect(port: int) -> Conn:
    ws = await wsstream.connect(f"ws://{HOST}:{port}/", compression=None, proxy=None)
    return ws.send, ws.recv, ws.close


async def client(w: Workload, port: int, seconds: float, server_pid: int) -> dict[str, Any]:
    """Run workload ``w`` with the wsstream client against ``port``."""
    return await run_workload(_connect, w, port, seconds, server_pid)
