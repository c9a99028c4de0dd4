"""``wsstream --tcp-listen [HOST:]PORT URL``: each accepted TCP connection is tunnelled through a new WebSocket
to URL (the client half of a websockify tunnel; for an SSH ProxyCommand, ``wsstream --binary URL`` does the same
over stdio).

TCP EOF sends Close (1000); the WebSocket's end closes the TCP connection (an abnormal close resets it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from .. import connect
from ..connection import WebSocket
from ..exceptions import ConnectionClosed
from .errors import describe
from .options import Options
from .pump import Progress, splice, ws_stream

__all__ = ["run_tcp_listen"]

logger = logging.getLogger("wsstream.cli")

#: Seconds open tunnels get to finish their closing handshakes after a signal.
SHUTDOWN_TIMEOUT = 5.0


async def run_tcp_listen(opts: Options, stop: asyncio.Event, target: str | None) -> None:
    """Accept TCP connections until a signal (or the end of the first one with ``--oneshot``)."""
    assert opts.listen is not None and opts.url is not None
    url = opts.url
    host, port = opts.listen
    progress = Progress() if opts.progress else None
    done = asyncio.Event()
    outcome: list[BaseException] = []
    served = 0
    tunnels: dict[asyncio.Task[None], list[WebSocket]] = {}

    def accept(tcp_reader: asyncio.StreamReader, tcp_writer: asyncio.StreamWriter) -> None:
        # Our own task rather than asyncio's: at shutdown we close and reap these ourselves.
        task = asyncio.ensure_future(on_connection(tcp_reader, tcp_writer))
        tunnels[task] = []
        task.add_done_callback(tunnels.pop)

    async def on_connection(tcp_reader: asyncio.StreamReader, tcp_writer: asyncio.StreamWriter) -> None:
        nonlocal served
        served += 1
        if opts.oneshot and served > 1:
            tcp_writer.close()
            return
        peer = tcp_writer.get_extra_info("peername")
        try:
            ws = await connect(url, **opts.connect_kwargs(url))
        except Exception as exc:
            logger.warning("%s: %s", peer, describe(exc, target))
            outcome.append(exc)
            tcp_writer.transport.abort()
            done.set()
            return
        logger.info("%s: tunnel open to %s", peer, url)
        current = asyncio.current_task()
        if current in tunnels:
            tunnels[current].append(ws)
        ws_reader, ws_writer = ws_stream(ws, opts.mode)
        try:
            await splice(tcp_reader, tcp_writer, ws_reader, ws_writer, progress)
        except (ConnectionClosed, OSError) as exc:
            logger.warning("%s: %s", peer, describe(exc, target))
            outcome.append(exc)
            tcp_writer.transport.abort()  # tell the TCP peer it was not a clean end
        finally:
            tcp_writer.close()
            with contextlib.suppress(OSError):
                await tcp_writer.wait_closed()
            await ws.close()
            logger.info("%s: tunnel closed", peer)
            done.set()

    server = await asyncio.start_server(accept, host, port)
    bound = server.sockets[0].getsockname()
    shown = f"[{host}]" if ":" in host else host
    if opts.verbosity >= 0:
        print(f"wsstream: listening on tcp://{shown}:{bound[1]} -> {url}", file=sys.stderr, flush=True)
    if progress is not None:
        progress.start()
    waits = [asyncio.ensure_future(stop.wait())]
    if opts.oneshot:
        waits.append(asyncio.ensure_future(done.wait()))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()
        server.close()
        # A signal: close the open tunnels' WebSockets with 1001 and let their pumps finish (bounded).
        closers = [asyncio.ensure_future(ws.close(1001)) for sockets in tunnels.values() for ws in sockets]
        if tunnels:
            _, stuck = await asyncio.wait(list(tunnels), timeout=SHUTDOWN_TIMEOUT)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        await asyncio.gather(*closers, return_exceptions=True)
        if progress is not None:
            progress.stop()
    if opts.oneshot and outcome:
        raise outcome[0]
