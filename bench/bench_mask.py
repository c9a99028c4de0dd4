"""Benchmark of payload masking and frame building: C accelerator vs pure Python.

Prints one JSON object per line: {"impl", "func", "size", "gbps", "ns_per_call", "calls", "python"}, for
func in apply_mask (new bytes), apply_mask_into (in place) and build_frame (masked, as a client sends).
Every measurement is bounded: at most --budget bytes (default 256 MiB) per repeat, at most 200,000 calls,
best of --repeat (default 5) repeats. Run from the repository root:

    .venv/bin/python bench/bench_mask.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsstream.core import mask as mask_module

SIZES = [64, 1024, 64 * 1024, 1024 * 1024, 16 * 1024 * 1024]
MAX_CALLS = 200_000


def measure(call: Callable[[], object], size: int, budget: int, repeat: int) -> tuple[float, int]:
    """Return (best seconds per call, calls per repeat) for call on a payload of size bytes."""
    calls = max(1, min(MAX_CALLS, budget // max(size, 1)))
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - start) / calls)
    return best, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=256 * 1024 * 1024, help="bytes per repeat per case")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="*", default=SIZES)
    args = parser.parse_args()

    impls: dict[str, tuple[Callable[..., bytes], Callable[..., None], Callable[..., bytes]]] = {
        "python": (mask_module.py_apply_mask, mask_module.py_apply_mask_into, mask_module.py_build_frame)
    }
    try:
        from wsstream import _speedups

        impls["c"] = (_speedups.apply_mask, _speedups.apply_mask_into, _speedups.build_frame)
    except ImportError:
        print("# wsstream._speedups is not built: pure Python only", file=sys.stderr)

    key = os.urandom(4)
    python = f"{platform.python_implementation()} {platform.python_version()}"
    for size in args.sizes:
        data = os.urandom(size)
        scratch = bytearray(data)
        for impl, (apply_mask, apply_mask_into, build_frame) in impls.items():
            # Python masking is ~50x slower: give it a tenth of the budget so a run stays under a minute.
            budget = args.budget if impl == "c" else args.budget // 10
            cases: dict[str, Callable[[], object]] = {
                "apply_mask": partial(apply_mask, data, key),
                # In place: no allocation, so no page faults for big payloads; the kernel's own speed.
                "apply_mask_into": partial(apply_mask_into, scratch, key),
                "build_frame": partial(build_frame, 0x82, data, key),
            }
            for func, call in cases.items():
                seconds, calls = measure(call, size, budget, args.repeat)
                record = {
                    "impl": impl,
                    "func": func,
                    "size": size,
                    "gbps": round(size / seconds / 1e9, 3),
                    "ns_per_call": round(seconds * 1e9, 1),
                    "calls": calls,
                    "python": python,
                }
                print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
