"""Workload definitions and the generic client drivers shared by the Python implementations.

Owns: what each workload is (message size, window, connection count, unit), the bounded pump loops used by
clients whose API is ``await send(data)`` / ``await recv()``, and process-level helpers (RSS, result record).
Every loop here stops at a deadline *and* at a hard message cap, so a stalled peer can never hang a run.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Send = Callable[[bytes], Awaitable[Any]]
Recv = Callable[[], Awaitable[Any]]
Close = Callable[[], Awaitable[Any]]
# An open connection as three bound coroutine functions; binding avoids an adapter layer in the hot loop.
Conn = tuple[Send, Recv, Close]
Connect = Callable[[int], Awaitable[Conn]]

HOST = "127.0.0.1"
# Hard cap on messages per pump: far above any rate one core reaches; only matters if a clock misbehaves.
MAX_MESSAGES = 50_000_000
# Concurrent dialers used to open many connections (handshake and idle workloads).
DIAL_CONCURRENCY = 50


@dataclass(frozen=True)
class Workload:
    """One workload: ``size``-byte binary messages echoed back, ``window`` in flight per connection."""

    name: str
    size: int
    window: int
    connections: int
    unit: str
    description: str


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("rr32", 32, 1, 1, "rt/s", "request/response, 32 B, one connection (round trips/s)"),
        Workload("stream64", 64, 100, 1, "msg/s", "pipelined 64 B messages, window 100 (messages/s)"),
        Workload("msg16k", 16384, 16, 1, "MB/s", "16 KiB messages, window 16 (echoed MB/s)"),
        Workload("msg1m", 1 << 20, 4, 1, "MB/s", "1 MiB messages, window 4 (echoed MB/s)"),
        Workload("conc200", 32, 1, 200, "rt/s", "200 connections doing 32 B request/response (round trips/s)"),
        Workload("handshake", 0, 0, 32, "hs/s", "open + close handshake, 32 dialers (handshakes/s)"),
        Workload("idle2000", 0, 0, 2000, "KiB/conn", "RSS per idle open connection at 2000 connections"),
    )
}


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes (Linux /proc)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_ns(pid: int) -> int:
    """CPU time consumed so far by every thread of ``pid``, in ns (Linux schedstat, not tick-rounded)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:  # a thread that ended between listdir and open
            pass
    return total


class CpuMeter:
    """CPU time spent by the server and by this client while one measurement runs."""

    __slots__ = ("client0", "server0", "server_pid")

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.server0 = cpu_ns(server_pid) if server_pid else 0
        self.client0 = cpu_ns(os.getpid())

    def per_message(self, messages: int) -> dict[str, float]:
        """Microseconds of CPU per echoed message on each side since construction."""
        server = (cpu_ns(self.server_pid) - self.server0) if self.server_pid else 0
        client = cpu_ns(os.getpid()) - self.client0
        n = max(messages, 1)
        return {"server_cpu_us": server / n / 1e3, "client_cpu_us": client / n / 1e3}


def payload(size: int) -> bytes:
    """A deterministic, non-constant payload (so no implementation can take a shortcut on zeros)."""
    return bytes(i & 0xFF for i in range(size))


def result(value: float, unit: str, **extra: Any) -> dict[str, Any]:
    """The record a client prints as one JSON line."""
    return {"value": value, "unit": unit, **extra}


def throughput_value(w: Workload, messages: int, nbytes: int, elapsed: float) -> float:
    """Convert counted messages/bytes over ``elapsed`` seconds into the workload's unit."""
    if w.unit == "MB/s":
        return nbytes / elapsed / 1e6
    return messages / elapsed


async def pump(send: Send, recv: Recv, data: bytes, window: int, seconds: float) -> tuple[int, int, float]:
    """Keep ``window`` echoes in flight for ``seconds``, then drain; return (messages, bytes, elapsed)."""
    start = time.perf_counter()
    deadline = start + seconds
    for _ in range(window):
        await send(data)
    in_flight = window
    messages = nbytes = 0
    while in_flight and messages < MAX_MESSAGES:
        m = await recv()
        messages += 1
        nbytes += len(m)
        if time.perf_counter() < deadline:
            await send(data)
        else:
            in_flight -= 1
    return messages, nbytes, time.perf_counter() - start


async def run_workload(connect: Connect, w: Workload, port: int, seconds: float, server_pid: int) -> dict[str, Any]:
    """Run workload ``w`` with an await-style client ``connect`` against ``port`` and return its result."""
    timeout = seconds * 4 + 60
    return await asyncio.wait_for(_run(connect, w, port, seconds, server_pid), timeout)


async def _run(connect: Connect, w: Workload, port: int, seconds: float, server_pid: int) -> dict[str, Any]:
    warmup = min(0.25, seconds * 0.2)
    data = payload(w.size)
    if w.name == "handshake":
        return await handshakes(connect, w, port, seconds, server_pid)
    if w.name == "idle2000":
        return await idle(connect, w, port, server_pid)
    conns = await dial(connect, port, w.connections)
    await asyncio.gather(*(pump(s, r, data, w.window, warmup) for s, r, _ in conns))
    meter = CpuMeter(server_pid)
    runs = await asyncio.gather(*(pump(s, r, data, w.window, seconds) for s, r, _ in conns))
    res = throughput_result(w, runs, meter)
    await asyncio.gather(*(c() for _, _, c in conns), return_exceptions=True)
    return res


