"""serve(): the server's opening handshake, refusals, routing, limits and timeouts, over real sockets."""

from __future__ import annotations

import asyncio
import re

import pytest

import wsstream
from tests.support import echo
from wsstream import InvalidStatus, Request, Response
from wsstream.core.http11 import HeadParser


async def raw_exchange(port: int, data: bytes, read_timeout: float = 5) -> bytes:
    """Send raw bytes, return everything the server answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), read_timeout)
    finally:
        writer.close()


UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


async def test_raw_upgrade_gets_101_with_the_rfc_accept_value() -> None:
    async with wsstream.serve(echo, "127.0.0.1", 0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(UPGRADE + b"\r\n" + b"\x81\x82abcd" + bytes([ord("h") ^ 97, ord("i") ^ 98]))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
        # the frame sent right behind the request (before the 101 arrived) is not lost
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"\x81\x02hi"
        writer.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426),
        (UPGRADE.replace(b"Version: 13", b"Version: 7") + b"\r\n", 426),
        (UPGRADE.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"short") + b"\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"garbage\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", 431),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 431),
    ],
)
async def test_bad_requests_get_an_http_error(request_bytes: bytes, status: int) -> None:
    async with wsstream.serve(echo, "127.0.0.1", 0) as server:
        answer = await raw_exchange(server.port, request_bytes)  # type: ignore[arg-type]
        assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:80]
        if status == 426:
            assert b"Sec-WebSocket-Version: 13, 8" in answer or b"Version: 7" not in request_bytes


async def test_header_limits_are_configurable() -> None:
    async with wsstream.serve(echo, "127.0.0.1", 0, max_header_count=300, max_line_size=20000) as server:
        many = UPGRADE + b"X-A: b\r\n" * 200 + b"X-Long: " + b"v" * 15000 + b"\r\n\r\n"
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(many)
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 101")
        writer.close()


async def test_process_request_can_refuse_sync_and_async() -> None:
    def check_token(ws: wsstream.WebSocket, request: Request) -> Response | None:
        if request.headers.get("Authorization") != "Bearer good":
            return Response(401, {"WWW-Authenticate": "Bearer"}, b"who are you?")
        return None

    async def async_check(ws: wsstream.WebSocket, request: Request) -> Response | None:
        await asyncio.sleep(0)
        return check_token(ws, request)

    for hook in (check_token, async_check):
        async with wsstream.serve(echo, "127.0.0.1", 0, process_request=hook) as server:
            uri = f"ws://127.0.0.1:{server.port}/"
            with pytest.raises(InvalidStatus) as info:
                await wsstream.connect(uri, proxy=None)
            response = info.value.response
            assert (response.status, response.body) == (401, b"who are you?")
            assert response.headers["WWW-Authenticate"] == "Bearer"
            async with wsstream.connect(uri, proxy=None, headers={"Authorization": "Bearer good"}) as ws:
                await ws.send("in")
                assert await ws.recv() == "in"


async def test_path_mapping_routes_and_404s() -> None:
    async def one(ws: wsstream.WebSocket) -> None:
        await ws.send("one")

    async def two(ws: wsstream.WebSocket) -> None:
        await ws.send("two")

    async with wsstream.serve({"/one": one, "/two": two}, "127.0.0.1", 0) as server:
        for path in ("one", "two"):
            async with wsstream.connect(f"ws://127.0.0.1:{server.port}/{path}?q=1", proxy=None) as ws:
                assert await ws.recv() == path
        with pytest.raises(InvalidStatus) as info:
            await wsstream.connect(f"ws://127.0.0.1:{server.port}/three", proxy=None)
        assert info.value.response.status == 404


async def test_origins_allow_list() -> None:
    origins = ["https://good.test", re.compile(r"https://.*\.good\.test"), None]
    async with wsstream.serve(echo, "127.0.0.1", 0, origins=origins) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        for origin in ("https://good.test", "https://a.good.test", None):
            async with wsstream.connect(uri, proxy=None, origin=origin):
                pass
        with pytest.raises(InvalidStatus) as info:
            await wsstream.connect(uri, proxy=None, origin="https://evil.test")
        assert info.value.response.status == 403


async def test_subprotocol_negotiation() -> None:
    async def report(ws: wsstream.WebSocket) -> None:
        await ws.send(str(ws.subprotocol))

    async with wsstream.serve(report, "127.0.0.1", 0, subprotocols=["v2", "v1"]) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        async with wsstream.connect(uri, proxy=None, subprotocols=["v1", "v2"]) as ws:
            assert ws.subprotocol == "v2" and await ws.recv() == "v2"
        async with wsstream.connect(uri, proxy=None, subprotocols=["v3"]) as ws:
            assert ws.subprotocol is None
        async with wsstream.connect(uri, proxy=None) as ws:  # offering none is fine, as in ws
            assert ws.subprotocol is None

    def pick_last(ws: wsstream.WebSocket, offered: object) -> str | None:
        return list(offered)[-1] if offered else None  # type: ignore[call-overload]

    async with wsstream.serve(report, "127.0.0.1", 0, select_subprotocol=pick_last) as server:
        async with wsstream.connect(f"ws://127.0.0.1:{server.port}/", proxy=None, subprotocols=["a", "b"]) as ws:
            assert ws.subprotocol == "b"


async def test_open_timeout_drops_a_silent_client() -> None:
    async with wsstream.serve(echo, "127.0.0.1", 0, open_timeout=0.2) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\n")  # never finishes its request
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_unix_socket(tmp_path: object) -> None:
    path = f"{tmp_path}/ws.sock"
    async with wsstream.serve(echo, unix_socket=path) as server:
        assert server.port is None
        async with wsstream.connect(f"ws+unix://{path}:/chat") as ws:
            await ws.send("over unix")
            assert await ws.recv() == "over unix"
            assert ws.request is not None and ws.request.path == "/chat"


async def test_already_bound_socket() -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    async with wsstream.serve(echo, sock=sock) as server:
        assert server.port == port
        async with wsstream.connect(f"ws://127.0.0.1:{port}", proxy=None) as ws:
            await ws.send(b"s")
            assert await ws.recv() == b"s"


async def test_track_clients_off() -> None:
    async with wsstream.serve(echo, "127.0.0.1", 0, track_clients=False) as server:
        async with wsstream.connect(f"ws://127.0.0.1:{server.port}", proxy=None):
            assert not server.clients


async def test_serve_forever_is_cancellable() -> None:
    server = await wsstream.serve(echo, "127.0.0.1", 0)
    task = asyncio.create_task(server.serve_forever())
    async with wsstream.connect(f"ws://127.0.0.1:{server.port}", proxy=None) as ws:
        await ws.send("x")
        assert await ws.recv() == "x"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not server.sockets or all(s.fileno() == -1 for s in server.sockets)


async def test_handle_takes_over_connections_accepted_elsewhere() -> None:
    ws_server = wsstream.Server(echo)

    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Sniff the request line ourselves, as an HTTP router would, then hand the connection over.
        if (await reader.readline()).startswith(b"GET /ws"):
            head = b"GET /ws HTTP/1.1\r\n" + await reader.readuntil(b"\r\n\r\n")
            parser = HeadParser()
            assert parser.feed(head)
            await ws_server.handle(reader, writer, request=parser.request())
        else:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            writer.close()

    async def untouched(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await ws_server.handle(reader, writer)

    for callback in (plain, untouched):
        server = await asyncio.start_server(callback, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with wsstream.connect(f"ws://127.0.0.1:{port}/ws", proxy=None) as ws:
            await ws.send("taken over")
            assert await ws.recv() == "taken over"
        server.close()
        await server.wait_closed()


async def test_broadcast_reaches_every_open_client_once() -> None:
    async def hold(ws: wsstream.WebSocket) -> None:
        await ws.wait_closed()

    async with wsstream.serve(hold, "127.0.0.1", 0) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        clients = [await wsstream.connect(uri, proxy=None) for _ in range(5)]
        await clients[4].close()
        await asyncio.sleep(0.05)
        assert wsstream.broadcast(server.clients, "news") == 4
        assert wsstream.broadcast(server.clients, b"\x00bin") == 4
        for ws in clients[:4]:
            assert await asyncio.wait_for(ws.recv(), 5) == "news"
            assert await asyncio.wait_for(ws.recv(), 5) == b"\x00bin"
        # client-side connections are masked one by one and still arrive intact
        assert wsstream.broadcast(clients, "up") == 4
        for ws in clients[:4]:
            await ws.close()


async def test_process_request_answers_plain_http_before_the_upgrade_checks() -> None:
    def health(ws: wsstream.WebSocket, request: Request) -> Response | None:
        if request.path == "/healthz":
            return Response(200, {"Content-Type": "text/plain"}, b"ok\n")
        return None

    async with wsstream.serve({"/ws": echo}, "127.0.0.1", 0, process_request=health) as server:
        answer = await raw_exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # type: ignore[arg-type]
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nok\n")
        answer = await raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # type: ignore[arg-type]
        assert answer.startswith(b"HTTP/1.1 426 ")
        async with wsstream.connect(f"ws://127.0.0.1:{server.port}/ws", proxy=None) as ws:
            await ws.send("still a websocket server")
            assert await ws.recv() == "still a websocket server"


async def test_frames_sent_before_the_101_are_bounded_and_kept() -> None:
    from wsstream.core.protocol import Connection

    async def slow_accept(ws: wsstream.WebSocket, request: Request) -> None:
        await asyncio.sleep(0.2)  # the client floods meanwhile: reading must pause, nothing may be lost

    async with wsstream.serve(echo, "127.0.0.1", 0, process_request=slow_accept) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        client = Connection(True)
        frames = b"".join(client.send_binary(bytes([i]) * 4096) for i in range(100))  # ~400 KiB of early data
        writer.write(UPGRADE + b"\r\n" + frames)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101 ")
        echoed: list[object] = []
        while len(echoed) < 100:
            echoed += client.receive_data(await asyncio.wait_for(reader.read(65536), 5))
        assert echoed == [bytes([i]) * 4096 for i in range(100)]
        writer.close()
