"""Profile one implementation's echo server under py-spy while the fixed picows client drives it.

Owns: ``python bench/profile.py [--impl wsstream] [--workload rr32] [--seconds 8] [--top 15] [--uvloop]``.
The server runs pinned to CPU 0 and ``py-spy record --pid`` samples it while the client (CPU 1) drives it.
Prints the top functions by own time (leaf samples) with their total time, and keeps the collapsed stacks (a
flame graph input) at the printed path. Needs py-spy (``pip install py-spy``) and ptrace rights (root).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import run

BENCH = Path(__file__).resolve().parent
_LINE = re.compile(r":\d+\)$")
_IDLE = ("EpollSelector.select", "select (selectors.py", "PollSelector.select")


def collapse(path: Path) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    """Own and total sample counts per function from py-spy's collapsed ("raw") output, idle waits dropped."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        # One entry per function, not per line: "send (wsstream/connection.py:514)" -> "send (wsstream/...py)".
        frames = [_LINE.sub(")", f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames or frames[-1].startswith(_IDLE):
            continue  # waiting in epoll is idle time, not cost
        samples += n
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    return own, total, samples


def main(argv: list[str] | None = None) -> int:
    """Run the profile and print the tables."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impl", default="wsstream", choices=[i for i in run.PYTHON_IMPLS if i != "raw"])
    p.add_argument(
        "--workload", default="rr32", choices=["rr32", "stream64", "msg16k", "msg1m", "conc200", "handshake"]
    )
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--uvloop", action="store_true")
    args = p.parse_args(argv)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = Path(tempfile.mkdtemp(prefix="wsstream-profile-")) / f"{args.impl}-{args.workload}.txt"
    server = subprocess.Popen(
        run._server_cmd(args.impl, args.uvloop),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=run._env(args.impl),
        preexec_fn=run._pin(run.SERVER_CPU),
    )
    try:
        line = run._read_line(server, run.START_TIMEOUT)
        if not line:
            print("server did not start", file=sys.stderr)
            return 1
        port = int(json.loads(line)["port"])
        spy_cmd = [pyspy, "record", "--format", "raw", "--rate", str(args.rate)]
        spy_cmd += ["--duration", str(int(args.seconds)), "--pid", str(server.pid), "-o", str(out)]
        spy = subprocess.Popen(
            spy_cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=run._pin(run.CLIENT_CPU),  # sampling cost lands beside the client, not on the server's core
        )
        done = subprocess.run(
            run._client_cmd(run.DRIVER, args.workload, port, args.seconds + 1, server.pid, args.uvloop),
            capture_output=True,
            env=run._env(run.DRIVER),
            preexec_fn=run._pin(run.CLIENT_CPU),
            timeout=args.seconds * 4 + 60,
        )
        print(done.stdout.decode().strip())
        spy.wait(args.seconds + 30)
    finally:
        run._stop(server)
    own, total, samples = collapse(out)
    print(f"# {args.impl} server, {args.workload}, {samples} busy samples; collapsed stacks: {out}")
    print(f"\n| own % | total % | function ({args.top} by own time) |\n|---|---|---|")
    for fn, n in own.most_common(args.top):
        print(f"| {100 * n / samples:.1f} | {100 * total[fn] / samples:.1f} | `{fn}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
