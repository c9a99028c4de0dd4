"""Peer: ``aiohttp`` web server WebSocket handler and ``ClientSession.ws_connect``, compression disabled.

Owns the aiohttp echo server and its await-style client for every workload.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from .common import HOST, Conn, Workload, run_workload

_MAX = 1 << 24  # above the 1 MiB workload; aiohttp's default (4 MiB) would also do, stated for clarity


async def _echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=_MAX)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
        elif msg.type is aiohttp.WSMsgType.TEXT:
            await ws.send_str(msg.data)
    return ws


async def start_server(port: int) -> tuple[int, Callable[[], Awaitable[None]]]:
    """Listen on HOST:port (0 = any) and return (bound port, coroutine function that stops the server)."""
    app = web.Application()
    app.router.add_get("/", _echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    site = web.SockSite(runner, sock, backlog=1024)
    await site.start()
    return sock.getsockname()[1], runner.cleanup


async def client(w: Workload, port: int, seconds: float, server_pid: int) -> dict[str, Any]:
    """Run workload ``w`` with aiohttp's client against ``port`` (one session, no connection limit)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def connect(port: int) -> Conn:
            ws = await session.ws_connect(f"ws://{HOST}:{port}/", compress=0, max_msg_size=_MAX)
            return ws.send_bytes, ws.receive_bytes, ws.close

        return await run_workload(connect, w, port, seconds, server_pid)
