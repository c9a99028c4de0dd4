"""Peer: ``websockets`` (new asyncio API, C speedups as shipped in its wheel), compression disabled.

Owns the websockets echo server and its await-style client for every workload.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from .common import HOST, Conn, Workload, run_workload


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def start_server(port: int) -> tuple[int, Callable[[], Awaitable[None]]]:
    """Listen on HOST:port (0 = any) and return (bound port, coroutine function that stops the server)."""
    server = await serve(_echo, HOST, port, compression=None, max_size=None, backlog=1024)

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    return server.sockets[0].getsockname()[1], stop


async def _connect(port: int) -> Conn:
    ws = await connect(f"ws://{HOST}:{port}/", compression=None, max_size=None)
    return ws.send, ws.recv, ws.close


async def client(w: Workload, port: int, seconds: float, server_pid: int) -> dict[str, Any]:
    """Run workload ``w`` with the websockets client against ``port``."""
    return await run_workload(_connect, w, port, seconds, server_pid)
