"""DirectConnector, UnixConnector and TLS through ``ssl=``/``server_hostname=`` (custom CA, client
certificates, SNI, verification on by default), directly and inside a proxy tunnel; the hand-over of a
connection to the caller's protocol."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from tests.connectors import support
from tests.connectors.support import Certs, EchoServer, echo, round_trip
from tests.proxy_servers import ProxyServer, ProxyUnavailable, free_port
from wsstream.connectors import Connector, DirectConnector, HTTPProxyConnector, UnixConnector
from wsstream.connectors.direct import describe_os_error
from wsstream.exceptions import ProxyError


async def test_direct(tcp_echo_server: EchoServer, payload: bytes) -> None:
    await round_trip(DirectConnector(), "127.0.0.1", tcp_echo_server.port, payload)


async def test_direct_by_name_tries_every_address(certs: Certs, small_payload: bytes) -> None:
    # "localhost" may resolve to ::1 first; happy eyeballs falls through to 127.0.0.1, where the server is.
    server = await asyncio.start_server(lambda r, w: echo(r, w, []), "127.0.0.1", 0, ssl=certs.server_context())
    try:
        port = server.sockets[0].getsockname()[1]
        await round_trip(DirectConnector(), "localhost", port, small_payload, ssl_context=certs.client_context())
    finally:
        server.close()
        await server.wait_closed()


async def test_direct_refused_is_plain_oserror() -> None:
    port = free_port()
    with pytest.raises(OSError) as info:
        await DirectConnector().connect(asyncio.Protocol, "127.0.0.1", port, ssl=None, server_hostname=None, timeout=5)
    assert isinstance(info.value, ConnectionRefusedError)
    assert not isinstance(info.value, ProxyError)


async def test_verification_is_on_by_default(tls_echo_server: EchoServer) -> None:
    # A default context trusts the system CAs only, not the test CA.
    with pytest.raises(ssl.SSLCertVerificationError):
        await round_trip(
            DirectConnector(),
            "127.0.0.1",
            tls_echo_server.port,
            b"x",
            ssl_context=ssl.create_default_context(),
        )


async def test_server_hostname_is_checked_and_sent_as_sni(
    certs: Certs, tinyproxy: ProxyServer, small_payload: bytes
) -> None:
    names: list[str | None] = []
    context = certs.server_context()
    context.sni_callback = lambda sslobj, name, ctx: names.append(name)  # type: ignore[assignment,func-returns-value]
    server = await asyncio.start_server(lambda r, w: echo(r, w, []), "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        for connector in (DirectConnector(), HTTPProxyConnector(tinyproxy.url("http"))):
            names.clear()
            await round_trip(
                connector,
                "127.0.0.1",
                port,
                small_payload,
                ssl_context=certs.client_context(),
                server_hostname="localhost",
            )
            assert names == ["localhost"]
            # A name the certificate does not carry is refused, through the tunnel too.
            with pytest.raises(ssl.SSLCertVerificationError):
                await round_trip(
                    connector,
                    "127.0.0.1",
                    port,
                    b"x",
                    ssl_context=certs.client_context(),
                    server_hostname="other.example",
                )
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def mtls_server(certs: Certs) -> AsyncIterator[tuple[int, trustme.CA]]:
    """A TLS echo server that requires a client certificate from its own client CA."""
    client_ca = trustme.CA()
    context = certs.server_context()
    context.verify_mode = ssl.CERT_REQUIRED
    client_ca.configure_trust(context)
    server = await asyncio.start_server(lambda r, w: echo(r, w, []), "127.0.0.1", 0, ssl=context)
    yield server.sockets[0].getsockname()[1], client_ca
    server.close()
    await server.wait_closed()


async def test_client_certificate_directly_and_through_a_proxy(
    mtls_server: tuple[int, trustme.CA], certs: Certs, squid: ProxyServer, small_payload: bytes
) -> None:
    port, client_ca = mtls_server
    with_cert = certs.client_context()
    client_ca.issue_cert("client@example.org").configure_cert(with_cert)
    for connector in (
        DirectConnector(),
        HTTPProxyConnector(squid.url("https", role="tls"), ssl=certs.client_context()),
    ):
        await round_trip(connector, "127.0.0.1", port, small_payload, ssl_context=with_cert)
        # Without one the server refuses (TLS 1.3 reports it after the handshake: on the first read at the
        # latest).
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            await round_trip(connector, "127.0.0.1", port, b"x", ssl_context=certs.client_context())


async def test_tls_handshake_timeout_names_the_step() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # keeps the writer alive: since 3.13 a collected StreamWriter closes its socket
        writer.close()

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TimeoutError) as info:
            await DirectConnector().connect(
                asyncio.Protocol,
                "127.0.0.1",
                port,
                ssl=ssl.create_default_context(),
                server_hostname=None,
                timeout=0.3,
            )
        assert str(info.value) == f"timed out after 0.3 s: connecting to 127.0.0.1:{port}"
    finally:
        silent.close()
        await silent.wait_closed()


@pytest.fixture
async def unix_echo(tmp_path: Path, certs: Certs) -> AsyncIterator[tuple[str, str]]:
    plain, tls = str(tmp_path / "plain.sock"), str(tmp_path / "tls.sock")
    servers = [
        await asyncio.start_unix_server(lambda r, w: echo(r, w, []), plain),
        await asyncio.start_unix_server(lambda r, w: echo(r, w, []), tls, ssl=certs.server_context()),
    ]
    yield plain, tls
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_unix(unix_echo: tuple[str, str], certs: Certs, small_payload: bytes) -> None:
    plain, tls = unix_echo
    # host and port are ignored (the host still names the certificate to expect).
    await round_trip(UnixConnector(plain), "ignored", 0, small_payload)
    await round_trip(UnixConnector(tls), "localhost", 0, small_payload, ssl_context=certs.client_context())
    with pytest.raises(FileNotFoundError):
        await round_trip(UnixConnector(plain + ".missing"), "h", 0, b"x")


def test_builtins_satisfy_the_protocol(tmp_path: Path) -> None:
    for connector in (DirectConnector(), UnixConnector(str(tmp_path)), HTTPProxyConnector("http://p:1")):
        assert isinstance(connector, Connector)


class Buffered(asyncio.BufferedProtocol):
    """A BufferedProtocol with a deliberately small buffer, to see leftover bytes handed over in pieces."""

    def __init__(self) -> None:
        self.buffer = bytearray(7)
        self.received = bytearray()
        self.made = False
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made = True

    def get_buffer(self, sizehint: int) -> bytearray:
        assert self.made
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.received += self.buffer[:nbytes]
        if self.received.endswith(b"END") and not self.done.done():
            self.done.set_result(None)


async def test_buffered_protocol_gets_the_early_bytes() -> None:
    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + b"0123456789" * 3 + b"END")
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        transport, protocol = await HTTPProxyConnector(f"http://127.0.0.1:{port}").connect(
            Buffered, "h", 1, ssl=None, server_hostname=None, timeout=5
        )
        assert isinstance(protocol, Buffered)
        await asyncio.wait_for(protocol.done, 5)
        transport.close()
    finally:
        server.close()
        await server.wait_closed()
    assert bytes(protocol.received) == b"0123456789" * 3 + b"END"


async def test_happy_eyeballs_is_on(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    loop = asyncio.get_running_loop()
    real = loop.create_connection

    async def spy(*args: object, **kwargs: object) -> object:
        seen.update(kwargs)
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    listener = socket.create_server(("127.0.0.1", 0))
    try:
        monkeypatch.setattr(loop, "create_connection", spy)
        transport, _ = await DirectConnector().connect(
            asyncio.Protocol,
            "127.0.0.1",
            listener.getsockname()[1],
            ssl=None,
            server_hostname=None,
            timeout=5,
        )
        transport.close()
    finally:
        listener.close()
    assert seen["happy_eyeballs_delay"] == 0.25


def test_refusals_on_every_address_read_as_connection_refused() -> None:
    # What create_connection raises when each resolved address refused with a different message.
    folded = OSError(
        "Multiple exceptions: [Errno 111] Connect call failed ('::1', 3128, 0, 0), "
        "[Errno 111] Connect call failed ('127.0.0.1', 3128)"
    )
    assert describe_os_error(folded) == "connection refused"
    assert describe_os_error(ConnectionRefusedError(111, "refused")) == "connection refused"
    assert describe_os_error(OSError(errno.EHOSTUNREACH, "No route to host")) == "host unreachable"
    assert describe_os_error(OSError(errno.EACCES, "Permission denied")) == "cannot connect: Permission denied"


def test_a_missing_proxy_server_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> ProxyServer:
        raise ProxyUnavailable("frobproxy is not installed")

    monkeypatch.setattr(support, "REQUIRE_ALL", False)
    with pytest.raises(pytest.skip.Exception, match="frobproxy is not installed"):
        support.start_or_skip(missing)
    monkeypatch.setattr(support, "REQUIRE_ALL", True)
    with pytest.raises(pytest.fail.Exception, match="WSSTREAM_REQUIRE_ALL=1 but frobproxy is not installed"):
        support.start_or_skip(missing)
