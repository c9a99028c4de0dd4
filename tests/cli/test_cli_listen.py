"""``wsstream -l`` (stdio and --exec), run as a subprocess, with wsstream clients (library and CLI)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil

import pytest

import wsstream
from tests.cli.cli_support import TIMEOUT, cli, finish, listening_port, read_line, run_cli

pytestmark = pytest.mark.timeout(30)


async def test_listen_stdio_with_a_cli_client() -> None:
    async with cli("-l", "127.0.0.1:0", "--oneshot") as server:
        port = await listening_port(server)
        async with cli("--no-proxy", f"ws://127.0.0.1:{port}/") as client:
            assert client.stdin is not None and server.stdin is not None
            client.stdin.write(b"from the client\n")
            assert await read_line(server) == b"from the client\n"
            server.stdin.write(b"from the server\n")
            assert await read_line(client) == b"from the server\n"
            client.stdin.close()  # stdin EOF: the client closes with 1000, and --oneshot ends the server
            client_status, client_err = await finish(client)
        server_status, server_err = await finish(server)
    assert (client_status, client_err) == (0, b"")
    assert (server_status, server_err) == (0, b"")


async def test_listen_stdin_eof_closes_clients_with_1000() -> None:
    async with cli("-l", "127.0.0.1:0") as server:
        port = await listening_port(server)
        async with wsstream.connect(f"ws://127.0.0.1:{port}/", proxy=None) as ws:
            assert server.stdin is not None
            server.stdin.write(b"bye\n")
            server.stdin.close()
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "bye"
            with pytest.raises(wsstream.ConnectionClosedOK):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert ws.close_code == 1000
        status, err = await finish(server)
    assert (status, err) == (0, b"")


async def test_listen_binary_writes_raw_bytes_to_stdout() -> None:
    async with cli("-l", "127.0.0.1:0", "--binary", "--oneshot") as server:
        port = await listening_port(server)
        async with wsstream.connect(f"ws://127.0.0.1:{port}/", proxy=None) as ws:
            await ws.send(b"\x00\x01no newline")
            await ws.send(b"\xff")
        assert server.stdout is not None
        out = await asyncio.wait_for(server.stdout.read(), TIMEOUT)
        status, err = await finish(server)
    assert out == b"\x00\x01no newline\xff"
    assert (status, err) == (0, b"")


async def test_oneshot_refuses_a_second_connection() -> None:
    async with cli("-l", "127.0.0.1:0", "--oneshot", "--exec", "cat") as server:
        port = await listening_port(server)
        async with wsstream.connect(f"ws://127.0.0.1:{port}/", proxy=None) as first:
            with pytest.raises(wsstream.InvalidStatus) as refused:
                await wsstream.connect(f"ws://127.0.0.1:{port}/", proxy=None)
            assert refused.value.response.status == 503
            await first.send("still served")
            assert await asyncio.wait_for(first.recv(), TIMEOUT) == "still served"
        status, err = await finish(server)
    assert (status, err) == (0, b"")


async def test_exec_cat_with_a_cli_client() -> None:
    async with cli("-l", "127.0.0.1:0", "--exec", "cat") as server:
        port = await listening_port(server)
        for attempt in range(2):  # one process per connection: the server outlives the first
            async with cli("--no-proxy", f"ws://127.0.0.1:{port}/") as client:
                assert client.stdin is not None
                for line in (f"line one of {attempt}", "line two ✓"):
                    client.stdin.write(line.encode() + b"\n")
                    assert await read_line(client) == line.encode() + b"\n"
                client.stdin.close()
                assert await finish(client) == (0, b"")
        status, err = await finish(server, stop=True)
    assert (status, err) == (0, b"")


async def test_exec_binary_sha256sum_then_close_1000() -> None:
    payload = os.urandom(1 << 20)
    command = f"sh -c 'head -c {len(payload)} | sha256sum'"
    async with cli("-l", "127.0.0.1:0", "--binary", "--exec", command) as server:
        port = await listening_port(server)
        async with wsstream.connect(f"ws://127.0.0.1:{port}/", proxy=None) as ws:
            for offset in range(0, len(payload), 100_000):
                await ws.send(payload[offset:offset + 100_000])
            output = b""
            with pytest.raises(wsstream.ConnectionClosedOK):
                while True:  # the command's stdout, then Close 1000 once it exited 0
                    message = await asyncio.wait_for(ws.recv(), TIMEOUT)
                    assert isinstance(message, bytes)
                    output += message
            assert ws.close_code == 1000
        await finish(server, stop=True)
    assert output == f"{hashlib.sha256(payload).hexdigest()}  -\n".encode()


async def test_exec_failing_command_closes_1011_with_its_status() -> None:
    async with cli("-l", "127.0.0.1:0", "--exec", "sh", "-c", "echo partial; exit 3") as server:
        port = await listening_port(server)
        async with wsstream.connect(f"ws://127.0.0.1:{port}/", proxy=None) as ws:
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "partial"
            with pytest.raises(wsstream.ConnectionClosedError) as closed:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
        await finish(server, stop=True)
    assert closed.value.code == 1011
    assert closed.value.reason == "sh exited with status 3"


async def test_exec_command_is_killed_when_the_websocket_closes(tmp_path: os.PathLike[str]) -> None:
    marker = os.path.join(tmp_path, "pid")
    script = f"echo $$ > {marker}; echo ready; exec sleep 60"
    async with cli("-l", "127.0.0.1:0", "--exec", "sh", "-c", script) as server:
        port = await listening_port(server)
        async with wsstream.connect(f"ws://127.0.0.1:{port}/", proxy=None) as ws:
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "ready"
        with open(marker) as f:
            pid = int(f.read())
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            await asyncio.sleep(0.05)
        else:
            os.kill(pid, 9)
            pytest.fail("the command outlived its connection")
        await finish(server, stop=True)


async def test_exec_sees_the_request_in_its_environment() -> None:
    script = 'echo "$REQUEST_URI $QUERY_STRING $REMOTE_ADDR"'
    async with cli("-l", "127.0.0.1:0", "--exec", "sh", "-c", script) as server:
        port = await listening_port(server)
        async with wsstream.connect(f"ws://127.0.0.1:{port}/run?x=1", proxy=None) as ws:
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "/run?x=1 x=1 127.0.0.1"
        await finish(server, stop=True)


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
async def test_exec_text_mode_lines_become_messages() -> None:
    async with cli("-l", "127.0.0.1:0", "--exec", "sh", "-c", "while read l; do echo \"<$l>\"; done") as server:
        port = await listening_port(server)
        async with wsstream.connect(f"ws://127.0.0.1:{port}/", proxy=None) as ws:
            await ws.send("a")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "<a>"
            await ws.send("b c")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "<b c>"
        status, err = await finish(server, stop=True)
    assert (status, err) == (0, b"")


async def test_listen_stdin_goes_to_every_client_and_both_reach_stdout() -> None:
    async with cli("-l", "127.0.0.1:0") as server:
        port = await listening_port(server)
        url = f"ws://127.0.0.1:{port}/"
        async with wsstream.connect(url, proxy=None) as one, wsstream.connect(url, proxy=None) as two:
            await one.send("from one")
            assert await read_line(server) == b"from one\n"
            await two.send("from two")  # both connections are open and registered by now
            assert await read_line(server) == b"from two\n"
            assert server.stdin is not None
            server.stdin.write(b"to all\n")
            assert await asyncio.wait_for(one.recv(), TIMEOUT) == "to all"
            assert await asyncio.wait_for(two.recv(), TIMEOUT) == "to all"
        status, err = await finish(server, stop=True)
    assert (status, err) == (0, b"")


async def test_binary_client_half_closes_and_reads_the_commands_answer() -> None:
    # stdin EOF half-closes the websocket; the command sees EOF, answers, and its answer still arrives.
    payload = os.urandom(1 << 20)
    async with cli("-l", "127.0.0.1:0", "--binary", "--exec", "sha256sum") as server:
        port = await listening_port(server)
        status, out, err = await run_cli("--binary", "--no-proxy", f"ws://127.0.0.1:{port}/", input=payload)
        await finish(server, stop=True)
    assert (status, err) == (0, b"")
    assert out == f"{hashlib.sha256(payload).hexdigest()}  -\n".encode()
