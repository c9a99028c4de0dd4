"""Helpers for the CLI tests: run ``python -m wsstream`` as a real subprocess, with bounded waits everywhere.

Proxy variables are removed from the child's environment so that nothing but loopback is ever dialled.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

#: Upper bound for any single wait on a subprocess.
TIMEOUT = 10.0

_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "ws_proxy", "wss_proxy", "no_proxy"}


def child_env() -> dict[str, str]:
    """The environment for CLI subprocesses: ours without proxy settings, the repository importable."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


async def start_cli(*args: str, stdin: int | None = asyncio.subprocess.PIPE,
                    stdout: int | None = asyncio.subprocess.PIPE) -> asyncio.subprocess.Process:
    """Start ``python -m wsstream ARGS`` with pipes (stderr always piped)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsstream", *args,
        stdin=stdin, stdout=stdout, stderr=asyncio.subprocess.PIPE, env=child_env(),
    )


async def run_cli(*args: str, input: bytes = b"", timeout: float = TIMEOUT) -> tuple[int, bytes, bytes]:
    """Run the CLI to completion; return (exit status, stdout, stderr)."""
    proc = await start_cli(*args)
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


async def listening_port(proc: asyncio.subprocess.Process) -> int:
    """Read the ``wsstream: listening on ...:PORT`` line a listener prints on stderr; return PORT."""
    assert proc.stderr is not None
    line = await asyncio.wait_for(proc.stderr.readline(), TIMEOUT)
    match = re.search(rb"listening on \w+://[^ ]*:(\d+)", line)
    assert match, f"no listening line on stderr: {line!r}"
    return int(match.group(1))


async def read_line(proc: asyncio.subprocess.Process) -> bytes:
    """One line from the process's stdout, bounded in time."""
    assert proc.stdout is not None
    return await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)


async def finish(proc: asyncio.subprocess.Process, *, stop: bool = False) -> tuple[int, bytes]:
    """Optionally SIGTERM the process, then wait for its exit; return (exit status, the rest of stderr)."""
    if stop and proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    err = await proc.stderr.read() if proc.stderr is not None else b""
    assert proc.returncode is not None
    return proc.returncode, err


@asynccontextmanager
async def cli(*args: str, **kwargs: int | None) -> AsyncIterator[asyncio.subprocess.Process]:
    """``async with cli(...) as proc``: the process is killed on the way out if it is still running."""
    proc = await start_cli(*args, **kwargs)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def free_port() -> int:
    """A loopback TCP port nothing listens on (bound and released; good enough for a refused connection)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def exchange(*args: str, lines: list[bytes]) -> tuple[int, list[bytes], bytes]:
    """Run a text-mode client: send each line and read one line back before the next, then close stdin.

    Waiting for each reply before stdin EOF keeps the Close from racing the replies (no --linger guesswork).
    Returns (exit status, the lines read, stderr).
    """
    async with cli(*args) as proc:
        assert proc.stdin is not None
        replies = []
        for line in lines:
            proc.stdin.write(line + b"\n")
            await proc.stdin.drain()
            replies.append(await read_line(proc))
        proc.stdin.close()
        status, err = await finish(proc)
    return status, replies, err
