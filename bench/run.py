"""Run the WebSocket benchmark suite: wsstream against its peers and a raw asyncio TCP echo, one command.

Owns the orchestration: which server/client pairs run, CPU pinning (server on CPU 0, client on CPU 1), process
lifetimes and timeouts, and the summary. For each repetition ("round") and workload, every pair is measured in
fresh processes (one server/client pair of processes runs the throughput workloads in turn; idle memory
gets its own, impl against itself), in a shuffled order, and every ratio is taken against the raw baseline
*of the same round*, so slow drifts of this shared machine cancel; the table shows the median ratio over
rounds and its min-max spread.

"As server" figures: the implementation's server driven by the fixed picows client (the raw server by the raw
client). "As client" figures: the implementation's client against the fixed picows server (the raw client
against the raw server). Compression is disabled everywhere (permessage-deflate off / not offered).

``--awake`` keeps the benchmark's CPUs from halting between messages (``spin.py``: one SCHED_IDLE busy loop
pinned to each of them, for the whole run): waking a halted vCPU costs more than an ``rr32`` round trip on a
VM. Every record says ``"awake"``, and the tables say which mode they summarise.

Output: one JSON line per measurement on stdout (also ``--out FILE``), then the ratio tables.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import selectors
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from impls.common import WORKLOADS  # noqa: E402

PYTHON_IMPLS = ("raw", "websockets", "aiohttp", "picows", "wsstream", "wsstream-py")
ALL_IMPLS = ("raw", "wsstream", "wsstream-py", "websockets", "aiohttp", "picows", "node")
DRIVER = "picows"  # the fixed fast peer for every WebSocket implementation
SERVER_CPU, CLIENT_CPU = 0, 1
START_TIMEOUT = 30.0  # seconds for a server (or a spinner) to print its first line


@dataclass(frozen=True)
class Pair:
    """One measurement: ``client`` impl talking to ``server`` impl."""

    server: str
    client: str

    def roles(self) -> list[tuple[str, str]]:
        """(role, impl) figures this pair gives: the non-driver side, or both roles when both are one impl."""
        if self.server == self.client:
            return [("server", self.server), ("client", self.client)]
        if self.client in (DRIVER, "raw") and self.server != "raw":
            return [("server", self.server)]
        return [("client", self.client)]


def pairs_for(impls: Iterable[str]) -> list[Pair]:
    """Pairs needed for the as-server and as-client figures of ``impls`` (raw and picows always included)."""
    out = [Pair("raw", "raw"), Pair(DRIVER, DRIVER)]
    for impl in impls:
        if impl not in ("raw", DRIVER):
            out += [Pair(impl, DRIVER), Pair(DRIVER, impl)]
    return out


def _env(impl: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WSSTREAM_NO_SPEEDUPS", None)
    if impl == "wsstream-py":
        env["WSSTREAM_NO_SPEEDUPS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _pin(cpu: int) -> Any:
    def pre() -> None:
        os.sched_setaffinity(0, {cpu})

    return pre


def _server_cmd(impl: str, uvloop: bool) -> list[str]:
    if impl == "node":
        return ["node", str(BENCH / "node" / "ws_server.js")]
    return [sys.executable, str(BENCH / "worker.py"), "server", impl, *(["--uvloop"] if uvloop else [])]


def _client_cmd(impl: str, workload: str, port: int, seconds: float, pid: int, uvloop: bool) -> list[str]:
    if impl == "node":
        return ["node", str(BENCH / "node" / "ws_client.js"), workload, str(port), str(seconds), str(pid)]
    args = ["--port", str(port), "--seconds", str(seconds), "--server-pid", str(pid)]
    return [
        sys.executable,
        str(BENCH / "worker.py"),
        "client",
        impl,
        workload,
        *args,
        *(["--uvloop"] if uvloop else []),
    ]


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """First stdout line of ``proc`` within ``timeout`` seconds (b"" on timeout or exit)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while b"\n" not in buf and (left := deadline - time.monotonic()) > 0:
            if not sel.select(left):
                break
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
    finally:
        sel.close()
    return buf.split(b"\n", 1)[0]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group ``proc`` leads (it called setpgrp before exec) and reap it."""
    if proc.poll() is None:  # not reaped yet, so the group id cannot have been reused
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


@contextlib.contextmanager
def awake(cpus: Iterable[int], log: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Keep ``cpus`` from halting while the block runs: one ``spin.py`` per CPU, killed on the way out.

    Each spinner leads its own process group (a terminal's Ctrl-C reaches run.py, whose unwinding kills the
    group), dies with run.py (PR_SET_PDEATHSIG, a parent check) even on SIGKILL, and ends by itself after
    ``spin.MAX_SECONDS``. Not a new session: with scheduler autogroups (``kernel.sched_autogroup_enabled``)
    a session is its own scheduling group, in which SCHED_IDLE would only rank the spinner below its own
    group, which then takes half of the CPU from the benchmark's group.
    """
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with open(log, "ab") as err:
            for cpu in cpus:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, str(BENCH / "spin.py"), str(cpu), str(os.getpid())],
                        stdout=subprocess.PIPE,
                        stderr=err,
                        stdin=subprocess.DEVNULL,
                        preexec_fn=os.setpgrp,
                    )
                )
                if not _read_line(procs[-1], START_TIMEOUT):
                    raise RuntimeError(f"the spinner for CPU {cpu} did not start (see {log})")
        yield procs
    finally:
        for proc in procs:
            _kill_group(proc)