def throughput_result(w: Workload, runs: list[tuple[int, int, float]], meter: CpuMeter) -> dict[str, Any]:
    """Combine per-connection (messages, bytes, elapsed) into one record with CPU cost per message."""
    messages = sum(m for m, _, _ in runs)
    nbytes = sum(b for _, b, _ in runs)
    elapsed = max(e for _, _, e in runs)
    return result(
        throughput_value(w, messages, nbytes, elapsed),
        w.unit,
        messages=messages,
        elapsed=elapsed,
        **meter.per_message(messages),
    )


async def dial(connect: Connect, port: int, n: int) -> list[Conn]:
    """Open ``n`` connections with at most DIAL_CONCURRENCY handshakes in flight."""
    conns: list[Conn] = []
    for i in range(0, n, DIAL_CONCURRENCY):
        conns += await asyncio.gather(*(connect(port) for _ in range(min(DIAL_CONCURRENCY, n - i))))
    return conns


async def handshakes(connect: Connect, w: Workload, port: int, seconds: float, server_pid: int) -> dict[str, Any]:
    """Open and close connections from ``w.connections`` dialers until the deadline; handshakes/s."""
    meter = CpuMeter(server_pid)
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()

    async def dialer() -> int:
        done = 0
        while time.perf_counter() < deadline and done < MAX_MESSAGES:
            _, _, close = await connect(port)
            await close()
            done += 1
        return done

    counts = await asyncio.gather(*(dialer() for _ in range(w.connections)))
    elapsed = time.perf_counter() - start
    n = sum(counts)
    return result(n / elapsed, w.unit, handshakes=n, elapsed=elapsed, **meter.per_message(n))


async def settle_rss(pid: int, seconds: float = 2.0) -> int:
    """RSS of ``pid`` once it stops growing (at most ``seconds``): accepted connections finish setting up."""
    last = rss_bytes(pid)
    for _ in range(int(seconds / 0.1)):
        await asyncio.sleep(0.1)
        now = rss_bytes(pid)
        if now == last:
            break
        last = now
    return last


async def idle(connect: Connect, w: Workload, port: int, server_pid: int) -> dict[str, Any]:
    """Open ``w.connections`` idle connections and report the RSS growth per connection on both sides."""
    warm = await dial(connect, port, DIAL_CONCURRENCY)  # first-use allocations are not per-connection cost
    server0, own0 = await settle_rss(server_pid), rss_bytes(os.getpid())
    conns = await dial(connect, port, w.connections)
    server1, own1 = await settle_rss(server_pid), rss_bytes(os.getpid())
    n = w.connections
    del conns, warm  # the process exits right after; closing 2000 connections cleanly would only cost time
    return idle_result(w, n, server1 - server0, own1 - own0)


def idle_result(w: Workload, n: int, server_delta: int, client_delta: int) -> dict[str, Any]:
    """Idle-memory record: server-side KiB/conn is the value; the client side rides along for client runs."""
    return result(
        server_delta / n / 1024,
        w.unit,
        server_kib=server_delta / n / 1024,
        client_kib=client_delta / n / 1024,
    )


class CallbackPump:
    """Window bookkeeping for callback-style clients (raw, picows): call ``received`` per echoed message.

    ``start`` sends the first ``window`` messages; each echo sends one more until the deadline, then the
    window drains and ``done`` resolves with (messages, bytes, elapsed).
    """

    __slots__ = ("deadline", "done", "in_flight", "messages", "nbytes", "send_one", "start_time")

    def __init__(self, send_one: Callable[[], None]) -> None:
        self.send_one = send_one
        self.done: asyncio.Future[tuple[int, int, float]] | None = None
        self.deadline = self.start_time = 0.0
        self.in_flight = self.messages = self.nbytes = 0

    def start(self, window: int, seconds: float) -> asyncio.Future[tuple[int, int, float]]:
        """Begin one timed pump; the returned future resolves when the window has drained."""
        self.done = asyncio.get_running_loop().create_future()
        self.start_time = time.perf_counter()
        self.deadline = self.start_time + seconds
        self.in_flight = window
        self.messages = self.nbytes = 0
        for _ in range(window):
            self.send_one()
        return self.done

    def received(self, nbytes: int) -> None:
        """Account one echoed message of ``nbytes`` and keep the window full until the deadline."""
        self.messages += 1
        self.nbytes += nbytes
        if time.perf_counter() < self.deadline and self.messages < MAX_MESSAGES:
            self.send_one()
            return
        self.in_flight -= 1
        if self.in_flight == 0 and self.done is not None and not self.done.done():
            self.done.set_result((self.messages, self.nbytes, time.perf_counter() - self.start_time))

    def lost(self, exc: BaseException | None) -> None:
        """The connection died: fail the pending pump instead of waiting for its deadline-free drain."""
        if self.done is not None and not self.done.done():
            self.done.set_exception(exc or ConnectionError("connection closed during pump"))


async def run_callback_workload(
    open_pumps: Callable[[int, int, bytes], Awaitable[list[CallbackPump]]],
    w: Workload,
    port: int,
    seconds: float,
    server_pid: int,
) -> dict[str, Any]:
    """Throughput workloads for callback clients: ``open_pumps(port, n, data)`` opens n connections."""
    pumps = await open_pumps(port, w.connections, payload(w.size))
    warmup = min(0.25, seconds * 0.2)
    await asyncio.gather(*(p.start(w.window, warmup) for p in pumps))
    meter = CpuMeter(server_pid)
    runs = await asyncio.gather(*(p.start(w.window, seconds) for p in pumps))
    return throughput_result(w, list(runs), meter)
