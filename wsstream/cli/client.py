"""``wsstream URL``: one client connection between stdin/stdout and a WebSocket.

Text mode: each stdin line is a text message, each message a stdout line. Binary mode: raw bytes both ways through
the stream adapter. stdin EOF closes with 1000 (unless ``--no-close``); the run ends when the connection does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .. import connect
from ..connection import WebSocket
from ..core.protocol import State
from ..exceptions import ConnectionClosed
from .errors import Interrupted
from .options import Options
from .pump import Activity, Progress, close_discarding, read_line, splice, ws_stream
from .stdio import Stdio, open_stdio

__all__ = ["run_client"]

logger = logging.getLogger("wsstream.cli")


async def run_client(opts: Options, stop: asyncio.Event) -> None:
    """Connect to ``opts.url`` and pump stdin/stdout until the connection closes; raises on an abnormal close."""
    assert opts.url is not None
    connecting = asyncio.ensure_future(connect(opts.url, **opts.connect_kwargs(opts.url)))
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({connecting, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if not connecting.done():
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await connecting
        raise Interrupted
    ws = connecting.result()
    logger.info("connected to %s%s", opts.url, _describe(ws))
    stdio = await open_stdio()
    progress = Progress() if opts.progress else None
    if progress is not None:
        progress.start()
    task = asyncio.ensure_future((_binary if opts.mode == "binary" else _text)(ws, stdio, opts, progress))
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await ws.close(1000)  # a signal: close normally, then let the pumps finish
            await asyncio.wait_for(task, 10)
        else:
            await task
    except (BrokenPipeError, ConnectionResetError):
        # stdout went away (``| head``): not the connection's fault, so close it normally.
        if ws.state is not State.OPEN:
            raise
        logger.info("stdout closed; closing the connection")
        await close_discarding(ws, 1000)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
        await close_discarding(ws)
        if progress is not None:
            progress.stop()
        await stdio.aclose()
    code = ws.close_code
    logger.info("closed %s %s", code, ws.close_reason or "")


async def _text(ws: WebSocket, stdio: Stdio, opts: Options, progress: Progress | None) -> None:
    activity = Activity()

    async def upstream() -> None:
        with contextlib.suppress(ConnectionClosed):
            while (line := await read_line(stdio.stdin)) is not None:
                await ws.send(line.decode("utf-8", "replace"))
                if progress is not None:
                    progress.sent(len(line) + 1)
            # --oneshot: the first reply ends the run, so stdin EOF must not cut it off.
            if opts.linger is not None and not opts.oneshot:
                await activity.wait_quiet(opts.linger)
                await ws.close(1000)

    up = asyncio.ensure_future(upstream())
    try:
        async for message in ws:
            data = message.encode() if isinstance(message, str) else message
            stdio.stdout.write(data + b"\n")
            await stdio.stdout.drain()
            activity.touch()
            if progress is not None:
                progress.received(len(data) + 1)
            if opts.oneshot:
                await close_discarding(ws, 1000)
                break
    finally:
        up.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await up


async def _binary(ws: WebSocket, stdio: Stdio, opts: Options, progress: Progress | None) -> None:
    reader, writer = ws_stream(ws, "binary")
    await splice(stdio.stdin, stdio.stdout, reader, writer, progress, linger=opts.linger)


def _describe(ws: WebSocket) -> str:
    parts = []
    if ws.subprotocol:
        parts.append(f"subprotocol {ws.subprotocol}")
    if ws.extensions:
        parts.append(", ".join(ws.extensions))
    return f" ({'; '.join(parts)})" if parts else ""
