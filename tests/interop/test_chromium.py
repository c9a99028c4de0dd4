"""Headless Chromium as a real client of a wsstream server with permessage-deflate on.

The test's own server answers ``/`` with ``chromium_page.html`` and ``/ws`` with a wsstream handler; Chromium
loads the page, which connects to ``/ws`` and reports everything back over the websocket (see
/work/shared/notes/chromium.md for why not ``--dump-dom``). Chromium reaches the server through a counting TCP
relay, so the test sees the real wire bytes of every message in both directions: a large compressible message
taking a small fraction of its size on the wire proves it was compressed, and random data taking at least its
own size is the control that shows the counting works.

Checked per server configuration: the extension agreed on both sides (the server's ``ws.extensions`` and
the page's ``WebSocket.extensions``), compression server -> client and client -> server, and echo round trips
of text and binary (small, empty, 1 MiB compressible, random) intact, judged byte for byte by the page and by
SHA-256 on the server.

Plain HTTP for ``/`` goes through ``asyncio.start_server`` and ``Server.handle()``, because ``process_request``
only runs for valid upgrade requests on a routed path (a plain GET is refused with 426 before it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import wsstream
from tests.support import skip_or_fail
from wsstream.core.http11 import HeadParser
from wsstream.exceptions import HandshakeError

pytestmark = pytest.mark.timeout(240)  # above the bounded waits below, so they report first

PAGE = (Path(__file__).parent / "chromium_page.html").read_bytes()
MIB = 2**20
#: Chromium's start on a loaded 2-core machine takes a few seconds; this bounds it, and each later step.
START_TIMEOUT = 30.0
STEP_TIMEOUT = 60.0
#: A compressed message must take less than this fraction of its size on the wire (the texts reach ~0.1).
COMPRESSED_FRACTION = 1 / 3


def chromium_path() -> str | None:
    """The Chromium binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def compressible_text(size: int) -> str:
    """JSON-like lines with a counter, size characters (all ASCII, so also size bytes)."""
    lines = (f'{{"seq": {i}, "source": "server", "status": "ok"}}\n' for i in range(size))
    chunks: list[str] = []
    length = 0
    for line in lines:  # bounded: every line adds at least one character
        chunks.append(line)
        length += len(line)
        if length >= size:
            break
    return "".join(chunks)[:size]


def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


# --- a counting TCP relay between Chromium and the server


@dataclass
class Pipe:
    """One relayed connection: bytes seen in each direction so far."""

    upstream_sockname: tuple[Any, ...] = ()
    up: int = 0  # Chromium -> server
    down: int = 0  # server -> Chromium


@dataclass
class Relay:
    target_port: int
    pipes: list[Pipe] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    def pipe_for(self, ws: wsstream.WebSocket) -> Pipe:
        """The pipe whose upstream end is this server-side connection's peer."""
        for pipe in self.pipes:
            if tuple(pipe.upstream_sockname[:2]) == tuple(ws.remote_address[:2]):
                return pipe
        raise AssertionError(f"no relayed connection from {ws.remote_address}")

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pipe = Pipe()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        pipe.upstream_sockname = up_writer.get_extra_info("sockname")
        self.pipes.append(pipe)
        self.writers += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, attr: str) -> None:
            try:
                while data := await src.read(65536):  # ends at EOF
                    setattr(pipe, attr, getattr(pipe, attr) + len(data))  # counted before it is forwarded
                    dst.write(data)
                    await dst.drain()
                if dst.can_write_eof():
                    dst.write_eof()
            except (ConnectionError, OSError):
                dst.close()

        await asyncio.gather(pump(reader, up_writer, "up"), pump(up_reader, writer, "down"))
        writer.close()
        up_writer.close()


# --- what the page reports, recorded by the server


@dataclass
class Session:
    server_extensions: list[str] = field(default_factory=list)
    hello: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, Any] = field(default_factory=dict)
    echoes: list[dict[str, Any]] = field(default_factory=list)
    page_results: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    connected: asyncio.Event = field(default_factory=asyncio.Event)


