"""``wsstream -l [HOST:]PORT``: a WebSocket server whose connections go to stdio, to a command (``--exec``,
websocketd style) or to a TCP port (``--forward``, websockify style).

stdio: every connection's messages go to stdout (text: one line each; binary: raw bytes); stdin is read only
while a client is connected and goes to all of them; stdin EOF closes them with 1000 and ends the server
(unless ``--no-close``). ``--oneshot`` serves a single connection (others get 503) and exits with its outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import cast

from .. import serve
from ..connection import WebSocket
from ..core.http11 import Request, Response
from ..exceptions import ConnectionClosed, ConnectionClosedError
from ..streams import WebSocketTransport
from .errors import describe
from .options import Options
from .pump import CHUNK, Progress, close_discarding, copy, read_line, splice, ws_stream
from .stdio import ByteWriter, Stdio, open_stdio

__all__ = ["run_listen"]

logger = logging.getLogger("wsstream.cli")

#: Seconds a command gets to exit after SIGTERM before SIGKILL.
KILL_GRACE = 2.0
#: Longest line read from a command's stdout before it is sent in pieces.
EXEC_LINE_LIMIT = 2**20
#: Close reasons must fit in a control frame (125 bytes, 2 of them the code).
MAX_REASON = 123


def _peer(ws: WebSocket) -> str:
    address = ws.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        host = f"[{address[0]}]" if ":" in str(address[0]) else str(address[0])
        return f"{host}:{address[1]}"
    return str(address)


class _Listener:
    """The state shared by the connections of one ``-l`` run."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.progress = Progress() if opts.progress else None
        self.accepted = 0
        self.done = asyncio.Event()  # --oneshot: the one connection ended; stdio: stdin EOF
        self.outcome: BaseException | None = None
        self.stdio: Stdio | None = None
        self.clients: dict[WebSocket, ByteWriter | None] = {}
        self.has_clients = asyncio.Event()

    def process_request(self, ws: WebSocket, request: Request) -> Response | None:
        """--oneshot: refuse every connection after the first."""
        if self.opts.oneshot and self.accepted:
            return Response(503, body=b"wsstream --oneshot: already serving a connection\n")
        self.accepted += 1
        return None

    def wrap(self, handler: Callable[[WebSocket], Awaitable[None]]) -> Callable[[WebSocket], Awaitable[None]]:
        """Log the connection in one line each way; an unexpected error closes it with 1011."""

        async def run(ws: WebSocket) -> None:
            peer = _peer(ws)
            path = ws.request.path if ws.request is not None else "/"
            logger.info("connection from %s %s", peer, path)
            try:
                await handler(ws)
            except ConnectionClosed as exc:
                logger.info("connection from %s: %s", peer, describe(exc))
                if isinstance(exc, ConnectionClosedError):
                    self.outcome = exc
            except Exception as exc:
                logger.warning("connection from %s: %s", peer, describe(exc))
                self.outcome = exc
                await close_discarding(ws, 1011, "internal error")
            else:
                logger.info("connection from %s closed %s", peer, ws.close_code)
            finally:
                if self.opts.oneshot:
                    self.done.set()

        return run

    # ---------------------------------------------------------------- stdio

    async def stdio_handler(self, ws: WebSocket) -> None:
        stdio = self.stdio
        assert stdio is not None
        progress = self.progress
        writer: ByteWriter | None = None
        reader = None
        if self.opts.mode == "binary":
            reader, writer = ws_stream(ws, "binary")
        self.clients[ws] = writer
        self.has_clients.set()
        try:
            if reader is not None:
                await copy(reader, stdio.stdout, progress.received if progress else None)
                return
            async for message in ws:
                data = message.encode() if isinstance(message, str) else message
                stdio.stdout.write(data + b"\n")
                await stdio.stdout.drain()
                if progress is not None:
                    progress.received(len(data) + 1)
        finally:
            del self.clients[ws]
            if not self.clients:
                self.has_clients.clear()

    async def pump_stdin(self) -> None:
        """stdin -> every connected client, read only while there is one; EOF ends the run (not --no-close)."""
        stdio = self.stdio
        assert stdio is not None
        binary = self.opts.mode == "binary"
        while True:
            await self.has_clients.wait()
            if binary:
                data: bytes | None = await stdio.stdin.read(CHUNK)
            else:
                data = await read_line(stdio.stdin)
            if not data and (binary or data is None):
                break
            assert data is not None
            await asyncio.gather(*(self._send(ws, w, data) for ws, w in list(self.clients.items())))
            if self.progress is not None:
                self.progress.sent(len(data) * max(1, len(self.clients)))
        logger.info("stdin closed")
        if not self.opts.no_close:
            self.done.set()

    @staticmethod
    async def _send(ws: WebSocket, writer: ByteWriter | None, data: bytes) -> None:
        with contextlib.suppress(ConnectionClosed, ConnectionError):
            if writer is None:
                await ws.send(data.decode("utf-8", "replace"))
            else:
                writer.write(data)
                await writer.drain()

    # ---------------------------------------------------------------- --exec

    async def exec_handler(self, ws: WebSocket) -> None:
        argv = self.opts.exec_argv
        env = dict(os.environ)
        address = ws.remote_address
        if isinstance(address, tuple) and len(address) >= 2:
            env["REMOTE_ADDR"], env["REMOTE_PORT"] = str(address[0]), str(address[1])
        if ws.request is not None:
            env["REQUEST_URI"] = ws.request.path
            env["QUERY_STRING"] = ws.request.path.partition("?")[2]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env, limit=EXEC_LINE_LIMIT
            )
        except OSError as exc:
            logger.warning("cannot run %s: %s", argv[0], describe(exc))
            await close_discarding(ws, 1011, "cannot run the command")
            return
        assert proc.stdin is not None and proc.stdout is not None
        proc_in, proc_out = proc.stdin, proc.stdout
        progress = self.progress
        ws_writer: asyncio.StreamWriter | None = None

        if self.opts.mode == "binary":
            ws_reader, ws_writer = ws_stream(ws, "binary")

            async def to_process() -> None:
                with contextlib.suppress(ConnectionError):
                    await copy(ws_reader, proc_in, progress.received if progress else None)
                proc_in.close()

            async def from_process() -> None:
                assert ws_writer is not None
                await copy(proc_out, ws_writer, progress.sent if progress else None)
        else:

            async def to_process() -> None:
                with contextlib.suppress(ConnectionError):
                    async for message in ws:
                        data = message.encode() if isinstance(message, str) else message
                        proc_in.write(data + b"\n")
                        await proc_in.drain()
                        if progress is not None:
                            progress.received(len(data) + 1)
                proc_in.close()

            async def from_process() -> None:
                while (line := await read_line(proc_out)) is not None:
                    await ws.send(line.decode("utf-8", "replace"))
                    if progress is not None:
                        progress.sent(len(line) + 1)

        inbound = asyncio.ensure_future(to_process())
        outbound = asyncio.ensure_future(from_process())
        exited = asyncio.ensure_future(proc.wait())
        try:
            await asyncio.wait({inbound, outbound}, return_when=asyncio.FIRST_COMPLETED)
            if ws_writer is not None and not outbound.done() and inbound.exception() is None:
                # The client half-closed (write_eof): the command still answers until its output ends (a
                # request, EOF, then the response, as `sha256sum` does), or until the connection goes away.
                lost = asyncio.ensure_future(cast(WebSocketTransport, ws_writer.transport).wait_closed())
                await asyncio.wait({outbound, lost}, return_when=asyncio.FIRST_COMPLETED)
                lost.cancel()
            if outbound.done() and outbound.exception() is None:
                # stdout reached EOF: the command is finishing; its exit status decides the close code.
                await asyncio.wait({inbound, exited}, return_when=asyncio.FIRST_COMPLETED)
                if exited.done():
                    status = exited.result()
                    code, reason = 1000, ""
                    if status != 0:
                        logger.info("%s exited with status %s", argv[0], status)
                        code, reason = 1011, f"{os.path.basename(argv[0])} exited with status {status}"
                        reason = reason.encode()[:MAX_REASON].decode(errors="ignore")
                    if ws_writer is not None:
                        # The transport sends Close after the data already written to it.
                        cast(WebSocketTransport, ws_writer.transport).close(code, reason)
                        await ws.wait_closed()
                    else:
                        await close_discarding(ws, code, reason)
            elif outbound.done():
                outbound.result()  # sending failed: the connection is gone; raise why
        finally:
            await _stop_process(proc)
            for task in (inbound, outbound, exited):
                task.cancel()
            await asyncio.gather(inbound, outbound, exited, return_exceptions=True)
        if not inbound.cancelled() and inbound.exception() is not None:
            raise inbound.exception()  # type: ignore[misc]  # an abnormal close, reported by wrap()

    # ---------------------------------------------------------------- --forward

    async def forward_handler(self, ws: WebSocket) -> None:
        assert self.opts.forward is not None
        host, port = self.opts.forward
        try:
            tcp_reader, tcp_writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        except (OSError, asyncio.TimeoutError) as exc:
            logger.warning("forward to %s:%s: %s", host, port, describe(exc))
            await close_discarding(ws, 1011, "cannot reach the forward target")
            return
        ws_reader, ws_writer = ws_stream(ws, self.opts.mode)
        try:
            await splice(tcp_reader, tcp_writer, ws_reader, ws_writer, self.progress)
        finally:
            tcp_writer.close()
            with contextlib.suppress(OSError):
                await tcp_writer.wait_closed()


