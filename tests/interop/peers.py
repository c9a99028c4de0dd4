"""Interop peers: Python `websockets` and Node `ws`, each as server or as client, with one shared behaviour.

A peer echoes every data message as received (text as text, binary as binary) and obeys text commands that
start with ``!`` followed by JSON, so one test drives one scenario whichever library and side the peer is:

* ``{"op": "fragments", "parts": [base64, ...], "binary": bool}``: send one message split into these frames;
* ``{"op": "ping", "data": "x"}``: send a Ping; when its Pong arrives, send the text ``!pong x``;
* ``{"op": "close", "code": 4000, "reason": "r"}``: start the closing handshake;
* ``{"op": "info"}``: send ``!info {"protocol": ..., "extensions": ..., "path": ...}``.

What the peer saw (its opening handshake's outcome, the Close frame it received) arrives in `PeerEvents`.
The Node peers are ``node/peer_server.js`` / ``node/peer_client.js`` (same behaviour, in ``node/peer.js``);
they report on stdout (``READY <port>``, ``OPEN {json}``, ``CLOSE {json}``) and exit when their stdin closes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

import wsstream

NODE_DIR = Path(__file__).resolve().parent / "node"
MAX_SIZE = 64 * 2**20
#: Bound on every single wait of the harness (start-up, handshakes, events).
STEP_TIMEOUT = 30.0


def _future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


@dataclass
class PeerEvents:
    """What the peer observed on its (single) connection."""

    opened: asyncio.Future[dict[str, Any]] = field(default_factory=lambda: _future())
    closed: asyncio.Future[tuple[int | None, str]] = field(default_factory=lambda: _future())

    def open(self, info: dict[str, Any]) -> None:
        """Record the agreed subprotocol and extensions (first connection only)."""
        if not self.opened.done():
            self.opened.set_result(info)

    def close(self, code: int | None, reason: str) -> None:
        """Record the Close frame the peer received (None when it got none)."""
        if not self.closed.done():
            self.closed.set_result((code, reason))


@dataclass
class Pair:
    """A wsstream connection and what its peer saw."""

    ws: wsstream.WebSocket
    peer: PeerEvents
    kind: str


def command(op: str, **fields: Any) -> str:
    """The text message that makes the peer do op."""
    return "!" + json.dumps({"op": op, **fields})


def fragments_command(parts: Sequence[bytes], *, binary: bool) -> str:
    """The text message that makes the peer send parts as the frames of one message."""
    return command("fragments", parts=[base64.b64encode(p).decode() for p in parts], binary=binary)


def node_missing() -> str | None:
    """Why the Node peers cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return "node is not installed (run .ci/install-node.sh)"
    for module in ("ws", "bufferutil", "utf-8-validate"):
        if not (NODE_DIR / "node_modules" / module / "package.json").exists():
            return f"tests/interop/node/node_modules/{module} is missing (run .ci/install-node.sh)"
    return None


# --- the websockets peer


async def _websockets_behaviour(conn: ServerConnection | ClientConnection, events: PeerEvents) -> None:
    """Echo and obey commands until the connection ends; record what was seen."""
    assert conn.request is not None and conn.response is not None
    events.open(
        {
            "protocol": conn.subprotocol,
            "extensions": conn.response.headers.get("Sec-WebSocket-Extensions", ""),
            "path": conn.request.path,
        }
    )
    try:
        async for message in conn:
            if isinstance(message, str) and message.startswith("!"):
                await _websockets_command(conn, json.loads(message[1:]), events)
            else:
                await conn.send(message)
    except websockets.ConnectionClosed:
        pass
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.wait_closed(), STEP_TIMEOUT)
        received = conn.protocol.close_rcvd
        events.close(received.code if received else None, received.reason if received else "")


