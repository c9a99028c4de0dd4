"""Helpers for the connector tests: test credentials, certificates, a framed echo server, and ``round_trip``,
which moves a payload through a connector and checks it came back intact."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.proxy_servers import ProxyServer, ProxyUnavailable
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


@dataclass
class EchoServer:
    server: asyncio.Server
    port: int
    first_bytes: list[bytes] = field(default_factory=list)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: list[bytes]) -> None:
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


async def start_echo(ssl_context: ssl.SSLContext | None) -> EchoServer:
    seen: list[bytes] = []
    server = await asyncio.start_server(lambda r, w: echo(r, w, seen), "127.0.0.1", 0, ssl=ssl_context, backlog=256)
    return EchoServer(server, server.sockets[0].getsockname()[1], seen)


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
