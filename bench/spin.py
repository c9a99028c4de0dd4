"""A busy loop in the SCHED_IDLE class pinned to one CPU, so that vCPU never halts while ``run.py --awake`` runs.

Why: on a VM an idle vCPU halts, and waking it (an interrupt through the hypervisor) costs more than a whole
``rr32`` round trip, with a spread far wider than the differences between implementations. A SCHED_IDLE task
runs only when nothing else on its CPU wants to: a benchmark process that wakes up preempts it at once, and
its CPU time is its own (run.py reads CPU per message from the benchmark processes' schedstat, not the CPU's).

``spin.py CPU PARENT_PID`` pins itself to CPU, enters SCHED_IDLE, prints ``{"spinning": CPU}`` and spins until
PARENT_PID is no longer its parent (PR_SET_PDEATHSIG kills it at once; a getppid() check every CHECK_EVERY
iterations is the fallback) or MAX_SECONDS have passed, so it never outlives run.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import time

MAX_SECONDS = 2 * 3600.0  # hard bound on a spinner's life, whatever happens to its parent
CHECK_EVERY = 200_000  # empty iterations between parent/deadline checks: a few ms of CPython
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent exits (best effort: the loop checks too)."""
    with contextlib.suppress(OSError, AttributeError):  # no libc prctl: the getppid() check still holds
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spin(cpu: int, parent: int, max_seconds: float = MAX_SECONDS) -> None:
    """Occupy ``cpu`` at the lowest priority until ``parent`` is gone or ``max_seconds`` have passed."""
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the death signal was armed
        return
    os.sched_setaffinity(0, {cpu})
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    print(json.dumps({"spinning": cpu}), flush=True)
    deadline = time.monotonic() + max_seconds
    while os.getppid() == parent and time.monotonic() < deadline:
        for _ in range(CHECK_EVERY):
            pass


def main(argv: list[str] | None = None) -> int:
    """``spin.py CPU PARENT_PID``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    spin(int(args[0]), int(args[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
