"""Client driver that Autobahn's fuzzingserver tests: fetch the case count, echo every case, ask for reports.

Owns only the client side of the Autobahn harness (``autobahn/run.py`` starts it). For each case it connects
to ``/runCase?case=<i>&agent=<agent>`` and echoes every message until the connection closes; errors are part
of the test, so each case's exception is caught, noted on stderr, and the next case runs. Reports are written
by wstest only when ``/updateReports`` is visited, which is the last step. ``--impl websockets`` runs the same
driver on the ``websockets`` library, a known-good stand-in used to prove the harness itself.

Usage: ``python autobahn/client.py URL [--agent NAME] [--impl wsstream|websockets] [--compression]
[--case-timeout S] [--only N,N,...]``. Exit status 0 once the reports were requested, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

# Fall back on the source tree when wsstream is not installed; an installed copy still wins.
sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MAX_SIZE = 16 * 2**20

# connect(uri) -> an open connection with recv(), send(), close() and async iteration.
Connect = Callable[[str], Awaitable[Any]]


def _wsstream_connect(compression: bool) -> Connect:
    """Return a connect function on wsstream with the harness's settings."""
    import wsstream

    async def connect(uri: str) -> Any:
        return await wsstream.connect(
            uri,
            max_size=MAX_SIZE,
            compression="deflate" if compression else None,
            # Keepalive pings would be stray frames in Autobahn's transcript.
            ping_interval=None,
            proxy=None,
        )

    return connect


def _websockets_connect(compression: bool) -> Connect:
    """Return a connect function on the `websockets` library with the harness's settings."""
    from websockets.asyncio.client import connect as ws_connect

    async def connect(uri: str) -> Any:
        return await ws_connect(
            uri,
            max_size=MAX_SIZE,
            compression="deflate" if compression else None,
            ping_interval=None,
            proxy=None,
        )

    return connect


async def _echo_until_closed(connect: Connect, uri: str) -> None:
    """Connect to uri and echo every message until the connection ends (normally or not)."""
    ws = await connect(uri)
    try:
        async for message in ws:
            await ws.send(message)
    finally:
        # Gives back the socket when iteration ended on an error; a no-op after a clean close.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 5)


async def _case_count(connect: Connect, base: str) -> int:
    """Read the number of cases from /getCaseCount."""
    ws = await connect(f"{base}/getCaseCount")
    try:
        return int(await asyncio.wait_for(ws.recv(), 30))
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 5)


async def main(argv: list[str] | None = None) -> int:
    """Run every case (or the --only ones), then request the reports."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="fuzzingserver base URL, e.g. ws://127.0.0.1:9001")
    parser.add_argument("--agent", default="wsstream")
    parser.add_argument("--impl", choices=("wsstream", "websockets"), default="wsstream")
    parser.add_argument("--compression", action="store_true")
    parser.add_argument("--case-timeout", type=float, default=120.0, help="seconds per case before giving up")
    parser.add_argument("--only", default="", help="comma-separated case numbers (1-based) to run")
    args = parser.parse_args(argv)

    base = args.url.rstrip("/")
    agent = urllib.parse.quote(args.agent)
    factory = _wsstream_connect if args.impl == "wsstream" else _websockets_connect
    connect = factory(args.compression)

    count = await asyncio.wait_for(_case_count(connect, base), 60)
    numbers = [int(n) for n in args.only.split(",") if n] or list(range(1, count + 1))
    print(f"client: {count} cases on the server, running {len(numbers)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    for number in numbers:
        uri = f"{base}/runCase?case={number}&agent={agent}"
        try:
            await asyncio.wait_for(_echo_until_closed(connect, uri), args.case_timeout)
        except asyncio.TimeoutError:
            print(f"client: case {number}: no close within {args.case_timeout} s", file=sys.stderr, flush=True)
        except Exception as exc:  # any failure is the case's result: Autobahn judges it
            print(f"client: case {number}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    # wstest writes the reports, then closes this connection.
    await asyncio.wait_for(_echo_until_closed(connect, f"{base}/updateReports?agent={agent}"), 300)
    print(f"client: done in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
