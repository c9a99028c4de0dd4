"""A wsstream echo server and a client talking to it, in one process: the smallest complete program.

    python examples/echo.py            # starts a server on a free port, sends a few messages, prints the echoes
    python examples/echo.py --serve 8765   # just the server, until Ctrl-C
"""

from __future__ import annotations

import asyncio
import sys

import wsstream


async def echo(ws: wsstream.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def demo() -> None:
    async with wsstream.serve(echo, "127.0.0.1", 0) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        print(f"echo server on {uri} (speedups: {wsstream.SPEEDUPS})")
        async with wsstream.connect(uri, proxy=None) as ws:
            for message in ("hello", b"\x00binary\xff", "é" * 3):
                await ws.send(message)
                print(f"sent {message!r:20} got {await ws.recv()!r}")
            print(f"ping round trip: {await ws.ping() * 1e6:.0f} us")
        print(f"closed with {ws.close_code}")


async def serve_forever(port: int) -> None:
    async with wsstream.serve(echo, "127.0.0.1", port) as server:
        print(f"serving on ws://127.0.0.1:{server.port}/", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        asyncio.run(serve_forever(int(sys.argv[2])))
    else:
        asyncio.run(demo())
