"""Helpers for the stream adapter tests: a recording protocol, bounded waits, constants."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

TIMEOUT = 60.0

Callback = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
ServerFactory = Callable[..., Awaitable[str]]


class Recorder(asyncio.Protocol):
    """An asyncio.Protocol that records every callback, in order, as (name, argument)."""

    def __init__(self, *, keep_open_on_eof: bool = True) -> None:
        self.events: list[tuple[str, Any]] = []
        self.keep_open_on_eof = keep_open_on_eof
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.got_data = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.events.append(("connection_made", None))

    def data_received(self, data: bytes) -> None:
        self.events.append(("data_received", data))
        self.got_data.set()

    def eof_received(self) -> bool:
        self.events.append(("eof_received", None))
        return self.keep_open_on_eof

    def pause_writing(self) -> None:
        self.events.append(("pause_writing", None))

    def resume_writing(self) -> None:
        self.events.append(("resume_writing", None))

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("connection_lost", exc))
        self.lost.set_result(exc)

    def names(self) -> list[str]:
        """Callback names with consecutive data_received collapsed into one."""
        out: list[str] = []
        for name, _ in self.events:
            if not (name == "data_received" and out and out[-1] == name):
                out.append(name)
        return out

    def data(self) -> bytes:
        return b"".join(arg for name, arg in self.events if name == "data_received")


async def wait_until_stalled(progress: Callable[[], int], *, polls: int = 10, interval: float = 0.05) -> int:
    """Wait until ``progress()`` stops changing for ``polls`` consecutive polls (at most 20 s); return it."""
    last, still = -1, 0
    for _ in range(int(20 / interval)):
        value = progress()
        still = still + 1 if value == last else 0
        if still >= polls:
            return value
        last = value
        await asyncio.sleep(interval)
    raise AssertionError(f"progress never stalled (last value {last})")
