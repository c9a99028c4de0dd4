"""ProxyChain: two and three hops through real proxies, any mix of HTTP, HTTPS and SOCKS, and a Unix first
hop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.connectors.support import PASSWORD, USER, Certs, EchoServer, round_trip
from tests.proxy_servers import ProxyServer, free_port
from wsstream.connectors import (
    DirectConnector,
    HTTPProxyConnector,
    ProxyChain,
    SOCKSProxyConnector,
    UnixConnector,
)
from wsstream.exceptions import ProxyAuthError, ProxyError, ProxyStatusError


async def test_http_then_socks5_auth(
    squid: ProxyServer,
    microsocks_auth: ProxyServer,
    tcp_echo_server: EchoServer,
    tls_echo_server: EchoServer,
    certs: Certs,
    payload: bytes,
) -> None:
    chain = ProxyChain(
        [
            HTTPProxyConnector(squid.url("http", role="auth", user=USER, password=PASSWORD)),
            SOCKSProxyConnector(microsocks_auth.url("socks5", user=USER, password=PASSWORD)),
        ]
    )
    await round_trip(chain, "127.0.0.1", tcp_echo_server.port, payload)
    await round_trip(chain, "127.0.0.1", tls_echo_server.port, payload, ssl_context=certs.client_context())
    assert tcp_echo_server.first_bytes == [payload[:256]]


async def test_socks_then_http(
    dante: ProxyServer, tinyproxy: ProxyServer, tls_echo_server: EchoServer, certs: Certs, payload: bytes
) -> None:
    chain = ProxyChain([SOCKSProxyConnector(dante.url("socks4")), HTTPProxyConnector(tinyproxy.url("http"))])
    await round_trip(chain, "127.0.0.1", tls_echo_server.port, payload, ssl_context=certs.client_context())


async def test_three_hops_with_tls_to_the_first(
    squid: ProxyServer,
    dante: ProxyServer,
    tinyproxy: ProxyServer,
    tls_echo_server: EchoServer,
    certs: Certs,
    payload: bytes,
) -> None:
    # TLS to squid, SOCKS5 inside it, CONNECT inside that, TLS to the origin inside all of it.
    chain = ProxyChain(
        [
            HTTPProxyConnector(squid.url("https", role="tls"), ssl=certs.client_context()),
            SOCKSProxyConnector(dante.url("socks5h")),
            HTTPProxyConnector(tinyproxy.url("http")),
        ]
    )
    await round_trip(chain, "127.0.0.1", tls_echo_server.port, payload, ssl_context=certs.client_context())


async def test_nested_chain(
    dante: ProxyServer, tinyproxy: ProxyServer, squid: ProxyServer, tcp_echo_server: EchoServer, payload: bytes
) -> None:
    inner = ProxyChain([HTTPProxyConnector(tinyproxy.url("http")), SOCKSProxyConnector(dante.url("socks5"))])
    chain = ProxyChain([HTTPProxyConnector(squid.url("http", role="plain")), inner])
    await round_trip(chain, "127.0.0.1", tcp_echo_server.port, payload)


async def test_wrong_password_on_the_second_hop(
    tinyproxy: ProxyServer, microsocks_auth: ProxyServer, tcp_echo_server: EchoServer
) -> None:
    chain = ProxyChain(
        [
            HTTPProxyConnector(tinyproxy.url("http")),
            SOCKSProxyConnector(microsocks_auth.url("socks5", user=USER, password="wrong")),
        ]
    )
    with pytest.raises(ProxyAuthError) as info:
        await round_trip(chain, "127.0.0.1", tcp_echo_server.port, b"x")
    assert str(info.value).startswith(f"proxy 2/2 socks5://{USER}:***@127.0.0.1:{microsocks_auth.port}: ")


async def test_first_hop_cannot_reach_the_second(squid: ProxyServer, tcp_echo_server: EchoServer) -> None:
    dead = free_port()
    chain = ProxyChain(
        [
            HTTPProxyConnector(squid.url("http", role="plain")),
            SOCKSProxyConnector(f"socks5://127.0.0.1:{dead}"),
        ]
    )
    with pytest.raises(ProxyStatusError) as info:
        await round_trip(chain, "127.0.0.1", tcp_echo_server.port, b"x")
    assert str(info.value).startswith(
        f"proxy 1/2 http://127.0.0.1:{squid.ports['plain']}: CONNECT 127.0.0.1:{dead} refused: 503"
    )


async def test_first_hop_refused() -> None:
    dead = free_port()
    chain = ProxyChain([SOCKSProxyConnector(f"socks5://127.0.0.1:{dead}"), HTTPProxyConnector("http://p:1")])
    with pytest.raises(ProxyError) as info:
        await chain.connect(asyncio.Protocol, "h", 1, ssl=None, server_hostname=None, timeout=5)
    assert str(info.value) == f"proxy 1/2 socks5://127.0.0.1:{dead}: connection refused"


async def test_https_proxy_inside_a_socks_tunnel(
    dante: ProxyServer, squid: ProxyServer, tls_echo_server: EchoServer, certs: Certs, payload: bytes
) -> None:
    # TLS to squid runs over dante's tunnel; the origin's TLS runs inside squid's TLS.
    chain = ProxyChain(
        [
            SOCKSProxyConnector(dante.url("socks5")),
            HTTPProxyConnector(squid.url("https", role="tls"), ssl=certs.client_context()),
        ]
    )
    await round_trip(chain, "127.0.0.1", tls_echo_server.port, payload, ssl_context=certs.client_context())


async def test_timeout_names_the_hop(tinyproxy: ProxyServer) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    chain = ProxyChain([HTTPProxyConnector(tinyproxy.url("http")), SOCKSProxyConnector(f"socks5h://127.0.0.1:{port}")])
    try:
        with pytest.raises(TimeoutError) as info:
            await chain.connect(asyncio.Protocol, "origin.example", 443, ssl=None, server_hostname=None, timeout=0.5)
    finally:
        server.close()
        await server.wait_closed()
    assert str(info.value) == (
        f"timed out after 0.5 s: proxy 2/2 socks5h://127.0.0.1:{port}: SOCKS5 handshake to reach origin.example:443"
    )


@pytest.fixture
async def unix_relay_to_tinyproxy(tinyproxy: ProxyServer, tmp_path: Path) -> AsyncIterator[str]:
    """A Unix socket whose connections are relayed to tinyproxy: an HTTP proxy reached through a Unix
    socket."""

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", tinyproxy.port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(2**16):
                    dst.write(data)
                    await dst.drain()
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer), return_exceptions=True)

    path = str(tmp_path / "proxy.sock")
    server = await asyncio.start_unix_server(relay, path)
    yield path
    server.close()
    await server.wait_closed()


async def test_unix_first_hop(
    unix_relay_to_tinyproxy: str, tls_echo_server: EchoServer, certs: Certs, payload: bytes
) -> None:
    chain = ProxyChain([UnixConnector(unix_relay_to_tinyproxy), HTTPProxyConnector("http://proxy.invalid:3128")])
    await round_trip(chain, "127.0.0.1", tls_echo_server.port, payload, ssl_context=certs.client_context())


async def test_direct_first_hop_is_plain_dialling(
    tinyproxy: ProxyServer, tcp_echo_server: EchoServer, payload: bytes
) -> None:
    chain = ProxyChain([DirectConnector(), HTTPProxyConnector(tinyproxy.url("http"))])
    await round_trip(chain, "127.0.0.1", tcp_echo_server.port, payload)


def test_validation() -> None:
    with pytest.raises(ValueError, match="at least one hop"):
        ProxyChain([])
    with pytest.raises(TypeError, match="hop 2"):
        ProxyChain([HTTPProxyConnector("http://p:1"), DirectConnector()])
    with pytest.raises(TypeError, match="cannot run over another hop's tunnel"):
        ProxyChain(
            [
                HTTPProxyConnector("http://p:1"),
                ProxyChain([UnixConnector("/x"), HTTPProxyConnector("http://q")]),
            ]
        )
    chain = ProxyChain([HTTPProxyConnector("http://u:pw@p:1"), SOCKSProxyConnector("socks5h://q")])
    assert chain.label == "http://u:***@p:1 -> socks5h://q"