async def _websockets_command(
    conn: ServerConnection | ClientConnection, cmd: dict[str, Any], events: PeerEvents
) -> None:
    """Carry out one ``!{json}`` command on a websockets connection."""
    op = cmd["op"]
    if op == "fragments":
        parts = [base64.b64decode(p) for p in cmd["parts"]]
        # text=True sends the byte chunks as a Text message, so a chunk may end inside a UTF-8 character.
        await conn.send(iter(parts), text=not cmd["binary"])
    elif op == "ping":
        waiter = await conn.ping(cmd["data"].encode())
        await asyncio.wait_for(waiter, STEP_TIMEOUT)
        await conn.send(f"!pong {cmd['data']}")
    elif op == "close":
        await conn.close(cmd["code"], cmd["reason"])
    elif op == "info":
        info = await asyncio.wait_for(asyncio.shield(events.opened), STEP_TIMEOUT)
        await conn.send("!info " + json.dumps(info))
    else:
        await conn.send(f"!error unknown op {op}")


@contextlib.asynccontextmanager
async def websockets_server(
    events: PeerEvents, *, subprotocols: Sequence[str] | None, deflate: bool
) -> AsyncIterator[str]:
    """A websockets peer server on loopback; yields its ws:// base URI."""

    async def handler(conn: ServerConnection) -> None:
        await _websockets_behaviour(conn, events)

    def select(conn: ServerConnection, offered: Sequence[str]) -> websockets.Subprotocol | None:
        # As the Node peer (and ws): the first of ours the client offered, else none rather than websockets'
        # default of refusing a client that offers none.
        chosen = next((s for s in subprotocols or () if s in offered), None)
        return websockets.Subprotocol(chosen) if chosen else None

    async with ws_serve(
        handler,
        "127.0.0.1",
        0,
        max_size=MAX_SIZE,
        compression="deflate" if deflate else None,
        subprotocols=[websockets.Subprotocol(s) for s in subprotocols] if subprotocols else None,
        select_subprotocol=select,
        ping_interval=None,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def websockets_client(
    uri: str, events: PeerEvents, *, subprotocols: Sequence[str] | None, deflate: bool
) -> AsyncIterator[None]:
    """A websockets peer client connected to uri, behaving until the block ends."""
    conn = await ws_connect(
        uri,
        max_size=MAX_SIZE,
        compression="deflate" if deflate else None,
        subprotocols=[websockets.Subprotocol(s) for s in subprotocols] if subprotocols else None,
        ping_interval=None,
        proxy=None,
        open_timeout=STEP_TIMEOUT,
    )
    task = asyncio.create_task(_websockets_behaviour(conn, events))
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), STEP_TIMEOUT)
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


# --- the Node ws peer


