"""Helpers shared by the test modules (import as ``from tests.support import ...``)."""

from __future__ import annotations

import os

import pytest

import wsstream

#: CI sets this: a test that would skip for want of a tool fails instead.
REQUIRE_ALL = os.environ.get("WSSTREAM_REQUIRE_ALL", "") not in ("", "0")


def skip_or_fail(reason: str) -> None:
    """Skip locally when a tool is missing; fail in CI, where everything must be installed."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (WSSTREAM_REQUIRE_ALL is set)")
    pytest.skip(reason)


async def echo(ws: wsstream.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


