"""``wsstream URL`` (text and --binary) against real servers on loopback, run as a subprocess."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from pathlib import Path

import pytest

import wsstream
from tests.cli.cli_support import TIMEOUT, cli, exchange, finish, free_port, read_line, run_cli

pytestmark = pytest.mark.timeout(30)

MiB = 2**20


async def test_text_round_trip_line_by_line(echo_uri: str) -> None:
    async with cli("--no-proxy", echo_uri) as proc:
        assert proc.stdin is not None
        for line in ("hello", "wörld ✓", "", "last"):
            proc.stdin.write(line.encode() + b"\n")
            await proc.stdin.drain()
            assert await read_line(proc) == line.encode() + b"\n"
        proc.stdin.close()
        status, err = await finish(proc)
    assert (status, err) == (0, b"")


async def test_stdin_lines_become_text_messages_then_close_1000() -> None:
    received: list[str | bytes] = []
    codes: list[int | None] = []

    async def collect(ws: wsstream.WebSocket) -> None:
        async for message in ws:
            received.append(message)
        codes.append(ws.close_code)

    async with wsstream.serve(collect, "127.0.0.1", 0) as server:
        status, out, err = await run_cli("--no-proxy", f"ws://127.0.0.1:{server.port}/", input=b"a\r\nb\n\nc")
        for _ in range(100):  # the handler may still be finishing when the client has exited
            if codes:
                break
            await asyncio.sleep(0.05)
    assert (status, out, err) == (0, b"", b"")
    assert received == ["a", "b", "", "c"]  # str: text messages; CRLF and a missing final newline handled
    assert codes == [1000]


async def test_text_mode_prints_each_message_as_a_line() -> None:
    async def greet(ws: wsstream.WebSocket) -> None:
        await ws.send("one")
        await ws.send(b"two")  # binary messages are written as they are, then a newline
        await ws.send("three\nlines")
        await ws.close(1000)

    async with wsstream.serve(greet, "127.0.0.1", 0) as server, \
            cli("--no-proxy", f"ws://127.0.0.1:{server.port}/") as proc:
        assert proc.stdout is not None
        out = await asyncio.wait_for(proc.stdout.read(), TIMEOUT)
        status, err = await finish(proc)
    assert out == b"one\ntwo\nthree\nlines\n"
    assert (status, err) == (0, b"")


async def test_binary_32_mib_through_echo_server_sha256(echo_uri: str, tmp_path: Path) -> None:
    payload = os.urandom(32 * MiB)
    source = tmp_path / "random.bin"
    source.write_bytes(payload)
    with source.open("rb") as stdin:  # a regular file: not pollable, read by the CLI's reader thread
        async with cli("--no-proxy", "--binary", "--no-close", echo_uri, stdin=stdin.fileno()) as proc:
            assert proc.stdout is not None
            echoed = await asyncio.wait_for(proc.stdout.readexactly(len(payload)), 20)
            status, err = await finish(proc, stop=True)  # SIGTERM: close 1000 and exit 0
    assert hashlib.sha256(echoed).hexdigest() == hashlib.sha256(payload).hexdigest()
    assert (status, err) == (0, b"")


async def test_binary_stdin_eof_sends_everything_then_closes_1000() -> None:
    digest = hashlib.sha256()
    outcome: list[tuple[int | None, int]] = []

    async def sink(ws: wsstream.WebSocket) -> None:
        total = 0
        async for message in ws:
            assert isinstance(message, bytes)  # --binary sends binary messages
            digest.update(message)
            total += len(message)
        outcome.append((ws.close_code, total))

    payload = os.urandom(8 * MiB)
    async with wsstream.serve(sink, "127.0.0.1", 0, max_size=None) as server:
        status, out, err = await run_cli("--no-proxy", "--binary", f"ws://127.0.0.1:{server.port}/",
                                         input=payload, timeout=20)
        for _ in range(100):
            if outcome:
                break
            await asyncio.sleep(0.05)
    assert (status, out, err) == (0, b"", b"")
    assert outcome == [(1000, len(payload))]
    assert digest.hexdigest() == hashlib.sha256(payload).hexdigest()


async def test_refused_connection_exits_1_with_one_line() -> None:
    port = free_port()
    status, out, err = await run_cli("--no-proxy", f"ws://127.0.0.1:{port}/")
    assert status == 1
    assert out == b""
    assert err == f"wsstream: connection refused: 127.0.0.1:{port}\n".encode()


async def test_abnormal_close_exits_1_with_code_and_reason() -> None:
    async def fail(ws: wsstream.WebSocket) -> None:
        await ws.send("partial")
        await ws.close(1011, "boom")

    async with wsstream.serve(fail, "127.0.0.1", 0) as server, \
            cli("--no-proxy", f"ws://127.0.0.1:{server.port}/") as proc:
        assert await read_line(proc) == b"partial\n"
        status, err = await finish(proc)
    assert status == 1
    assert err == b"wsstream: closed 1011 boom\n"


async def test_refused_handshake_exits_1() -> None:
    def refuse(ws: wsstream.WebSocket, request: wsstream.Request) -> wsstream.Response:
        return wsstream.Response(403, body=b"no\n")

    async with wsstream.serve(wsstream_echo, "127.0.0.1", 0, process_request=refuse) as server:
        status, _, err = await run_cli("--no-proxy", f"ws://127.0.0.1:{server.port}/")
    assert status == 1
    assert err.count(b"\n") == 1 and b"HTTP 403" in err


async def wsstream_echo(ws: wsstream.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def test_headers_subprotocol_and_origin_reach_the_server() -> None:
    seen: list[wsstream.Request] = []

    def record(ws: wsstream.WebSocket, request: wsstream.Request) -> None:
        seen.append(request)

    async def report(ws: wsstream.WebSocket) -> None:
        await ws.send(f"subprotocol={ws.subprotocol}")
        await ws.close(1000)

    async with wsstream.serve(report, "127.0.0.1", 0, process_request=record, subprotocols=["chat.v2"]) as server:
        status, out, err = await run_cli(
            "--no-proxy", "-H", "X-Token: secret 42", "--header=X-Other:two", "--subprotocol", "chat.v1",
            "--subprotocol", "chat.v2", "--origin", "https://example.test", f"ws://127.0.0.1:{server.port}/q?a=1",
        )
    assert (status, out, err) == (0, b"subprotocol=chat.v2\n", b"")
    request = seen[0]
    assert request.path == "/q?a=1"
    assert request.headers.get("X-Token") == "secret 42"
    assert request.headers.get("X-Other") == "two"
    assert request.headers.get("Origin") == "https://example.test"


async def test_oneshot_client_exits_after_the_first_message() -> None:
    async def chatty(ws: wsstream.WebSocket) -> None:
        await ws.send("first")
        await ws.send("second")
        async for _ in ws:
            pass

    async with wsstream.serve(chatty, "127.0.0.1", 0) as server, \
            cli("--no-proxy", "--oneshot", f"ws://127.0.0.1:{server.port}/") as proc:
        # stdin stays open: only the first message ends the run
        assert proc.stdout is not None
        out = await asyncio.wait_for(proc.stdout.read(), TIMEOUT)
        status, err = await finish(proc)
    assert (status, out, err) == (0, b"first\n", b"")


async def test_sigterm_closes_normally(echo_uri: str) -> None:
    async with cli("--no-proxy", echo_uri) as proc:
        assert proc.stdin is not None
        proc.stdin.write(b"ping\n")
        assert await read_line(proc) == b"ping\n"
        status, err = await finish(proc, stop=True)
    assert (status, err) == (0, b"")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-l", "0", "ws://127.0.0.1:1/"],
        ["--exec", "cat", "ws://127.0.0.1:1/"],
        ["-l", "0", "--forward", "nohost"],
        ["-l", "0", "--exec", "no-such-command-for-wsstream"],
        ["-H", "no colon", "ws://127.0.0.1:1/"],
        ["--max-size", "lots", "ws://127.0.0.1:1/"],
    ],
)
async def test_usage_errors_exit_2(args: list[str]) -> None:
    status, out, err = await run_cli(*args)
    assert status == 2
    assert out == b""
    assert err.startswith(b"wsstream: ") or b"usage:" in err


async def test_stdin_from_a_tty(echo_uri: str) -> None:
    """A terminal is read by a thread (a tty must not be made non-blocking); Ctrl-D is EOF."""
    master, slave = os.openpty()
    try:
        async with cli("--no-proxy", echo_uri, stdin=slave) as proc:
            os.write(master, "typed ✓\n".encode())
            assert await read_line(proc) == "typed ✓\n".encode()
            os.write(master, b"\x04")  # VEOF on an empty line: read() returns 0
            status, err = await finish(proc)
    finally:
        os.close(master)
        os.close(slave)
    assert (status, err) == (0, b"")


async def test_stdin_from_dev_null_closes_at_once() -> None:
    codes: list[int | None] = []

    async def wait_for_close(ws: wsstream.WebSocket) -> None:
        async for _ in ws:
            pass
        codes.append(ws.close_code)

    async with wsstream.serve(wait_for_close, "127.0.0.1", 0) as server:
        with open(os.devnull, "rb") as devnull:
            async with cli("--no-proxy", f"ws://127.0.0.1:{server.port}/", stdin=devnull.fileno()) as proc:
                status, err = await finish(proc)
        for _ in range(100):
            if codes:
                break
            await asyncio.sleep(0.05)
    assert (status, err) == (0, b"")
    assert codes == [1000]


async def test_sigint_while_connecting_exits_130() -> None:
    accepted = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept TCP but never answer the upgrade request
        accepted.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    async with server, cli("--no-proxy", f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/") as proc:
        await asyncio.wait_for(accepted.wait(), TIMEOUT)  # the client is inside connect() now
        proc.send_signal(signal.SIGINT)
        status, err = await finish(proc)
        for writer in held:
            writer.close()
    assert (status, err) == (130, b"")


async def test_oneshot_waits_for_the_reply_after_stdin_eof(echo_uri: str) -> None:
    # Request/response from a pipe: stdin is at EOF at once, but --oneshot closes only after the first reply.
    for _ in range(3):
        status, out, err = await run_cli("--no-proxy", "--oneshot", echo_uri, input=b'{"op": "ping"}\n')
        assert (status, out, err) == (0, b'{"op": "ping"}\n', b"")


async def test_linger_keeps_the_connection_for_late_replies() -> None:
    async def slow_echo(ws: wsstream.WebSocket) -> None:
        async for message in ws:
            assert isinstance(message, str)
            await asyncio.sleep(0.2)  # the reply comes after stdin EOF has been seen
            await ws.send(f"re: {message}")

    async with wsstream.serve(slow_echo, "127.0.0.1", 0) as server:
        status, out, err = await run_cli("--no-proxy", "--linger", "1.5", f"ws://127.0.0.1:{server.port}/",
                                         input=b"question\n")
    assert (status, out, err) == (0, b"re: question\n", b"")


@pytest.mark.parametrize(("code", "status", "message"), [(1000, 0, b""), (1011, 1, b"wsstream: closed 1011 bad\n")])
async def test_binary_server_close_ends_the_run(code: int, status: int, message: bytes) -> None:
    async def send_and_close(ws: wsstream.WebSocket) -> None:
        await ws.send(b"\x00\xffdata")
        await ws.send("text arrives as its UTF-8 bytes ✓")
        await ws.close(code, "bad" if code != 1000 else "")

    async with wsstream.serve(send_and_close, "127.0.0.1", 0) as server, \
            cli("--no-proxy", "--binary", f"ws://127.0.0.1:{server.port}/") as proc:
        assert proc.stdout is not None  # stdin stays open: the server's Close alone ends the run
        out = await asyncio.wait_for(proc.stdout.read(), TIMEOUT)
        result = await finish(proc)
    if code == 1000:
        assert out == b"\x00\xffdata" + "text arrives as its UTF-8 bytes ✓".encode()
    # After an abnormal close, asyncio's StreamReader raises at once and drops what it still buffers, so
    # only the exit status and reason are certain then.
    assert result == (status, message)


async def test_unix_socket_url(tmp_path: Path) -> None:
    path = tmp_path / "ws.sock"
    async with wsstream.serve(wsstream_echo, unix_socket=path):
        status, replies, err = await exchange(f"ws+unix://{path}:/chat", lines=[b"over a unix socket"])
    assert (status, replies, err) == (0, [b"over a unix socket\n"], b"")


async def test_binary_over_a_socketpair_as_stdin_and_stdout(echo_uri: str) -> None:
    """ProxyCommand style: ssh hands the command one end of a socket pair as both stdin and stdout."""
    import socket

    ours, theirs = socket.socketpair()
    try:
        async with cli("--no-proxy", "--binary", "-q", echo_uri, stdin=theirs.fileno(),
                       stdout=theirs.fileno()) as proc:
            theirs.close()
            reader, writer = await asyncio.open_connection(sock=ours)
            payload = os.urandom(1 << 20)
            writer.write(payload)
            assert await asyncio.wait_for(reader.readexactly(len(payload)), TIMEOUT) == payload
            writer.write_eof()  # stdin EOF for the CLI: Close 1000, then the exit
            status, err = await finish(proc)
            writer.close()
    finally:
        theirs.close()
    assert (status, err) == (0, b"")
