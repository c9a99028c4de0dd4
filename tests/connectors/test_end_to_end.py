"""wsstream.connect() through every proxy kind to wsstream.serve() echo servers, each moving a 16 MiB message.

The servers record the upgrade requests they get, to show that proxy credentials never reach the origin.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import wsstream
from tests.connectors.support import PASSWORD, USER, Certs
from tests.proxy_servers import TEST_HOSTNAME, ProxyServer, free_port
from wsstream.connectors import HTTPProxyConnector, ProxyChain, SOCKSProxyConnector
from wsstream.exceptions import ProxyAuthError, ProxyError

MAX_SIZE = 32 * 2**20
PROXY_VARIABLES = ("ws_proxy", "wss_proxy", "http_proxy", "https_proxy", "all_proxy", "socks_proxy", "no_proxy")


@dataclass
class WSServer:
    server: Any
    secure: bool
    headers: list[dict[str, str]] = field(default_factory=list)

    def uri(self, host: str = "127.0.0.1") -> str:
        return f"{'wss' if self.secure else 'ws'}://{host}:{self.server.port}/echo"


async def _start_ws(ssl_context: Any) -> WSServer:
    record = WSServer(None, ssl_context is not None)

    def process_request(ws: Any, request: Any) -> None:
        record.headers.append({name.lower(): value for name, value in request.headers.items()})

    async def echo(ws: wsstream.WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    record.server = await wsstream.serve(
        echo,
        "127.0.0.1",
        0,
        ssl=ssl_context,
        max_size=MAX_SIZE,
        compression=None,
        process_request=process_request,
    )
    return record


@pytest.fixture
async def ws_server() -> AsyncIterator[WSServer]:
    server = await _start_ws(None)
    yield server
    server.server.close()
    await server.server.wait_closed()


@pytest.fixture
async def wss_server(certs: Certs) -> AsyncIterator[WSServer]:
    server = await _start_ws(certs.server_context())
    yield server
    server.server.close()
    await server.server.wait_closed()


@pytest.fixture(autouse=True)
def clean_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


async def echo_16mib(uri: str, payload: bytes, **options: Any) -> None:
    """Connect with ``options``, send ``payload`` as one binary message, check the echo by SHA-256."""
    async with wsstream.connect(uri, max_size=MAX_SIZE, compression=None, open_timeout=10, **options) as ws:
        await ws.send(payload)
        echoed = await asyncio.wait_for(ws.recv(), 60)
    assert isinstance(echoed, bytes)
    assert len(echoed) == len(payload)
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()


def assert_no_proxy_credentials(server: WSServer) -> None:
    assert server.headers, "the origin saw no upgrade request"
    for headers in server.headers:
        assert "proxy-authorization" not in headers
        assert "authorization" not in headers


# HTTP CONNECT


async def test_tinyproxy(
    tinyproxy: ProxyServer, ws_server: WSServer, wss_server: WSServer, certs: Certs, payload: bytes
) -> None:
    await echo_16mib(ws_server.uri(), payload, proxy=tinyproxy.url("http"))
    await echo_16mib(wss_server.uri(), payload, proxy=tinyproxy.url("http"), ssl=certs.client_context())


async def test_tinyproxy_auth(tinyproxy_auth: ProxyServer, ws_server: WSServer, payload: bytes) -> None:
    await echo_16mib(ws_server.uri(), payload, proxy=tinyproxy_auth.url("http", user=USER, password=PASSWORD))
    assert_no_proxy_credentials(ws_server)
    with pytest.raises(ProxyAuthError):
        await echo_16mib(ws_server.uri(), b"", proxy=tinyproxy_auth.url("http", user=USER, password="wrong"))


async def test_squid_auth(squid: ProxyServer, wss_server: WSServer, certs: Certs, payload: bytes) -> None:
    proxy = squid.url("http", role="auth", user=USER, password=PASSWORD)
    await echo_16mib(wss_server.uri(), payload, proxy=proxy, ssl=certs.client_context())
    assert_no_proxy_credentials(wss_server)
    seen = len(wss_server.headers)
    with pytest.raises(ProxyAuthError, match="407"):
        await echo_16mib(
            wss_server.uri(),
            b"",
            proxy=squid.url("http", role="auth", user=USER, password="wrong"),
            ssl=certs.client_context(),
        )
    assert len(wss_server.headers) == seen


async def test_squid_plain_ws(squid: ProxyServer, ws_server: WSServer, payload: bytes) -> None:
    await echo_16mib(ws_server.uri(), payload, proxy=squid.url("http", role="plain"))


async def test_https_proxy_tls_in_tls(
    squid: ProxyServer, wss_server: WSServer, ws_server: WSServer, certs: Certs, payload: bytes
) -> None:
    connector = HTTPProxyConnector(squid.url("https", role="tls"), ssl=certs.client_context())
    await echo_16mib(wss_server.uri(), payload, connector=connector, ssl=certs.client_context())
    await echo_16mib(ws_server.uri(), payload, connector=connector)


# SOCKS


@pytest.mark.parametrize("scheme", ["socks4", "socks5", "socks5h"])
async def test_dante(
    scheme: str, dante: ProxyServer, ws_server: WSServer, wss_server: WSServer, certs: Certs, payload: bytes
) -> None:
    await echo_16mib(ws_server.uri(), payload, proxy=dante.url(scheme))
    await echo_16mib(wss_server.uri(), payload, proxy=dante.url(scheme), ssl=certs.client_context())


async def test_microsocks_auth(
    microsocks_auth: ProxyServer, ws_server: WSServer, wss_server: WSServer, certs: Certs, payload: bytes
) -> None:
    proxy = microsocks_auth.url("socks5h", user=USER, password=PASSWORD)
    await echo_16mib(ws_server.uri(), payload, proxy=proxy)
    await echo_16mib(wss_server.uri(), payload, proxy=proxy, ssl=certs.client_context())
    with pytest.raises(ProxyAuthError):
        await echo_16mib(ws_server.uri(), b"", proxy=microsocks_auth.url("socks5h", user=USER, password="bad"))


async def test_socks4a_by_name(tiny_socks4: ProxyServer, wss_server: WSServer, certs: Certs, payload: bytes) -> None:
    # Only the proxy can resolve TEST_HOSTNAME; TLS checks the certificate against it end to end.
    await echo_16mib(
        wss_server.uri(TEST_HOSTNAME), payload, proxy=tiny_socks4.url("socks4a"), ssl=certs.client_context()
    )


# chains


async def test_two_hop_chain(
    squid: ProxyServer,
    microsocks_auth: ProxyServer,
    ws_server: WSServer,
    wss_server: WSServer,
    certs: Certs,
    payload: bytes,
) -> None:
    chain = ProxyChain(
        [
            HTTPProxyConnector(squid.url("http", role="auth", user=USER, password=PASSWORD)),
            SOCKSProxyConnector(microsocks_auth.url("socks5", user=USER, password=PASSWORD)),
        ]
    )
    await echo_16mib(ws_server.uri(), payload, connector=chain)
    await echo_16mib(wss_server.uri(), payload, connector=chain, ssl=certs.client_context())
    assert_no_proxy_credentials(ws_server)
    assert_no_proxy_credentials(wss_server)


async def test_chain_wrong_password_names_the_hop(
    dante: ProxyServer, microsocks_auth: ProxyServer, ws_server: WSServer
) -> None:
    chain = ProxyChain(
        [
            SOCKSProxyConnector(dante.url("socks5")),
            SOCKSProxyConnector(microsocks_auth.url("socks5", user=USER, password="bad")),
        ]
    )
    with pytest.raises(ProxyAuthError, match=r"^proxy 2/2 socks5://"):
        await echo_16mib(ws_server.uri(), b"", connector=chain)


# the environment


async def test_environment_http_proxy(
    squid: ProxyServer,
    ws_server: WSServer,
    wss_server: WSServer,
    certs: Certs,
    payload: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = squid.url("http", role="auth", user=USER, password=PASSWORD)
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    monkeypatch.setenv("ws_proxy", proxy)
    await echo_16mib(ws_server.uri(TEST_HOSTNAME), payload)
    await echo_16mib(wss_server.uri(TEST_HOSTNAME), payload, ssl=certs.client_context())
    assert_no_proxy_credentials(ws_server)
    assert_no_proxy_credentials(wss_server)


async def test_environment_all_proxy_socks(
    tiny_socks5_auth: ProxyServer, wss_server: WSServer, certs: Certs, payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("all_proxy", tiny_socks5_auth.url("socks5h", user=USER, password=PASSWORD))
    await echo_16mib(wss_server.uri(TEST_HOSTNAME), payload, ssl=certs.client_context())


async def test_environment_wrong_password(
    squid: ProxyServer, ws_server: WSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", squid.url("http", role="auth", user=USER, password="wrong"))
    with pytest.raises(ProxyAuthError):
        await echo_16mib(ws_server.uri(TEST_HOSTNAME), b"")


async def test_loopback_and_no_proxy_bypass_the_environment(
    ws_server: WSServer, payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("all_proxy", dead)
    monkeypatch.setenv("ws_proxy", dead)
    await echo_16mib(ws_server.uri(), payload)
    await echo_16mib(ws_server.uri("localhost"), b"small")
    # ... and proxy=None or an explicit URL override the environment.
    await echo_16mib(ws_server.uri(), b"small", proxy=None)
    with pytest.raises(ProxyError, match="connection refused"):
        await echo_16mib(ws_server.uri(), b"small", proxy=dead)


async def test_open_timeout_bounds_the_proxy_hops(ws_server: WSServer) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    proxy = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    try:
        # open_timeout bounds the whole connect, and the error names the hop that used it up.
        with pytest.raises(TimeoutError, match=f"127.0.0.1:{port}"):
            async with wsstream.connect(ws_server.uri(), proxy=f"http://127.0.0.1:{port}", open_timeout=0.3):
                pass
    finally:
        proxy.close()
        await proxy.wait_closed()
