"""Fixtures for the connector tests: certificates, loopback echo servers, and real proxy servers (one per
module).

A proxy whose binary is missing skips its tests with the reason, unless ``WSSTREAM_REQUIRE_ALL=1`` (CI), where
it fails them instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy_servers import (
    TEST_HOSTNAME,
    ProxyServer,
    ProxyUnavailable,
    start_dante,
    start_microsocks,
    start_squid,
    start_tiny_proxy,
    start_tinyproxy,
)

from wsstream.connectors import Connector

REQUIRE_ALL = os.environ.get("WSSTREAM_REQUIRE_ALL") == "1"
USER, PASSWORD = "alice", "s3cret"
MESSAGE_SIZE = 16 * 2**20
IO_TIMEOUT = 30.0


def start_or_skip(start: Callable[..., ProxyServer], *args: Any, **kwargs: Any) -> ProxyServer:
    """Start a proxy server; skip (or fail under WSSTREAM_REQUIRE_ALL=1) when it is not installed."""
    try:
        return start(*args, **kwargs)
    except ProxyUnavailable as exc:
        if REQUIRE_ALL:
            pytest.fail(f"WSSTREAM_REQUIRE_ALL=1 but {exc}")
        pytest.skip(str(exc))


# certificates


@dataclass
class Certs:
    ca: trustme.CA
    server_cert: trustme.LeafCert
    directory: Path
    server_cert_file: Path = field(init=False)
    server_key_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.server_cert_file = self.directory / "server.pem"
        self.server_key_file = self.directory / "server.key"
        self.server_cert.cert_chain_pems[0].write_to_path(str(self.server_cert_file))
        for pem in self.server_cert.cert_chain_pems[1:]:
            pem.write_to_path(str(self.server_cert_file), append=True)
        self.server_cert.private_key_pem.write_to_path(str(self.server_key_file))

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts the test CA (and nothing else)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.load_verify_locations(cadata=self.ca.cert_pem.bytes().decode())
        return context

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        return context


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost", "::1", TEST_HOSTNAME)
    return Certs(ca, leaf, tmp_path_factory.mktemp("certs"))


# payload and echo servers


@pytest.fixture(scope="session")
def payload() -> bytes:
    """The 16 MiB message every proxy kind must carry intact."""
    return os.urandom(MESSAGE_SIZE)


@pytest.fixture(scope="session")
def small_payload() -> bytes:
    """For tests about something else than volume (TLS options, Unix sockets)."""
    return os.urandom(2**18)


@dataclass
class EchoServer:
    server: asyncio.Server
    port: int
    first_bytes: list[bytes] = field(default_factory=list)


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: list[bytes]) -> None:
    """Echo messages framed as a 4-byte big-endian length and the bytes, the way a WebSocket echo server does:
    take in a whole message, then send it back (framed the same way). Echoing while still receiving would
    deadlock single-threaded relays such as microsocks, which block writing one way while the other fills up.
    ``seen`` gets the first 256 bytes of each connection's first message (what reached the origin)."""
    first = True
    try:
        while True:
            header = await reader.readexactly(4)
            message = await reader.readexactly(int.from_bytes(header, "big"))
            if first:
                seen.append(message[:256])
                first = False
            writer.write(header + message)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def _start_echo(ssl_context: ssl.SSLContext | None) -> EchoServer:
    seen: list[bytes] = []
    server = await asyncio.start_server(lambda r, w: _echo(r, w, seen), "127.0.0.1", 0, ssl=ssl_context, backlog=256)
    return EchoServer(server, server.sockets[0].getsockname()[1], seen)


@pytest.fixture
async def echo_server() -> AsyncIterator[EchoServer]:
    """A plain TCP echo server on 127.0.0.1."""
    echo = await _start_echo(None)
    yield echo
    echo.server.close()
    await echo.server.wait_closed()


@pytest.fixture
async def tls_echo_server(certs: Certs) -> AsyncIterator[EchoServer]:
    """A TLS echo server on 127.0.0.1 with a certificate from the test CA."""
    echo = await _start_echo(certs.server_context())
    yield echo
    echo.server.close()
    await echo.server.wait_closed()


async def round_trip(
    connector: Connector,
    host: str,
    port: int,
    payload: bytes,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    timeout: float | None = 10.0,
) -> None:
    """Connect through ``connector``, send ``payload`` and check the echo is the same bytes (by SHA-256)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    protocol = asyncio.StreamReaderProtocol(reader)
    transport, returned = await connector.connect(
        lambda: protocol, host, port, ssl=ssl_context, server_hostname=server_hostname, timeout=timeout
    )
    assert returned is protocol
    assert transport.get_protocol() is protocol
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    try:

        async def send() -> None:
            writer.write(len(payload).to_bytes(4, "big"))
            view = memoryview(payload)
            for offset in range(0, len(view), 2**20):
                writer.write(view[offset : offset + 2**20])
                await writer.drain()

        async def receive() -> bytes:
            assert int.from_bytes(await reader.readexactly(4), "big") == len(payload)
            digest = hashlib.sha256()
            remaining = len(payload)
            while remaining:
                chunk = await reader.read(min(remaining, 2**20))
                assert chunk, f"EOF with {remaining} bytes still expected"
                digest.update(chunk)
                remaining -= len(chunk)
            return digest.digest()

        sender = asyncio.ensure_future(send())
        got = await asyncio.wait_for(receive(), IO_TIMEOUT)
        await asyncio.wait_for(sender, IO_TIMEOUT)
        assert got == hashlib.sha256(payload).digest()
        if ssl_context is not None:
            assert transport.get_extra_info("ssl_object") is not None
    finally:
        writer.close()


# proxy servers, one of each per test module


@pytest.fixture(scope="module")
def tinyproxy() -> Iterator[ProxyServer]:
    server = start_or_skip(start_tinyproxy)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tinyproxy_auth() -> Iterator[ProxyServer]:
    server = start_or_skip(start_tinyproxy, (USER, PASSWORD))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def squid(certs: Certs) -> Iterator[ProxyServer]:
    server = start_or_skip(start_squid, USER, PASSWORD, certs.server_cert_file, certs.server_key_file)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dante() -> Iterator[ProxyServer]:
    server = start_or_skip(start_dante)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def microsocks() -> Iterator[ProxyServer]:
    server = start_or_skip(start_microsocks)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def microsocks_auth() -> Iterator[ProxyServer]:
    server = start_or_skip(start_microsocks, (USER, PASSWORD))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tiny_socks4() -> Iterator[ProxyServer]:
    """tiny-proxy's SOCKS4/4a server; it resolves TEST_HOSTNAME to 127.0.0.1."""
    server = start_or_skip(start_tiny_proxy, "socks4", hosts={TEST_HOSTNAME: "127.0.0.1"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tiny_socks5_auth() -> Iterator[ProxyServer]:
    """tiny-proxy's SOCKS5 server with username/password; it resolves TEST_HOSTNAME to 127.0.0.1."""
    server = start_or_skip(start_tiny_proxy, "socks5", (USER, PASSWORD), hosts={TEST_HOSTNAME: "127.0.0.1"})
    yield server
    server.stop()
