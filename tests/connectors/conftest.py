"""Fixtures for the connector tests: certificates, loopback echo servers, and real proxy servers (one per module).

A proxy whose binary is missing skips its tests with the reason, unless ``WSSTREAM_REQUIRE_ALL=1`` (CI), where it
fails them instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import trustme

from tests.connectors.support import (
    MESSAGE_SIZE,
    PASSWORD,
    USER,
    Certs,
    EchoServer,
    start_echo,
    start_or_skip,
)
from tests.proxy_servers import (
    TEST_HOSTNAME,
    ProxyServer,
    start_dante,
    start_microsocks,
    start_squid,
    start_tiny_proxy,
    start_tinyproxy,
)


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


@pytest.fixture
async def tcp_echo_server() -> AsyncIterator[EchoServer]:
    """A plain TCP echo server on 127.0.0.1."""
    echo = await start_echo(None)
    yield echo
    echo.server.close()
    await echo.server.wait_closed()


@pytest.fixture
async def tls_echo_server(certs: Certs) -> AsyncIterator[EchoServer]:
    """A TLS echo server on 127.0.0.1 with a certificate from the test CA."""
    echo = await start_echo(certs.server_context())
    yield echo
    echo.server.close()
    await echo.server.wait_closed()


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
