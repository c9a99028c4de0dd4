"""Shared fixtures: servers on loopback with free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import wsstream
from tests.support import echo


@pytest.fixture
async def echo_server() -> AsyncIterator[wsstream.WebSocketServer]:
    async with wsstream.serve(echo, "127.0.0.1", 0, max_size=64 * 2**20) as server:
        yield server


@pytest.fixture
def echo_uri(echo_server: wsstream.WebSocketServer) -> str:
    return f"ws://127.0.0.1:{echo_server.port}/"
