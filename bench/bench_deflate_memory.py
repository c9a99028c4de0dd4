"""Benchmark of what permessage-deflate costs a wsstream server in memory, measured as the process's RSS.

Two questions, one JSON line per answer:

* ``idle``: resident memory per idle connection at ``--connections`` (1000) connections, without compression,
  with the server's default ``Deflate()``, with ``Deflate(server_no_context_takeover=True,
  client_no_context_takeover=True)`` and, for comparison, with ``Deflate(server_max_window_bits=12,
  client_max_window_bits=12, mem_level=5)`` (``small_windows``). The server runs in its own process and is
  measured through ``/proc/PID/status`` (VmRSS) before the clients connect and once they are all idle; the
  clients run in another process. With compression each client first sends one compressible 4 KiB message and the server
  echoes it, so the server's compressor and inflater are really allocated (they are created on first use),
  then every connection stays open and idle. RSS counts the pages zlib has touched, so it grows with that
  first message (``--message-size``, 4 KiB by default) up to the full size of zlib's buffers.
* ``bomb``: a fresh server with ``max_size`` = 1 MiB receives one ~1 MiB compressed message that inflates to
  1 GiB (written by hand over a raw socket: one frame, RSV1 set). Reported: the server's VmRSS before and its
  peak (VmHWM) after, and the close code it answered (1009 expected).

Run: ``.venv/bin/python bench/bench_deflate_memory.py [--connections N] [--message-size BYTES]``
(about a minute; Linux only).
The ``--role`` options are the child processes this script starts itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ctypes
import gc
import json
import os
import resource
import select
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import wsstream

libc = ctypes.CDLL(None)  # glibc's malloc_trim

CONFIGS = ("none", "default", "no_context_takeover", "small_windows")
MIB = 2**20
#: Each step of a child process (start, connecting all clients, answering) is bounded by this.
STEP_TIMEOUT = 120.0


def raise_fd_limit() -> None:
    """Allow as many open files as the hard limit permits (each connection is one fd on each side)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def compression_for(config: str) -> Any:
    """The server's ``compression`` option for a configuration name."""
    if config == "none":
        return None
    if config == "default":
        return "deflate"
    if config == "no_context_takeover":
        return wsstream.Deflate(server_no_context_takeover=True, client_no_context_takeover=True)
    return wsstream.Deflate(server_max_window_bits=12, client_max_window_bits=12, mem_level=5)


