"""SOCKSProxyConnector against real SOCKS servers: dante (SOCKS4, SOCKS5), microsocks (SOCKS5, user/pass) and
tiny-proxy (SOCKS4a, SOCKS5 user/pass, remote DNS)."""

from __future__ import annotations

import asyncio

import pytest

from tests.connectors.support import PASSWORD, USER, Certs, EchoServer, round_trip
from tests.proxy_servers import TEST_HOSTNAME, ProxyServer, free_port
from wsstream.connectors import SOCKSProxyConnector
from wsstream.exceptions import ProxyAuthError, ProxyError


@pytest.mark.parametrize("scheme", ["socks4", "socks5", "socks5h"])
async def test_dante(scheme: str, dante: ProxyServer, tcp_echo_server: EchoServer, payload: bytes) -> None:
    await round_trip(SOCKSProxyConnector(dante.url(scheme)), "127.0.0.1", tcp_echo_server.port, payload)


async def test_dante_tls_origin_by_name(
    dante: ProxyServer, tls_echo_server: EchoServer, certs: Certs, payload: bytes
) -> None:
    # socks5:// resolves "localhost" here and sends an address; the certificate is checked against the name.
    connector = SOCKSProxyConnector(dante.url("socks5"))
    await round_trip(connector, "localhost", tls_echo_server.port, payload, ssl_context=certs.client_context())


async def test_dante_refuses_socks4a(dante: ProxyServer, tcp_echo_server: EchoServer) -> None:
    # dante does not do 4a: that a name was sent (not resolved here) shows in its refusal, code 91.
    with pytest.raises(ProxyError, match=r"cannot reach localhost:\d+: .*\(SOCKS reply 0x5b\)"):
        await round_trip(SOCKSProxyConnector(dante.url("socks4a")), "localhost", tcp_echo_server.port, b"x")


async def test_dante_destination_refused(dante: ProxyServer) -> None:
    port = free_port()
    with pytest.raises(ProxyError) as info:
        await round_trip(SOCKSProxyConnector(dante.url("socks5")), "127.0.0.1", port, b"x")
    assert str(info.value).startswith(f"proxy socks5://127.0.0.1:{dante.port}: cannot reach 127.0.0.1:{port}: ")
    assert "(SOCKS reply 0x0" in str(info.value)


async def test_microsocks_no_auth(
    microsocks: ProxyServer, tls_echo_server: EchoServer, certs: Certs, payload: bytes
) -> None:
    connector = SOCKSProxyConnector(microsocks.url("socks5h"))
    await round_trip(connector, "127.0.0.1", tls_echo_server.port, payload, ssl_context=certs.client_context())


async def test_microsocks_auth(microsocks_auth: ProxyServer, tcp_echo_server: EchoServer, payload: bytes) -> None:
    connector = SOCKSProxyConnector(microsocks_auth.url("socks5", user=USER, password=PASSWORD))
    await round_trip(connector, "127.0.0.1", tcp_echo_server.port, payload)


async def test_microsocks_wrong_password(microsocks_auth: ProxyServer, tcp_echo_server: EchoServer) -> None:
    connector = SOCKSProxyConnector(microsocks_auth.url("socks5", user=USER, password="wrong"))
    with pytest.raises(ProxyAuthError) as info:
        await round_trip(connector, "127.0.0.1", tcp_echo_server.port, b"x")
    assert str(info.value).startswith(f"proxy socks5://{USER}:***@127.0.0.1:{microsocks_auth.port}: ")
    assert tcp_echo_server.first_bytes == []


async def test_microsocks_without_credentials(microsocks_auth: ProxyServer, tcp_echo_server: EchoServer) -> None:
    with pytest.raises(ProxyAuthError, match="No acceptable authentication methods"):
        await round_trip(SOCKSProxyConnector(microsocks_auth.url("socks5")), "127.0.0.1", tcp_echo_server.port, b"x")


async def test_tiny_proxy_socks4a_remote_dns(
    tiny_socks4: ProxyServer, tls_echo_server: EchoServer, certs: Certs, payload: bytes
) -> None:
    # Only the proxy knows TEST_HOSTNAME: reaching it proves the name went to the proxy unresolved.
    connector = SOCKSProxyConnector(tiny_socks4.url("socks4a"))
    await round_trip(connector, TEST_HOSTNAME, tls_echo_server.port, payload, ssl_context=certs.client_context())