class NodeProcess:
    """A running Node peer script: its stdout lines become PeerEvents; stdin closing makes it exit."""

    def __init__(self, proc: asyncio.subprocess.Process, events: PeerEvents) -> None:
        self.proc = proc
        self.events = events
        self.ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, script: str, args: Sequence[str], events: PeerEvents) -> NodeProcess:
        """Start ``node script args...`` in tests/interop/node."""
        node = shutil.which("node")
        assert node is not None
        proc = await asyncio.create_subprocess_exec(
            node,
            script,
            *args,
            cwd=NODE_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(proc, events)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := (await self.proc.stdout.readline()).decode(errors="replace"):
            self.lines.append(line.rstrip("\n"))
            kind, _, rest = line.strip().partition(" ")
            if kind == "READY" and not self.ready.done():
                self.ready.set_result(int(rest))
            elif kind == "OPEN":
                self.events.open(json.loads(rest))
            elif kind == "CLOSE":
                info = json.loads(rest)
                self.events.close(info["code"], info["reason"])
        if not self.ready.done():
            self.ready.set_exception(RuntimeError("node peer exited early:\n" + "\n".join(self.lines)))

    async def stop(self) -> None:
        """End the peer: close its stdin, then terminate, then kill (each step bounded)."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except asyncio.TimeoutError:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(self._reader, 5)


def _node_args(subprotocols: Sequence[str] | None, deflate: bool) -> list[str]:
    args: list[str] = []
    if subprotocols:
        args += ["--subprotocols", ",".join(subprotocols)]
    if deflate:
        args.append("--deflate")
    return args


@contextlib.asynccontextmanager
async def node_server(events: PeerEvents, *, subprotocols: Sequence[str] | None, deflate: bool) -> AsyncIterator[str]:
    """A Node ws peer server on loopback; yields its ws:// base URI."""
    peer = await NodeProcess.start("peer_server.js", ["0", *_node_args(subprotocols, deflate)], events)
    try:
        port = await asyncio.wait_for(asyncio.shield(peer.ready), STEP_TIMEOUT)
        yield f"ws://127.0.0.1:{port}"
    finally:
        await peer.stop()


@contextlib.asynccontextmanager
async def node_client(
    uri: str, events: PeerEvents, *, subprotocols: Sequence[str] | None, deflate: bool
) -> AsyncIterator[None]:
    """A Node ws peer client connected to uri, behaving until the block ends."""
    peer = await NodeProcess.start("peer_client.js", [uri, *_node_args(subprotocols, deflate)], events)
    try:
        yield
    finally:
        await peer.stop()


# --- pairs


@contextlib.asynccontextmanager
async def open_pair(
    kind: str,
    *,
    subprotocols: Sequence[str] | None = None,
    peer_subprotocols: Sequence[str] | None = None,
    deflate: bool = False,
    peer_deflate: bool | None = None,
) -> AsyncIterator[Pair]:
    """Connect wsstream to a peer; kind is ``<library>-<peer side>``: websockets-server, node-client, ...

    ``subprotocols`` are wsstream's (offered as a client, supported as a server), ``peer_subprotocols`` the
    peer's. ``deflate`` turns permessage-deflate on in wsstream (off otherwise, also on its client), and in
    the peer too unless ``peer_deflate`` says otherwise.
    """
    library, side = kind.split("-")
    if peer_deflate is None:
        peer_deflate = deflate
    events = PeerEvents()
    compression: Literal["deflate"] | None = "deflate" if deflate else None
    if side == "server":
        start_server = websockets_server if library == "websockets" else node_server
        async with start_server(events, subprotocols=peer_subprotocols, deflate=peer_deflate) as base:
            ws = await wsstream.connect(
                f"{base}/interop?side=server",
                subprotocols=list(subprotocols) if subprotocols else None,
                compression=compression,
                max_size=MAX_SIZE,
                ping_interval=None,
                proxy=None,
                open_timeout=STEP_TIMEOUT,
            )
            try:
                yield Pair(ws, events, kind)
            finally:
                await _finish(ws)
        return

    accepted: asyncio.Queue[wsstream.WebSocket] = asyncio.Queue()
    done = asyncio.Event()

    async def handler(ws: wsstream.WebSocket) -> None:
        await accepted.put(ws)
        # The test drives the connection; returning would end it.
        await done.wait()

    start_client = websockets_client if library == "websockets" else node_client
    async with wsstream.serve(
        handler,
        "127.0.0.1",
        0,
        subprotocols=list(subprotocols) if subprotocols else None,
        compression=compression,
        max_size=MAX_SIZE,
        ping_interval=None,
    ) as server:
        uri = f"ws://127.0.0.1:{server.port}/interop?side=client"
        async with start_client(uri, events, subprotocols=peer_subprotocols, deflate=peer_deflate):
            ws = await asyncio.wait_for(accepted.get(), STEP_TIMEOUT)
            try:
                yield Pair(ws, events, kind)
            finally:
                done.set()
                await _finish(ws)


async def _finish(ws: wsstream.WebSocket) -> None:
    """Close ws if the test left it open; abort when the close handshake does not finish."""
    try:
        await asyncio.wait_for(ws.close(), 10)
    except Exception:
        ws.abort()