def make_handler(session: Session, relay: Relay) -> wsstream.server.Handler:
    async def recv_json(ws: wsstream.WebSocket) -> dict[str, Any]:
        message = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
        assert isinstance(message, str), f"expected a JSON text message, got {type(message).__name__}"
        obj: dict[str, Any] = json.loads(message)
        if obj.get("op") == "error":
            raise AssertionError(f"the page failed: {obj.get('message')}")
        return obj

    async def handler(ws: wsstream.WebSocket) -> None:
        session.server_extensions = list(ws.extensions)
        session.connected.set()
        pipe = relay.pipe_for(ws)
        try:
            session.hello = await recv_json(ws)
            # Phase 1, server -> client.
            big = compressible_text(MIB)
            down0 = pipe.down
            await ws.send(big)
            received = await recv_json(ws)  # the page got it all, so the relay has counted it all
            session.phases["server_to_client"] = dict(
                received, wire=pipe.down - down0, expected_sha256=sha256(big), expected_length=len(big)
            )
            # Phase 2, client -> server.
            assert (await recv_json(ws))["op"] == "ready"
            up0 = pipe.up
            await ws.send(json.dumps({"op": "go"}))
            text = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
            wire = pipe.up - up0  # the whole message went through the relay before the server parsed it
            sent = await recv_json(ws)
            session.phases["client_to_server"] = dict(
                sent,
                wire=wire,
                type=type(text).__name__,
                got_sha256=sha256(text),
                got_length=len(text.encode() if isinstance(text, str) else text),
            )
            # Phase 3, echoes until the page says done.
            down0 = 0
            for _ in range(20):  # the page runs six cases
                command = await recv_json(ws)
                if session.echoes:
                    # The page sends its next command after it has received the echo: the count is complete.
                    session.echoes[-1]["down"] = pipe.down - down0
                if command["op"] == "done":
                    session.page_results = command["results"]
                    break
                assert command["op"] == "echo", command
                up0 = pipe.up  # the page waits for go before it sends the data
                await ws.send(json.dumps({"op": "go"}))
                data = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
                up = pipe.up - up0
                down0 = pipe.down
                await ws.send(data)
                session.echoes.append(dict(command, up=up, got_sha256=sha256(data), got_binary=isinstance(data, bytes)))
        except Exception as exc:  # recorded for the test, which fails with it
            session.error = f"{type(exc).__name__}: {exc}"
        finally:
            session.done.set()

    return handler


