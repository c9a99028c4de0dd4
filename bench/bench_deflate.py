"""Benchmark of wsstream's permessage-deflate codec: compress / decompress time per message size.

Owns one question for the asyncio layer: above which message size does compressing in a worker thread pay?
For each size (64 B .. 16 MiB) and kind of data (``text``: JSON-like, compressible; ``random``:
incompressible) it times ``PerMessageDeflate.compress`` and ``decompress`` (CPU time, best of several
batches) at the default ``Deflate()`` settings (level 6, memLevel 8, window 15, context takeover) and prints
one JSON line per measurement. Then it measures the round trip of ``loop.run_in_executor`` with a no-op and
prints a final ``recommendation`` line: the smallest size whose compression takes at least ``--factor``
(default 10) times the offload round trip and at least 0.5 ms (where blocking the event loop starts to hurt
other connections' latency).

Run: ``.venv/bin/python bench/bench_deflate.py [--quick] [--max-size BYTES] [--factor N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsstream.core.deflate import Deflate, PerMessageDeflate

SIZES = [64 << (2 * i) for i in range(10)]  # 64 B, 256 B, 1 KiB, ... 16 MiB
MIN_SECONDS = 0.2  # time each measurement for at least this long


def text_data(size: int, seed: int) -> bytes:
    """JSON-like messages: the usual WebSocket payload (ratio ~0.35 at level 6)."""
    rng = random.Random(seed)
    words = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(2000)]
    parts = []
    total = 0
    while total < size:
        part = b'{"id": %d, "user": "%s", "text": "%s", "score": %f},' % (
            rng.randint(0, 10**6),
            rng.choice(words),
            b" ".join(rng.choices(words, k=8)),
            rng.random(),
        )
        parts.append(part)
        total += len(part)
    return b"".join(parts)[:size]


def codec_pair() -> tuple[PerMessageDeflate, PerMessageDeflate]:
    deflate = Deflate()
    accepted = deflate.server_accept([[("client_max_window_bits", None)]])
    assert accepted is not None
    response, server = accepted
    client = deflate.client_accept([])
    assert response == server.extension
    return client, server


def cpu_per_call(func: Callable[[int], object], count: int) -> float:
    """CPU seconds per call of ``func(i)`` over ``count`` calls (CPU time: shared machines are noisy)."""
    start = time.process_time()
    for i in range(count):
        func(i)
    return (time.process_time() - start) / count


def corpus(kind: str, size: int) -> bytes:
    """At least 4 MiB (and two messages) of data; messages are consecutive slices of it, so none repeats
    within the 32 KiB window (a repeated message would compress unrealistically fast)."""
    total = max(4 << 20, 2 * size)
    return text_data(total, 0) if kind == "text" else os.urandom(total)


def measure(size: int, kind: str, data: bytes, quick: bool) -> list[dict[str, object]]:
    """Compress then decompress distinct ``kind`` messages of ``size`` bytes, with context takeover.

    Each figure is the best of several batches; every batch starts from fresh codecs, so it sees the same
    message sequence and the same payloads.
    """
    per_corpus = len(data) // size
    messages = [
        data[(i % per_corpus) * size : (i % per_corpus + 1) * size] for i in range(min(per_corpus, 2))
    ]

    def message(i: int) -> bytes:
        start = (i % per_corpus) * size
        return data[start : start + size]

    client, _ = codec_pair()
    once = cpu_per_call(lambda i: client.compress(messages[i % len(messages)]), 1)
    budget = MIN_SECONDS / (4 if quick else 1)
    count = max(1, min(100000, int(budget / max(once, 1e-6))))
    batches = 3 if quick or size >= 1 << 22 else 5
    compress_s = decompress_s = float("inf")
    sender, _ = codec_pair()
    payloads = [sender.compress(message(i)) for i in range(count)]
    inputs = [message(i) for i in range(count)] if size <= 1 << 16 else None
    for _ in range(batches):
        client, server = codec_pair()
        if inputs is not None:  # slicing costs a copy: make the small messages beforehand
            run = cpu_per_call(lambda i, c=client, m=inputs: c.compress(m[i]), count)  # type: ignore[misc]
        else:
            run = cpu_per_call(lambda i, c=client: c.compress(message(i)), count)  # type: ignore[misc]
        compress_s = min(compress_s, run)
        run = cpu_per_call(lambda i, d=server: d.decompress(payloads[i], True, size), count)  # type: ignore[misc]
        decompress_s = min(decompress_s, run)
    ratio = sum(len(p) for p in payloads) / (size * count)
    rows: list[dict[str, object]] = []
    for op, seconds in (("compress", compress_s), ("decompress", decompress_s)):
        rows.append(
            {
                "op": op,
                "data": kind,
                "size": size,
                "messages": count,
                "us_per_message": round(seconds * 1e6, 2),
                "mb_per_s": round(size / seconds / 1e6, 1),
                "ratio": round(ratio, 4),
            }
        )
    return rows


async def executor_round_trip(samples: int = 2000) -> float:
    """Wall seconds for ``await loop.run_in_executor(pool, noop)``: the fixed cost of offloading a message.

    The median of 5 batches (wall time, as the thread hand-off is latency, not CPU).
    """
    loop = asyncio.get_running_loop()
    results = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        await loop.run_in_executor(pool, int)  # start the worker
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(samples // 5):
                await loop.run_in_executor(pool, int)
            results.append((time.perf_counter() - start) / (samples // 5))
    return sorted(results)[2]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter measurements")
    parser.add_argument("--max-size", type=int, default=16 << 20, help="largest message size (bytes)")
    parser.add_argument("--factor", type=float, default=10.0, help="compress time / offload cost to pay")
    args = parser.parse_args()

    compress_us: dict[int, float] = {}
    data = {kind: corpus(kind, args.max_size) for kind in ("text", "random")}
    for size in (s for s in SIZES if s <= args.max_size):
        for kind in ("text", "random"):
            for row in measure(size, kind, data[kind], args.quick):
                print(json.dumps(row), flush=True)
                if row["op"] == "compress" and kind == "text":
                    compress_us[size] = float(row["us_per_message"])  # type: ignore[arg-type]

    offload_us = asyncio.run(executor_round_trip()) * 1e6
    floor_us = max(args.factor * offload_us, 500.0)
    threshold = next((size for size in sorted(compress_us) if compress_us[size] >= floor_us), None)
    print(
        json.dumps(
            {
                "recommendation": "offload compression to a thread at or above this message size",
                "offload_round_trip_us": round(offload_us, 2),
                "compress_floor_us": round(floor_us, 1),
                "thread_threshold_bytes": threshold,
                "python": sys.version.split()[0],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
