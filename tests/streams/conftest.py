"""Fixtures for the stream adapter tests: servers on loopback with free ports, closed after each test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import wsstream
from tests.streams.helpers import TIMEOUT, Callback, ServerFactory
from wsstream.streams import start_server


@pytest.fixture
async def stream_server() -> AsyncIterator[ServerFactory]:
    """``uri = await stream_server(callback, **options)``: a start_server on loopback, closed after the test."""
    servers: list[wsstream.WebSocketServer] = []

    async def start(callback: Callback, **options: Any) -> str:
        server = await start_server(callback, "127.0.0.1", 0, **options)
        servers.append(server)
        return f"ws://127.0.0.1:{server.port}/"

    yield start
    for server in servers:
        server.close()
        await asyncio.wait_for(server.wait_closed(), TIMEOUT)


@pytest.fixture
async def ws_server() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """``uri = await ws_server(handler, **options)``: a plain message-API serve() for the other end."""
    servers: list[wsstream.WebSocketServer] = []

    async def start(handler: Callable[[wsstream.WebSocket], Awaitable[None]], **options: Any) -> str:
        server = await wsstream.serve(handler, "127.0.0.1", 0, **options)
        servers.append(server)
        return f"ws://127.0.0.1:{server.port}/"

    yield start
    for server in servers:
        server.close()
        await asyncio.wait_for(server.wait_closed(), TIMEOUT)