def message(i: int, size: int) -> str:
    """A compressible JSON-like text of size characters, different per connection."""
    lines = (f'{{"conn": {i}, "seq": {n}, "status": "ok", "payload": "wsstream"}}\n' for n in range(size // 50 + 1))
    return "".join(lines)[:size]


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


# --- child processes


async def run_server(config: str, max_size: int) -> None:
    """Serve an echo-once endpoint; print the port; run until stdin closes."""

    async def handler(ws: wsstream.WebSocket) -> None:
        async for received in ws:  # echo; with the clients' single message, then idle
            await ws.send(received)
            del received  # else the loop variable holds the last message while the connection idles

    server = await wsstream.serve(
        handler, "127.0.0.1", 0, compression=compression_for(config), max_size=max_size, ping_interval=None
    )
    print(json.dumps({"port": server.port}), flush=True)
    loop = asyncio.get_running_loop()
    for _ in range(1000):  # commands from the parent, one a line, until it closes our stdin
        command = await loop.run_in_executor(None, sys.stdin.readline)
        if command.strip() != "trim":
            break
        # Hand freed heap back to the kernel, so RSS shows what is still held, not what malloc caches.
        gc.collect()
        libc.malloc_trim(0)
        print(json.dumps({"trimmed": True}), flush=True)
    server.close()
    await server.wait_closed()


async def run_clients(port: int, count: int, compress: bool, size: int) -> None:
    """Open count connections, exchange one message on each, print ready, hold them until stdin closes."""
    uri = f"ws://127.0.0.1:{port}/"
    semaphore = asyncio.Semaphore(100)  # connect in waves, well under the listener's backlog

    async def one(i: int) -> wsstream.WebSocket:
        async with semaphore:
            ws = await wsstream.connect(
                uri, compression="deflate" if compress else None, ping_interval=None, open_timeout=STEP_TIMEOUT
            )
            text = message(i, size)
            await ws.send(text)
            echoed = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
            assert echoed == text
            return ws

    sockets = await asyncio.gather(*(one(i) for i in range(count)))
    agreed = sum(1 for ws in sockets if ws.extensions)
    extensions = ", ".join(sockets[0].extensions) if sockets else ""
    print(json.dumps({"ready": count, "compressed": agreed, "extensions": extensions}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for ws in sockets:
        ws.abort()


async def run_bomb(port: int) -> None:
    """Send one compressed message that inflates to 1 GiB; print the close code the server answers."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MIB)
    parts = [compressor.compress(zeros) for _ in range(1024)]  # 1 GiB of zeros, bounded
    payload = b"".join(parts) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert payload.endswith(b"\x00\x00\xff\xff")
    payload = payload[:-4]  # RFC 7692 7.2.1: the sender removes the sync flush's tail
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP_TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101") and b"permessage-deflate" in head, head
    # FIN + RSV1 + binary; masked with the all-zero key (valid, and the payload stays as it is).
    frame = bytes([0xC2, 0x80 | 127]) + len(payload).to_bytes(8, "big") + bytes(4) + payload
    writer.write(frame)
    code = None
    try:
        reply = await asyncio.wait_for(reader.read(64), STEP_TIMEOUT)
        if len(reply) >= 4 and reply[0] & 0x0F == 0x8:
            code = int.from_bytes(reply[2:4], "big")
    except ConnectionError:
        pass
    print(json.dumps({"payload": len(payload), "inflated": 1024 * MIB, "close_code": code}), flush=True)
    writer.close()


# --- the orchestrator


def start(*args: str) -> subprocess.Popen[bytes]:
    """This script in another role, unbuffered pipes so that select() sees every line."""
    return subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)


def read_json(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """The next JSON line the child prints, within timeout seconds."""
    assert proc.stdout is not None
    line = b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):  # bounded by the deadline
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
            raise TimeoutError(f"no answer from {proc.args!r} within {timeout} s")
        byte = proc.stdout.read(1)
        if not byte:
            raise RuntimeError(f"{proc.args!r} exited with {proc.wait()}")
        line += byte
    result: dict[str, Any] = json.loads(line)
    return result


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Close the child's stdin (its signal to finish); kill it when it does not within 30 s."""
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def settle(pid: int) -> dict[str, int]:
    """The process's memory once it stopped moving (asyncio finishes closing/handshakes lazily): up to 5 s."""
    last = status(pid)
    for _ in range(10):
        time.sleep(0.5)
        now = status(pid)
        if abs(now["VmRSS"] - last["VmRSS"]) < 64:
            return now
        last = now
    return last


def trimmed(server: subprocess.Popen[bytes]) -> dict[str, int]:
    """The server's memory after it ran gc and malloc_trim(0)."""
    assert server.stdin is not None
    server.stdin.write(b"trim\n")
    read_json(server, STEP_TIMEOUT)
    return settle(server.pid)


def measure_idle(config: str, connections: int, size: int) -> dict[str, Any]:
    server = start("--role", "server", "--config", config, "--max-size", str(100 * MIB))
    clients = None
    try:
        port = read_json(server, STEP_TIMEOUT)["port"]
        # Warm up: one connection loads the lazily imported code paths (and zlib) before the baseline.
        warm = start(
            "--role", "clients", "--port", str(port), "--count", "1", *(["--compress"] if config != "none" else [])
        )
        read_json(warm, STEP_TIMEOUT)
        stop(warm)
        baseline = trimmed(server)
        clients = start(
            "--role", "clients", "--port", str(port), "--count", str(connections), "--message-size", str(size),
            *(["--compress"] if config != "none" else []),
        )  # fmt: skip
        ready = read_json(clients, STEP_TIMEOUT)
        loaded = settle(server.pid)
        after_trim = trimmed(server)
        return {
            "case": "idle",
            "server_compression": config,
            "connections": connections,
            "message_size": size,
            "compressed_connections": ready["compressed"],
            "agreed": ready["extensions"],
            "server_rss_baseline_kib": baseline["VmRSS"],
            "server_rss_kib": loaded["VmRSS"],
            "server_rss_per_connection_kib": round((loaded["VmRSS"] - baseline["VmRSS"]) / connections, 1),
            "server_rss_after_malloc_trim_kib": after_trim["VmRSS"],
            "server_rss_per_connection_after_malloc_trim_kib": round(
                (after_trim["VmRSS"] - baseline["VmRSS"]) / connections, 1
            ),
        }
    finally:
        if clients is not None:
            stop(clients)
        stop(server)


def measure_bomb() -> dict[str, Any]:
    server = start("--role", "server", "--config", "default", "--max-size", str(MIB))
    try:
        port = read_json(server, STEP_TIMEOUT)["port"]
        baseline = settle(server.pid)
        attacker = start("--role", "bomb", "--port", str(port))
        try:
            result = read_json(attacker, STEP_TIMEOUT)
        finally:
            stop(attacker)
        after = status(server.pid)
        return {
            "case": "bomb",
            "max_size": MIB,
            "payload_bytes": result["payload"],
            "would_inflate_to": result["inflated"],
            "close_code": result["close_code"],
            "server_rss_baseline_kib": baseline["VmRSS"],
            "server_peak_rss_kib": after["VmHWM"],
            "server_peak_over_baseline_kib": after["VmHWM"] - baseline["VmRSS"],
        }
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--role", choices=("server", "clients", "bomb"))
    parser.add_argument("--config", choices=CONFIGS, default="default")
    parser.add_argument("--max-size", type=int, default=100 * MIB)
    parser.add_argument("--port", type=int)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--compress", action="store_true")
    parser.add_argument("--message-size", type=int, default=4096, help="the one message each client exchanges")
    args = parser.parse_args()
    raise_fd_limit()
    if args.role == "server":
        asyncio.run(run_server(args.config, args.max_size))
    elif args.role == "clients":
        asyncio.run(run_clients(args.port, args.count, args.compress, args.message_size))
    elif args.role == "bomb":
        asyncio.run(run_bomb(args.port))
    else:
        for config in CONFIGS:
            print(json.dumps(measure_idle(config, args.connections, args.message_size)), flush=True)
        print(json.dumps(measure_bomb()), flush=True)


if __name__ == "__main__":
    main()