async def test_socks4_resolves_locally(tiny_socks4: ProxyServer, tcp_echo_server: EchoServer, payload: bytes) -> None:
    connector = SOCKSProxyConnector(tiny_socks4.url("socks4"))
    await round_trip(connector, "localhost", tcp_echo_server.port, payload)
    # ... so a name only the proxy knows fails here, before the proxy is asked.
    with pytest.raises(ProxyError, match=rf"cannot resolve '{TEST_HOSTNAME}' locally"):
        await round_trip(connector, TEST_HOSTNAME, tcp_echo_server.port, b"x")


async def test_tiny_proxy_socks5_auth_remote_and_local_dns(
    tiny_socks5_auth: ProxyServer, tcp_echo_server: EchoServer, payload: bytes
) -> None:
    remote = SOCKSProxyConnector(tiny_socks5_auth.url("socks5h", user=USER, password=PASSWORD))
    await round_trip(remote, TEST_HOSTNAME, tcp_echo_server.port, payload)
    local = SOCKSProxyConnector(tiny_socks5_auth.url("socks5", user=USER, password=PASSWORD))
    with pytest.raises(ProxyError, match=rf"cannot resolve '{TEST_HOSTNAME}' locally"):
        await round_trip(local, TEST_HOSTNAME, tcp_echo_server.port, b"x")


async def test_tiny_proxy_socks5_wrong_password(tiny_socks5_auth: ProxyServer, tcp_echo_server: EchoServer) -> None:
    connector = SOCKSProxyConnector(tiny_socks5_auth.url("socks5h", user=USER, password="bad"))
    with pytest.raises(ProxyAuthError):
        await round_trip(connector, "127.0.0.1", tcp_echo_server.port, b"x")


async def test_socks_proxy_refusing_connections() -> None:
    port = free_port()
    with pytest.raises(ProxyError) as info:
        await SOCKSProxyConnector(f"socks5://127.0.0.1:{port}").connect(
            asyncio.Protocol, "example.com", 80, ssl=None, server_hostname=None, timeout=5
        )
    assert str(info.value) == f"proxy socks5://127.0.0.1:{port}: connection refused"
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


async def test_socks_timeout_names_the_step() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TimeoutError) as info:
            await SOCKSProxyConnector(f"socks5h://127.0.0.1:{port}").connect(
                asyncio.Protocol, "example.com", 443, ssl=None, server_hostname=None, timeout=0.3
            )
    finally:
        server.close()
        await server.wait_closed()
    assert str(info.value) == (
        f"timed out after 0.3 s: proxy socks5h://127.0.0.1:{port}: SOCKS5 handshake to reach example.com:443"
    )


async def test_bytes_after_the_socks5_reply_are_kept() -> None:
    async def scripted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        greeting = await reader.readexactly(3)  # version 5, one method: no authentication
        assert greeting == b"\x05\x01\x00"
        writer.write(b"\x05\x00")
        request = await reader.readexactly(4)
        assert request == b"\x05\x01\x00\x03"  # CONNECT to a domain name (socks5h)
        await reader.readexactly((await reader.readexactly(1))[0] + 2)
        # The reply (bound to 127.0.0.1:0) and the origin's first bytes in one segment.
        writer.write(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x00" + b"hello from the origin")
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(scripted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    received = bytearray()
    done = asyncio.get_running_loop().create_future()

    class Reader(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            received.extend(data)
            if received.endswith(b"origin") and not done.done():
                done.set_result(None)

    try:
        transport, _ = await SOCKSProxyConnector(f"socks5h://127.0.0.1:{port}").connect(
            Reader, "origin.example", 80, ssl=None, server_hostname=None, timeout=5
        )
        await asyncio.wait_for(done, 5)
        transport.close()
    finally:
        server.close()
        await server.wait_closed()
    assert bytes(received) == b"hello from the origin"


def test_url_validation() -> None:
    with pytest.raises(ValueError, match="not a SOCKS proxy URL"):
        SOCKSProxyConnector("http://127.0.0.1:1080")
    with pytest.raises(ValueError, match="without a host"):
        SOCKSProxyConnector("socks5://:1080")
    connector = SOCKSProxyConnector("socks4a://bob@proxy")
    assert (connector.version, connector.remote_dns, connector.port, connector.username) == (
        4,
        True,
        1080,
        "bob",
    )
    assert SOCKSProxyConnector("socks5://p").remote_dns is False
    assert SOCKSProxyConnector("socks5h://p").remote_dns is True
    assert SOCKSProxyConnector("socks4://p").remote_dns is False