def _signal(proc: asyncio.subprocess.Process, signum: int) -> None:
    # Not proc.send_signal(): Popen.send_signal() first polls the child with waitpid(WNOHANG) and can reap it
    # behind asyncio's child watcher, which then logs "Unknown child process" and reports status 255.
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signum)


async def _stop_process(proc: asyncio.subprocess.Process) -> None:
    """Close the command's stdin, then SIGTERM, then SIGKILL after :data:`KILL_GRACE` seconds."""
    if proc.stdin is not None:
        proc.stdin.close()
    if proc.returncode is not None:
        return
    _signal(proc, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), KILL_GRACE)
    except asyncio.TimeoutError:
        _signal(proc, signal.SIGKILL)
        await proc.wait()


async def run_listen(opts: Options, stop: asyncio.Event) -> None:
    """Serve until a signal, stdin EOF (stdio mode) or the end of the ``--oneshot`` connection."""
    assert opts.listen is not None
    host, port = opts.listen
    state = _Listener(opts)
    handlers = {"listen": state.stdio_handler, "exec": state.exec_handler, "forward": state.forward_handler}
    handler = state.wrap(handlers[opts.command])
    stdin_task: asyncio.Future[None] | None = None
    if opts.command == "listen":
        state.stdio = await open_stdio()
        stdin_task = asyncio.ensure_future(state.pump_stdin())
    try:
        server = await serve(handler, host, port, process_request=state.process_request, **opts.serve_kwargs())
    except BaseException:
        if stdin_task is not None:
            stdin_task.cancel()
        if state.stdio is not None:
            await state.stdio.aclose()
        raise
    scheme = "wss" if opts.cert else "ws"
    shown = f"[{host}]" if ":" in host else host
    if opts.verbosity >= 0:
        print(f"wsstream: listening on {scheme}://{shown}:{server.port}/", file=sys.stderr, flush=True)
    if state.progress is not None:
        state.progress.start()
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(state.done.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()
        server.close(1000 if state.done.is_set() else 1001)
        await server.wait_closed()
        if stdin_task is not None:
            stdin_task.cancel()
            await asyncio.gather(stdin_task, return_exceptions=True)
        if state.progress is not None:
            state.progress.stop()
        if state.stdio is not None:
            await state.stdio.aclose()
    if opts.oneshot and state.outcome is not None:
        raise state.outcome
