"""One benchmark process: a Python implementation's echo server, or its client running one workload.

Owns the process boundary used by ``bench/run.py``:
- ``worker.py server IMPL [--uvloop]`` prints ``{"port": N}`` once listening, serves until SIGTERM/SIGINT.
- ``worker.py client IMPL W1,W2 --port N --seconds S --server-pid P [--uvloop]`` prints a JSON line per workload.
CPU pinning is applied by the parent before exec, so the process never runs on the wrong core.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import resource
import signal
import sys
from collections.abc import Coroutine
from types import ModuleType
from typing import Any

MODULES = {
    "raw": "impls.raw",
    "websockets": "impls.websockets_impl",
    "aiohttp": "impls.aiohttp_impl",
    "picows": "impls.picows_impl",
    "wsstream": "impls.wsstream_impl",
    "wsstream-py": "impls.wsstream_impl",  # same module, run with WSSTREAM_NO_SPEEDUPS=1 by the parent
}


def _module(impl: str) -> ModuleType:
    return importlib.import_module(MODULES[impl])


async def _serve(impl: str) -> None:
    mod = _module(impl)
    port, _stop = await mod.start_server(0)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    print(json.dumps({"port": port}), flush=True)
    await done.wait()
    # No graceful stop: closing up to 2000 connections one handshake at a time would only cost wall time.
    os._exit(0)


async def _client(impl: str, workloads: str, port: int, seconds: float, server_pid: int) -> None:
    """Run each comma-separated workload in turn, one JSON line each; a failure is recorded, not fatal."""
    from impls.common import WORKLOADS

    mod = _module(impl)
    for name in workloads.split(","):
        try:
            res: dict[str, Any] = await asyncio.wait_for(
                mod.client(WORKLOADS[name], port, seconds, server_pid), seconds * 4 + 60
            )
        except Exception as exc:
            res = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        print(json.dumps({"workload": name, **res}), flush=True)
    os._exit(0)  # the same for the client: its open connections need no orderly teardown


def _run(coro: Coroutine[Any, Any, None], use_uvloop: bool) -> None:
    if use_uvloop:
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)


def _raise_mmap_threshold() -> None:
    """Allocate and free one 1 MiB block, as any process that has run for a while has done.

    glibc serves allocations above its mmap threshold (128 KiB at start) with mmap(), and raises the threshold
    only when such a block is freed at full size. asyncio reads with ``sock.recv(256 KiB)`` and shrinks the
    result, so in a young process whose history happens not to include that, every read is an mmap, an
    mremap and a munmap: three extra system calls per message, for the raw baseline and every
    ``data_received``-based peer, depending on what the process did before. Freeing one large block first
    makes every implementation start from the same allocator state.
    """
    bytearray(1 << 20)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, raise the fd limit for 2000-connection runs, and run the role."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("role", choices=("server", "client"))
    p.add_argument("impl", choices=sorted(MODULES))
    p.add_argument("workload", nargs="?")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--server-pid", type=int, default=0)
    p.add_argument("--uvloop", action="store_true")
    args = p.parse_args(argv)
    _raise_mmap_threshold()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.role == "server":
        _run(_serve(args.impl), args.uvloop)
    else:
        if not args.workload:
            p.error("client needs a WORKLOAD")
        _run(_client(args.impl, args.workload, args.port, args.seconds, args.server_pid), args.uvloop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