def check_awake(spinners: list[subprocess.Popen[bytes]]) -> None:
    """Stop the run if a spinner has ended (e.g. at its time bound): later records would be in the other mode."""
    for proc in spinners:
        if proc.poll() is not None:
            raise RuntimeError(f"--awake spinner {proc.args[2]} exited ({proc.returncode}); stopping the run")


def mode(awake: bool) -> str:
    """How the run treated idle CPUs, for the headers: results of the two modes must never be mixed unseen."""
    return "awake (SCHED_IDLE spinners on the benchmark CPUs)" if awake else "not awake (idle vCPUs may halt)"


def measure(pair: Pair, workloads: list[str], seconds: float, uvloop: bool, log: Path) -> list[dict[str, Any]]:
    """Run ``workloads`` in turn between fresh pinned server and client processes of ``pair``.

    Returns one record per workload: the client's JSON, or an ``error`` entry when a process failed.
    """

    def failed(why: str) -> list[dict[str, Any]]:
        return [{"workload": wl, "error": why} for wl in workloads]

    with open(log, "ab") as err:
        server = subprocess.Popen(
            _server_cmd(pair.server, uvloop),
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=_env(pair.server),
            preexec_fn=_pin(SERVER_CPU),
        )
        try:
            line = _read_line(server, START_TIMEOUT)
            if not line:
                return failed(f"server {pair.server} did not start (see {log})")
            port = int(json.loads(line)["port"])
            try:
                done = subprocess.run(
                    _client_cmd(pair.client, ",".join(workloads), port, seconds, server.pid, uvloop),
                    capture_output=True,
                    env=_env(pair.client),
                    preexec_fn=_pin(CLIENT_CPU),
                    timeout=(seconds * 4 + 60) * len(workloads) + 30,
                    stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired:
                return failed("client timed out")
            err.write(done.stderr)
            records = {}
            for text in done.stdout.decode().splitlines():
                if text.startswith("{"):
                    rec = json.loads(text)
                    records[rec.pop("workload")] = rec
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            why = f"client exit {done.returncode}: {tail[0][:200]}"
            return [{"workload": wl, **records.get(wl, {"error": why})} for wl in workloads]
        finally:
            _stop(server)


def available(impls: list[str]) -> list[str]:
    """Drop implementations that cannot run here, saying why on stderr."""
    ok = []
    for impl in impls:
        if impl == "node":
            probe = ["node", "-e", "require('ws'); require('bufferutil')"]
            cwd: Path | None = BENCH / "node"
        else:
            mod = {"raw": "asyncio", "wsstream-py": "wsstream"}.get(impl, impl)
            probe = [
                sys.executable,
                "-c",
                f"import {mod}; {mod}.connect; {mod}.serve" if mod == "wsstream" else f"import {mod}",
            ]
            cwd = None
        r = subprocess.run(probe, capture_output=True, env=_env(impl), cwd=cwd, timeout=60)
        if r.returncode == 0:
            ok.append(impl)
        else:
            print(
                f"# skipping {impl}: {r.stderr.decode(errors='replace').strip().splitlines()[-1:]}",
                file=sys.stderr,
            )
    return ok


def figure(record: dict[str, Any], role: str, workload: str) -> float | None:
    """The number a record contributes to ``role``: throughput, or that side's KiB/conn for idle memory."""
    if "error" in record:
        return None
    if workload == "idle2000":
        return float(record["server_kib" if role == "server" else "client_kib"])
    return float(record["value"])


def cpu_figure(record: dict[str, Any], role: str) -> float | None:
    """CPU microseconds per message spent by the measured side (None for idle memory or errors)."""
    key = "server_cpu_us" if role == "server" else "client_cpu_us"
    return float(record[key]) if record.get(key) else None


def _cell(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{format(med, fmt)} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def summarise(results: list[dict[str, Any]], impls: list[str], rounds: int, awake: bool = False) -> str:
    """Tables of per-round ratios against raw (median [min-max]) for both roles, plus wsstream's targets.

    ``awake`` only labels the tables (``--awake`` runs): summarise records of one mode at a time.
    """
    # by[(role, impl, workload, round)] = (figure, cpu)
    by: dict[tuple[str, str, str, int], tuple[float | None, float | None]] = {}
    for r in results:
        for role, impl in Pair(r["server"], r["client"]).roles():
            by[(role, impl, r["workload"], r["round"])] = (
                figure(r, role, r["workload"]),
                cpu_figure(r, role),
            )
    workloads = list(dict.fromkeys(r["workload"] for r in results))
    cols = [i for i in impls if i != "raw"]
    out: list[str] = []
    tag = ", --awake" if awake else ""

    def ratios(role: str, impl: str, wl: str, base: str = "raw", cpu: bool = False) -> list[float]:
        vals = []
        for rnd in range(rounds):
            a = by.get((role, impl, wl, rnd), (None, None))[1 if cpu else 0]
            b = by.get((role, base, wl, rnd), (None, None))[1 if cpu else 0]
            if a and b:
                vals.append(b / a if cpu else a / b)  # CPU: higher is better, like throughput
        return vals

    def raw_abs(role: str, impl: str, wl: str) -> list[float]:
        return [v for rnd in range(rounds) if (v := by.get((role, impl, wl, rnd), (None, None))[0]) is not None]

    for role in ("server", "client"):
        for title, cpu in (("throughput / raw", False), ("CPU per message: raw / impl", True)):
            out.append(f"\n## As {role}: {title} (median [min-max] over {rounds} round(s){tag})")
            out.append("| workload | raw | " + " | ".join(cols) + " |")
            out.append("|---" * (len(cols) + 2) + "|")
            for wl in workloads:
                unit = WORKLOADS[wl].unit
                if wl == "idle2000":
                    if cpu:
                        continue
                    row = [_cell(raw_abs(role, i, wl), ".1f") for i in ["raw", *cols]]
                    out.append(f"| {wl} ({unit}, absolute) | " + " | ".join(row) + " |")
                    continue
                if cpu:
                    base = _cell(
                        [c for rnd in range(rounds) if (c := by.get((role, "raw", wl, rnd), (None, None))[1])],
                        ".1f",
                    )
                    base += " us"
                else:
                    base = _cell(raw_abs(role, "raw", wl), ".0f") + f" {unit}"
                row = [_cell(ratios(role, i, wl, cpu=cpu), ".2f") for i in cols]
                out.append(f"| {wl} | {base} | " + " | ".join(row) + " |")
    for impl in (i for i in cols if i.startswith("wsstream")):
        out.append(f"\n## Targets for {impl} (median over rounds; ratios within each round{tag})")
        for role in ("server", "client"):
            for wl in ("rr32", "stream64"):
                if wl in workloads:
                    vs_raw = ratios(role, impl, wl)
                    vs_ws = ratios(role, impl, wl, base="websockets")
                    cpu_raw = ratios(role, impl, wl, cpu=True)
                    cpu_ws = ratios(role, impl, wl, base="websockets", cpu=True)
                    out.append(
                        f"- {wl} as {role}: {_cell(vs_raw, '.2f')} x raw (target >= 1.0), "
                        f"{_cell(vs_ws, '.2f')} x websockets (target >= 1.8); by CPU per message: "
                        f"{_cell(cpu_raw, '.2f')} x raw, {_cell(cpu_ws, '.2f')} x websockets"
                    )
        if "msg1m" in workloads:
            out.append(
                f"- msg1m as server: {_cell(ratios('server', impl, 'msg1m'), '.2f')} x raw (target >= 0.9); "
                f"as client: {_cell(ratios('client', impl, 'msg1m'), '.2f')}"
            )
        if "idle2000" in workloads:
            out.append(
                f"- idle2000: server {_cell(raw_abs('server', impl, 'idle2000'), '.1f')} KiB/conn, "
                f"client {_cell(raw_abs('client', impl, 'idle2000'), '.1f')} KiB/conn (target <= 8)"
            )
        if "handshake" in workloads:
            out.append(
                "- handshake as server: "
                f"{_cell(ratios('server', impl, 'handshake', base='websockets'), '.2f')}"
                f" x websockets (target >= 1.5), by CPU per handshake "
                f"{_cell(ratios('server', impl, 'handshake', base='websockets', cpu=True), '.2f')}; as client: "
                f"{_cell(ratios('client', impl, 'handshake', base='websockets'), '.2f')}, by CPU "
                f"{_cell(ratios('client', impl, 'handshake', base='websockets', cpu=True), '.2f')}"
            )
    return "\n".join(out)


def print_saved(path: Path) -> None:
    """Re-print the tables of a saved ``--out`` file, one set per mode (records before --awake existed: not awake)."""
    saved = [json.loads(x) for x in path.read_text().splitlines() if x.startswith("{")]
    for awake_mode in sorted({bool(r.get("awake")) for r in saved}):
        recs = [r for r in saved if bool(r.get("awake")) == awake_mode]
        seen = {r["server"] for r in recs} | {r["client"] for r in recs}
        rounds = 1 + max(r["round"] for r in recs)
        loops = ",".join(sorted({r.get("loop", "?") for r in recs}))
        print(f"\n# {path}: {len(recs)} records, {loops}, {rounds} round(s), {mode(awake_mode)}")
        print(summarise(recs, [i for i in ALL_IMPLS if i in seen], rounds, awake_mode))


def main(argv: list[str] | None = None) -> int:
    """Parse options, run every (round, workload, pair) measurement, print JSON lines and the tables."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one round of 0.3 s runs (about 2 minutes)")
    p.add_argument("--impls", default=",".join(ALL_IMPLS), help="comma-separated, from: " + ", ".join(ALL_IMPLS))
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated, from: " + ", ".join(WORKLOADS))
    p.add_argument("--repeat", type=int, default=None, help="rounds (default 3, 1 with --quick)")
    p.add_argument("--duration", type=float, default=None, help="seconds per measurement (default 1.0, 0.3 quick)")
    p.add_argument("--uvloop", action="store_true", help="run every Python process on uvloop")
    p.add_argument(
        "--awake",
        action="store_true",
        help="keep the benchmark CPUs from halting: a SCHED_IDLE busy loop on each (not counted in CPU/message)",
    )
    p.add_argument("--idle-every-round", action="store_true", help="measure idle memory in every round")
    p.add_argument("--seed", type=int, default=1, help="seed for the per-round shuffle of the pair order")
    p.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    p.add_argument("--from", dest="saved", type=Path, help="print the tables of a saved --out file and exit")
    args = p.parse_args(argv)
    if args.saved:
        print_saved(args.saved)
        return 0
    repeat = args.repeat or (1 if args.quick else 3)
    seconds = args.duration or (0.3 if args.quick else 1.0)
    workloads = [w for w in args.workloads.split(",") if w]
    impls = [i for i in args.impls.split(",") if i]
    for name in workloads:
        if name not in WORKLOADS:
            p.error(f"unknown workload {name!r}")
    for name in impls:
        if name not in ALL_IMPLS:
            p.error(f"unknown impl {name!r}")
    if len(os.sched_getaffinity(0)) < 2 or not {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0):
        p.error("needs CPUs 0 and 1")
    impls = available(list(dict.fromkeys(["raw", DRIVER, *impls])))
    loop = "uvloop" if args.uvloop else "asyncio"
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"wsstream-bench-{os.getpid()}.log"
    print(
        f"# loop={loop} rounds={repeat} seconds={seconds} impls={','.join(impls)} awake={args.awake} log={log}",
        file=sys.stderr,
    )
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop the server and client we started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rng = random.Random(args.seed)
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    # Closing order on any exit (Ctrl-C, SIGTERM, an error): the spinners, then the --out file.
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(args.out, "a")) if args.out else None
        spinners = stack.enter_context(awake((SERVER_CPU, CLIENT_CPU), log)) if args.awake else []
        for rnd in range(repeat):
            # Throughput workloads share one server/client process pair per pair of implementations.
            batches = [(pair, [w for w in workloads if w != "idle2000"]) for pair in pairs_for(impls)]
            # Idle memory gets fresh processes so earlier traffic cannot hide or inflate the per-connection
            # growth; one impl-to-impl pair gives both sides' figures. It is deterministic (within 0.1 KiB
            # between rounds) and slow to set up, so it is measured in the first round only by default.
            if "idle2000" in workloads and (rnd == 0 or args.idle_every_round):
                batches += [(Pair(impl, impl), ["idle2000"]) for impl in impls]
            rng.shuffle(batches)
            for pair, batch in batches:
                if not batch:
                    continue
                t0 = time.monotonic()
                recs = measure(pair, batch, seconds, args.uvloop, log)
                wall = round(time.monotonic() - t0, 2)
                check_awake(spinners)  # all of this batch ran in the mode its records will claim
                for rec in recs:
                    rec = {"round": rnd, "server": pair.server, "client": pair.client, "loop": loop, **rec}
                    rec["awake"] = args.awake
                    rec["batch_wall_s"] = wall
                    results.append(rec)
                    line = json.dumps(rec)
                    print(line, flush=True)
                    if out:
                        print(line, file=out, flush=True)
            print(f"# round {rnd + 1}/{repeat} done at {time.monotonic() - started:.0f} s", file=sys.stderr)
    total = time.monotonic() - started
    print(f"\n# {loop}, {repeat} round(s) of {seconds} s, {mode(args.awake)}, {total:.0f} s total")
    print(summarise(results, impls, repeat, args.awake))
    return 0


if __name__ == "__main__":
    sys.exit(main())
