"""Echo server that Autobahn's fuzzingclient tests: every message goes back as received.

Owns only the server side of the Autobahn harness (``autobahn/run.py`` starts it). Text is echoed as text and
binary as binary, ``max_size`` is 16 MiB (Autobahn's largest messages), and compression is offered only when
``--compression`` is given (cases 12.* and 13.*). ``--impl websockets`` runs the same echo on the
``websockets`` library, a known-good stand-in used to prove the harness itself.

Usage: ``python autobahn/echo_server.py PORT [--impl wsstream|websockets] [--compression] [--host H]``.
PORT 0 picks a free port. Prints ``READY <port>`` on stdout once listening, then serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

# Fall back on the source tree when wsstream is not installed; an installed copy still wins.
sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MAX_SIZE = 16 * 2**20


async def _serve_wsstream(host: str, port: int, compression: bool) -> tuple[Any, int]:
    """Start the wsstream echo server; return (server, bound port)."""
    import wsstream

    async def echo(ws: Any) -> None:
        # Errors are part of the test (Autobahn sends broken frames on purpose): end quietly.
        with contextlib.suppress(wsstream.WebSocketError, ConnectionError):
            async for message in ws:
                await ws.send(message)

    server = await wsstream.serve(echo, host, port, max_size=MAX_SIZE, compression="deflate" if compression else None)
    bound = server.port
    if bound is None:
        raise RuntimeError("wsstream.serve() reports no port")
    return server, int(bound)


async def _serve_websockets(host: str, port: int, compression: bool) -> tuple[Any, int]:
    """Start the reference echo server on the `websockets` library; return (server, bound port)."""
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import WebSocketException

    async def echo(ws: ServerConnection) -> None:
        with contextlib.suppress(WebSocketException, ConnectionError):
            async for message in ws:
                await ws.send(message)

    server = await serve(echo, host, port, max_size=MAX_SIZE, compression="deflate" if compression else None)
    bound = int(next(iter(server.sockets)).getsockname()[1])
    return server, bound


async def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--impl", choices=("wsstream", "websockets"), default="wsstream")
    parser.add_argument("--compression", action="store_true")
    args = parser.parse_args(argv)

    start = _serve_wsstream if args.impl == "wsstream" else _serve_websockets
    server, port = await start(args.host, args.port, args.compression)
    print(f"READY {port}", flush=True)

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(server.wait_closed(), 5)


if __name__ == "__main__":
    asyncio.run(main())
