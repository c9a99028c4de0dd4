"""connect(): URIs, TLS, redirects, timeouts and refusals, over real sockets."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import pytest
import trustme

import wsstream
from tests.support import echo
from wsstream import HandshakeError, InvalidStatus, InvalidURI, Request, Response


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_server(ca: trustme.CA) -> AsyncIterator[wsstream.WebSocketServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    async with wsstream.serve(echo, "127.0.0.1", 0, ssl=context) as server:
        yield server


async def test_wss_with_custom_ca(ca: trustme.CA, tls_server: wsstream.WebSocketServer) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with wsstream.connect(f"wss://127.0.0.1:{tls_server.port}/", ssl=context, proxy=None) as ws:
        await ws.send("secret")
        assert await ws.recv() == "secret"
        assert ws.transport is not None and ws.transport.get_extra_info("ssl_object") is not None


async def test_wss_verifies_by_default(tls_server: wsstream.WebSocketServer) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await wsstream.connect(f"wss://127.0.0.1:{tls_server.port}/", proxy=None)


async def test_server_hostname_overrides_sni(ca: trustme.CA, tls_server: wsstream.WebSocketServer) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with wsstream.connect(
        f"wss://127.0.0.1:{tls_server.port}/", ssl=context, server_hostname="localhost", proxy=None
    ) as ws:
        await ws.send("sni")
        assert await ws.recv() == "sni"
    with pytest.raises(ssl.SSLCertVerificationError):
        await wsstream.connect(
            f"wss://127.0.0.1:{tls_server.port}/", ssl=context, server_hostname="other.test", proxy=None
        )


async def test_client_certificates(ca: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca.configure_trust(server_context)
    server_context.verify_mode = ssl.CERT_REQUIRED

    async def who(ws: wsstream.WebSocket) -> None:
        assert ws.transport is not None
        cert = ws.transport.get_extra_info("peercert")
        await ws.send(dict(x[0] for x in cert["subject"]).get("commonName", "?"))

    async with wsstream.serve(who, "127.0.0.1", 0, ssl=server_context) as server:
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        ca.issue_cert("client@example.test", common_name="client-one").configure_cert(client_context)
        async with wsstream.connect(f"wss://127.0.0.1:{server.port}/", ssl=client_context, proxy=None) as ws:
            assert await ws.recv() == "client-one"


@pytest.mark.parametrize("uri", ["ftp://x/", "ws://x/#f", "ws://:80/"])
async def test_invalid_uri(uri: str) -> None:
    with pytest.raises(InvalidURI):
        await wsstream.connect(uri)


async def test_http_scheme_and_request_headers() -> None:
    async def headers(ws: wsstream.WebSocket) -> None:
        assert ws.request is not None
        h = ws.request.headers
        await ws.send(f"{h.get('User-Agent')}|{h.get('X-One')}|{h.get('Authorization')}|{h.get('Origin')}")

    async with wsstream.serve(headers, "127.0.0.1", 0) as server:
        uri = f"http://u:p@127.0.0.1:{server.port}/"
        async with wsstream.connect(uri, proxy=None, headers=[("X-One", "1")], origin="http://o.test") as ws:
            assert await ws.recv() == f"wsstream/{wsstream.__version__}|1|Basic dTpw|http://o.test"


async def test_open_timeout_on_a_silent_server() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with pytest.raises(TimeoutError):
        await wsstream.connect(f"ws://127.0.0.1:{port}/", proxy=None, open_timeout=0.2)
    server.close()


async def test_connection_refused() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(OSError):
        await wsstream.connect(f"ws://127.0.0.1:{port}/", proxy=None)


async def test_non_websocket_server_is_invalid_status() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        await writer.drain()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with pytest.raises(InvalidStatus) as info:
        await wsstream.connect(f"ws://127.0.0.1:{port}/", proxy=None)
    assert (info.value.response.status, info.value.response.body) == (200, b"hello")
    server.close()


async def test_garbage_response_is_a_handshake_error() -> None:
    async def junk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")

    server = await asyncio.start_server(junk, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with pytest.raises(HandshakeError):
        await wsstream.connect(f"ws://127.0.0.1:{port}/", proxy=None)
    server.close()


async def redirecting_server(location: str) -> asyncio.AbstractServer:
    async def redirect(ws: wsstream.WebSocket, request: Request) -> Response:
        return Response(302, {"Location": location})

    return (await wsstream.serve(echo, "127.0.0.1", 0, process_request=redirect)).listener


async def test_redirects_followed_only_when_asked(echo_server: wsstream.WebSocketServer) -> None:
    target = f"ws://127.0.0.1:{echo_server.port}/target"
    async with wsstream.serve(
        echo, "127.0.0.1", 0, process_request=lambda ws, r: Response(302, {"Location": target})
    ) as redirector:
        uri = f"ws://127.0.0.1:{redirector.port}/start"
        with pytest.raises(InvalidStatus) as info:
            await wsstream.connect(uri, proxy=None)
        assert info.value.response.status == 302
        async with wsstream.connect(uri, proxy=None, follow_redirects=True) as ws:
            assert ws.request is not None and ws.request.path == "/target"
            await ws.send("moved")
            assert await ws.recv() == "moved"


async def test_redirect_loop_is_bounded() -> None:
    async with wsstream.serve(
        echo, "127.0.0.1", 0, process_request=lambda ws, r: Response(307, {"Location": "/again"})
    ) as loop_server:
        with pytest.raises(HandshakeError, match="redirects"):
            await wsstream.connect(
                f"ws://127.0.0.1:{loop_server.port}/", proxy=None, follow_redirects=True, max_redirects=3
            )


async def test_cross_origin_redirect_strips_credentials() -> None:
    seen: list[str | None] = []

    async def record(ws: wsstream.WebSocket, request: Request) -> None:
        seen.append(request.headers.get("Authorization"))

    async with wsstream.serve(echo, "127.0.0.1", 0, process_request=record) as target:
        # "localhost" vs "127.0.0.1": another origin for the browser-style origin comparison
        location = f"ws://localhost:{target.port}/"
        async with wsstream.serve(
            echo, "127.0.0.1", 0, process_request=lambda ws, r: Response(302, {"Location": location})
        ) as redirector:
            uri = f"ws://user:pw@127.0.0.1:{redirector.port}/"
            async with wsstream.connect(
                uri, proxy=None, follow_redirects=True, headers={"Authorization": "Bearer t"}
            ):
                pass
    assert seen == [None]


async def test_same_origin_redirect_keeps_credentials() -> None:
    seen: list[str | None] = []

    def route(ws: wsstream.WebSocket, request: Request) -> Response | None:
        seen.append(request.headers.get("Authorization"))
        return Response(302, {"Location": "/final"}) if request.path == "/start" else None

    async with wsstream.serve(echo, "127.0.0.1", 0, process_request=route) as server:
        async with wsstream.connect(f"ws://u:p@127.0.0.1:{server.port}/start", proxy=None, follow_redirects=True):
            pass
    assert seen == ["Basic dTpw", "Basic dTpw"]


async def test_protocol_version_8(echo_uri: str) -> None:
    async with wsstream.connect(echo_uri, proxy=None, protocol_version=8) as ws:
        await ws.send("v8")
        assert await ws.recv() == "v8"


async def test_compression_negotiated_by_default_on_client_only(echo_uri: str) -> None:
    async with wsstream.connect(echo_uri, proxy=None) as ws:
        assert ws.extensions == []  # the echo server has compression off (the server default)
    async with wsstream.serve(echo, "127.0.0.1", 0, compression="deflate") as server:
        async with wsstream.connect(f"ws://127.0.0.1:{server.port}/", proxy=None) as ws:
            assert ws.extensions and ws.extensions[0].startswith("permessage-deflate")
            await ws.send("z" * 10000)
            assert await ws.recv() == "z" * 10000
        async with wsstream.connect(f"ws://127.0.0.1:{server.port}/", proxy=None, compression=None) as ws:
            assert ws.extensions == []


async def test_connection_lost_right_after_the_101_delivers_what_came_and_then_ends() -> None:
    from wsstream.core import handshake as hs
    from wsstream.core.http11 import HeadParser

    async def abrupt(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = HeadParser()
        while not parser.feed(await reader.read(4096)):
            pass
        key = hs.check_request(parser.request())
        # The 101, a message and the end of TCP in one go: the client sees EOF before connect() resumes.
        writer.write(hs.build_response(key).serialize() + b"\x82\x07partial")
        writer.close()

    server = await asyncio.start_server(abrupt, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for use_stream in (False, True):
        ws = await wsstream.connect(f"ws://127.0.0.1:{port}/", proxy=None)
        if use_stream:
            reader, _ = wsstream.open_stream(ws)
            with pytest.raises(wsstream.ConnectionClosedError) as info:
                await asyncio.wait_for(reader.read(), 5)
        else:
            assert await asyncio.wait_for(ws.recv(), 5) == b"partial"
            with pytest.raises(wsstream.ConnectionClosedError) as info:
                await asyncio.wait_for(ws.recv(), 5)
        assert info.value.code == 1006
    server.close()
