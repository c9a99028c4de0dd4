"""Throughput and peak RSS of the stream adapter against plain asyncio streams over TCP, in the same run.

Each case moves SIZE bytes one way between two processes (so both CPUs can work): the sender writes
WRITE_SIZE pieces of a 1 MiB random block with ``drain()`` after each, then ``write_eof()``; the receiver
``read()``s until EOF and times from connection to EOF. ``tcp`` is ``asyncio.open_connection`` /
``asyncio.start_server``; ``ws`` is ``wsstream.open_connection`` / ``wsstream.start_server`` (no compression,
client-to-server frames masked as RFC 6455 requires). ``up`` is client to server (the receiver unmasks),
``down`` server to client. Cases alternate tcp/ws for ROUNDS rounds so machine noise hits both alike; the
median is reported. Peak RSS is each process's ``ru_maxrss``: compare sizes to see it flat in the transfer.

    python bench/bench_streams.py                      # 1 GiB, up and down, 3 rounds
    python bench/bench_streams.py --size 256M --rounds 5 --write-size 16K --message-size 64K
    python bench/bench_streams.py --json               # machine-readable result on stdout

The receiver's minor page faults are printed too: glibc's heap grows and trims around the large buffers of the
receive path, and on a busy machine that churn (not framing or masking) was most of the gap to plain asyncio.
``MALLOC_TOP_PAD_=4194304 python bench/bench_streams.py`` shows the figures without it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import wsstream.streams  # noqa: E402

HOST = "127.0.0.1"
BLOCK = os.urandom(2**20)


def parse_size(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


async def send(writer: asyncio.StreamWriter, size: int, write_size: int) -> None:
    view = memoryview(BLOCK)
    left = size
    offset = 0
    while left:
        step = min(write_size, left, len(view) - offset)
        writer.write(view[offset : offset + step])
        offset = (offset + step) % len(view)
        left -= step
        await writer.drain()
    writer.write_eof()


async def receive(reader: asyncio.StreamReader) -> int:
    total = 0
    while chunk := await reader.read(2**18):
        total += len(chunk)
    return total


def report(role: str, **fields: Any) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    fields.update(
        role=role, maxrss_kib=usage.ru_maxrss, cpu_seconds=usage.ru_utime + usage.ru_stime, minflt=usage.ru_minflt
    )
    print(json.dumps(fields), flush=True)


async def serve_role(args: argparse.Namespace) -> None:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def callback(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        start = time.perf_counter()
        if args.direction == "up":
            total = await receive(reader)
            report("server", received=total, seconds=time.perf_counter() - start)
        else:
            await send(writer, args.size, args.write_size)
            await receive(reader)  # until the client's EOF
            report("server")
        writer.close()
        done.set_result(None)

    if args.impl == "tcp":
        server: Any = await asyncio.start_server(callback, HOST, 0)
        port = server.sockets[0].getsockname()[1]
    else:
        server = await wsstream.streams.start_server(
            callback, HOST, 0, compression=None, max_message_size=args.message_size, write_limit=args.write_limit
        )
        port = server.port
    print(json.dumps({"port": port}), flush=True)
    await done
    server.close()
    await server.wait_closed()


async def client_role(args: argparse.Namespace) -> None:
    if args.impl == "tcp":
        reader, writer = await asyncio.open_connection(HOST, args.port)
    else:
        reader, writer = await wsstream.streams.open_connection(
            f"ws://{HOST}:{args.port}/",
            proxy=None,
            compression=None,
            max_message_size=args.message_size,
            write_limit=args.write_limit,
        )
    start = time.perf_counter()
    if args.direction == "up":
        await send(writer, args.size, args.write_size)
        await receive(reader)  # until the server's EOF
        report("client")
    else:
        total = await receive(reader)
        report("client", received=total, seconds=time.perf_counter() - start)
        writer.write_eof()
    writer.close()
    await writer.wait_closed()


def run_case(impl: str, direction: str, args: argparse.Namespace) -> dict[str, Any]:
    common = [
        "--impl",
        impl,
        "--direction",
        direction,
        "--size",
        str(args.size),
        "--write-size",
        str(args.write_size),
        "--message-size",
        str(args.message_size),
        "--write-limit",
        str(args.write_limit),
    ]
    me = [sys.executable, __file__]
    server = subprocess.Popen([*me, "_serve", *common], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = json.loads(server.stdout.readline())["port"]
        client = subprocess.run(
            [*me, "_client", *common, "--port", str(port)], capture_output=True, text=True, timeout=600, check=True
        )
        server_out = json.loads(server.stdout.readline())
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    client_out = json.loads(client.stdout.splitlines()[-1])
    receiver = server_out if direction == "up" else client_out
    assert receiver["received"] == args.size, receiver
    sender = client_out if direction == "up" else server_out
    gib = args.size / 2**30
    return {
        "mb_per_s": args.size / receiver["seconds"] / 1e6,
        "maxrss_mib": max(server_out["maxrss_kib"], client_out["maxrss_kib"]) / 1024,
        "receiver_cpu_s_per_gib": receiver["cpu_seconds"] / gib,
        "sender_cpu_s_per_gib": sender["cpu_seconds"] / gib,
        "receiver_minflt_per_gib": receiver["minflt"] / gib,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", nargs="?", default="bench", choices=["bench", "_serve", "_client"])
    parser.add_argument("--size", type=parse_size, default=2**30)
    parser.add_argument("--write-size", type=parse_size, default=64 * 2**10)
    parser.add_argument("--message-size", type=parse_size, default=wsstream.streams.DEFAULT_MAX_MESSAGE_SIZE)
    parser.add_argument("--write-limit", type=parse_size, default=64 * 2**10, help="WebSocket write_limit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--directions", default="up,down")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--impl", choices=["tcp", "ws"], default="ws")
    parser.add_argument("--direction", choices=["up", "down"], default="up")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.role == "_serve":
        asyncio.run(serve_role(args))
        return
    if args.role == "_client":
        asyncio.run(client_role(args))
        return
    results: dict[str, Any] = {
        "size": args.size,
        "write_size": args.write_size,
        "message_size": args.message_size,
        "speedups": wsstream.SPEEDUPS,
        "cases": {},
    }
    for direction in args.directions.split(","):
        runs: dict[str, list[dict[str, Any]]] = {"tcp": [], "ws": []}
        for _ in range(args.rounds):
            for impl in ("tcp", "ws"):
                runs[impl].append(run_case(impl, direction, args))
        case = {
            impl: {
                "mb_per_s": statistics.median(r["mb_per_s"] for r in rs),
                "all_mb_per_s": [round(r["mb_per_s"]) for r in rs],
                "maxrss_mib": max(r["maxrss_mib"] for r in rs),
                "receiver_cpu_s_per_gib": statistics.median(r["receiver_cpu_s_per_gib"] for r in rs),
                "sender_cpu_s_per_gib": statistics.median(r["sender_cpu_s_per_gib"] for r in rs),
                "receiver_minflt_per_gib": statistics.median(r["receiver_minflt_per_gib"] for r in rs),
            }
            for impl, rs in runs.items()
        }
        case["ratio"] = case["ws"]["mb_per_s"] / case["tcp"]["mb_per_s"]
        # On a busy machine wall time measures the scheduler; CPU time per GiB of the busier process bounds the
        # throughput an idle machine would reach, so its ratio is the steadier figure.
        case["cpu_ratio"] = max(case["tcp"]["receiver_cpu_s_per_gib"], case["tcp"]["sender_cpu_s_per_gib"]) / max(
            case["ws"]["receiver_cpu_s_per_gib"], case["ws"]["sender_cpu_s_per_gib"]
        )
        results["cases"][direction] = case
        if not args.json:
            tcp, ws = case["tcp"], case["ws"]
            print(
                f"{direction:>4}: tcp {tcp['mb_per_s']:6.0f} MB/s (rss {tcp['maxrss_mib']:.0f} MiB)"
                f"  ws {ws['mb_per_s']:6.0f} MB/s (rss {ws['maxrss_mib']:.0f} MiB)  ratio {case['ratio']:.2f}"
                f"   runs tcp {tcp['all_mb_per_s']} ws {ws['all_mb_per_s']}\n"
                f"      CPU s/GiB receiver+sender: tcp {tcp['receiver_cpu_s_per_gib']:.2f}"
                f"+{tcp['sender_cpu_s_per_gib']:.2f}  ws {ws['receiver_cpu_s_per_gib']:.2f}"
                f"+{ws['sender_cpu_s_per_gib']:.2f}  cpu ratio {case['cpu_ratio']:.2f}"
                f"   receiver page faults/GiB: tcp {tcp['receiver_minflt_per_gib']:.0f}"
                f" ws {ws['receiver_minflt_per_gib']:.0f}",
                flush=True,
            )
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