async def http_or_websocket(
    server: wsstream.Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer ``/`` with the page, ``/ws`` with the WebSocket server, anything else with 404."""
    parser = HeadParser()
    complete = False
    try:
        for _ in range(64):  # a request head is a few hundred bytes; bounded anyway
            chunk = await asyncio.wait_for(reader.read(4096), START_TIMEOUT)
            complete = bool(chunk) and parser.feed(chunk)
            if complete or not chunk:
                break
        request = parser.request() if complete else None
    except (HandshakeError, TimeoutError, ConnectionError):
        request = None
    if request is None:  # a preconnected socket that never sent a request, or garbage
        writer.close()
        return
    reader._buffer[:0] = parser.leftover  # type: ignore[attr-defined]  # the bytes after the head, kept in order
    path = request.path.partition("?")[0]
    if path == "/ws":
        await server.handle(reader, writer, request=request)
        return
    if path == "/":
        response = wsstream.Response(
            200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}, PAGE
        )
    else:
        response = wsstream.Response(404, body=b"Not Found\n")
    writer.write(response.serialize())
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def chromium(url: str) -> AsyncIterator[subprocess.Popen[bytes]]:
    """Headless Chromium loading url, in a fresh profile; killed (its whole process group) and cleaned up after."""
    binary = chromium_path()
    if binary is None:
        skip_or_fail("chromium is not installed (apt-get install -y --no-install-recommends chromium)")
    assert binary is not None
    profile = tempfile.mkdtemp(prefix="wsstream-chromium-")
    args = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic", f"--user-data-dir={profile}", url,
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log:  # its (noisy, harmless dbus) output, kept out of the test's
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the browser and its helpers, nothing else
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            shutil.rmtree(profile, ignore_errors=True)


async def wait_for(event: asyncio.Event, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    """Wait for event, at most timeout seconds; fail at once when Chromium exits first."""
    for _ in range(int(timeout / 0.2) + 1):
        if event.is_set():
            return
        if proc.poll() is not None:
            raise AssertionError(f"chromium exited with {proc.returncode} before {what}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), 0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


async def run_session(compression: Any) -> tuple[Session, str]:
    """Run the page against a server with this compression; return what was recorded and the page's URL."""
    session = Session()
    relay = Relay(target_port=0)  # set once the server listens
    handlers = {"/ws": make_handler(session, relay)}
    ws_server = wsstream.Server(handlers, compression=compression, ping_interval=None, max_size=4 * MIB)
    listener = await asyncio.start_server(lambda r, w: http_or_websocket(ws_server, r, w), "127.0.0.1", 0)
    relay.target_port = listener.sockets[0].getsockname()[1]
    front = await asyncio.start_server(relay.accept, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{front.sockets[0].getsockname()[1]}/"
    try:
        async with chromium(url) as proc:
            await wait_for(session.connected, proc, START_TIMEOUT, "the page's WebSocket connection")
            await wait_for(session.done, proc, 2 * STEP_TIMEOUT, "the page's results")
    finally:
        front.close()
        listener.close()
        await ws_server.close()
        for writer in relay.writers:
            writer.close()
    return session, url


def check_session(session: Session) -> None:
    """The checks common to every configuration: compression both ways, echoes intact."""
    assert session.error is None, session.error
    assert session.hello["op"] == "hello"
    # The page's string is the server's answer as Chromium agreed it.
    assert session.hello["extensions"] == ", ".join(session.server_extensions)

    down = session.phases["server_to_client"]
    assert down["type"] == "string"
    assert (down["sha256"], down["length"]) == (down["expected_sha256"], down["expected_length"])
    assert down["wire"] < down["expected_length"] * COMPRESSED_FRACTION, down

    up = session.phases["client_to_server"]
    assert up["type"] == "str"
    assert (up["got_sha256"], up["got_length"]) == (up["sha256"], up["length"])
    assert up["length"] > MIB  # a 1 Mi-character text with 2- and 3-byte characters
    assert up["wire"] < up["length"] * COMPRESSED_FRACTION, up

    names = [echo["name"] for echo in session.echoes]
    assert names == [result["name"] for result in session.page_results]
    assert len(names) == 6, names
    for echo in session.echoes:
        # Client -> server intact (SHA-256 of what the server got) and of the right type.
        assert (echo["got_sha256"], echo["got_binary"]) == (echo["sha256"], echo["binary"]), echo
        if "compressible" in echo["name"]:
            assert echo["up"] < echo["length"] * COMPRESSED_FRACTION, echo
            assert echo["down"] < echo["length"] * COMPRESSED_FRACTION, echo
        if "random" in echo["name"]:
            # The control: incompressible data cannot shrink, so the counting does see whole messages.
            assert echo["up"] >= echo["length"], echo
            assert echo["down"] >= echo["length"], echo
    for result, echo in zip(session.page_results, session.echoes, strict=True):
        # Server -> client intact, judged byte for byte by the page.
        assert result["ok"] is True, (result, echo)
        assert result["length"] == echo["length"]


async def test_chromium_default_deflate() -> None:
    session, _ = await run_session("deflate")
    assert len(session.server_extensions) == 1
    assert session.server_extensions[0].split(";")[0] == "permessage-deflate"
    check_session(session)


async def test_chromium_server_no_context_takeover_window_10() -> None:
    deflate = wsstream.Deflate(server_no_context_takeover=True, server_max_window_bits=10)
    session, _ = await run_session(deflate)
    params = sorted(p.strip() for p in session.hello["extensions"].split(";"))
    assert params == ["permessage-deflate", "server_max_window_bits=10", "server_no_context_takeover"]
    check_session(session)
