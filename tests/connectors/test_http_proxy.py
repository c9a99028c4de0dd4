"""HTTPProxyConnector against real HTTP proxies (tinyproxy, squid) and a scripted proxy for the protocol's
corners."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

import pytest

from tests.connectors.support import PASSWORD, USER, Certs, EchoServer, round_trip
from tests.proxy_servers import ProxyServer, free_port
from wsstream.connectors import HTTPProxyConnector, ProxyAuthStatusError
from wsstream.exceptions import ProxyAuthError, ProxyError, ProxyStatusError

# tinyproxy


async def test_tinyproxy_plain(tinyproxy: ProxyServer, tcp_echo_server: EchoServer, payload: bytes) -> None:
    connector = HTTPProxyConnector(tinyproxy.url("http"))
    await round_trip(connector, "127.0.0.1", tcp_echo_server.port, payload)
    # CONNECT is a byte tunnel: the origin sees our bytes first, nothing from the proxy.
    assert tcp_echo_server.first_bytes == [payload[:256]]


async def test_tinyproxy_tls_origin(
    tinyproxy: ProxyServer, tls_echo_server: EchoServer, certs: Certs, payload: bytes
) -> None:
    connector = HTTPProxyConnector(tinyproxy.url("http"))
    await round_trip(connector, "127.0.0.1", tls_echo_server.port, payload, ssl_context=certs.client_context())


async def test_tinyproxy_auth(tinyproxy_auth: ProxyServer, tcp_echo_server: EchoServer, payload: bytes) -> None:
    connector = HTTPProxyConnector(tinyproxy_auth.url("http", user=USER, password=PASSWORD))
    await round_trip(connector, "127.0.0.1", tcp_echo_server.port, payload)


async def test_tinyproxy_wrong_password(tinyproxy_auth: ProxyServer, tcp_echo_server: EchoServer) -> None:
    connector = HTTPProxyConnector(tinyproxy_auth.url("http", user=USER, password="wrong"))
    with pytest.raises(ProxyAuthError) as info:
        await round_trip(connector, "127.0.0.1", tcp_echo_server.port, b"x")
    # tinyproxy answers 401 where RFC 9110 says 407: both are auth errors, and the status is kept.
    assert isinstance(info.value, ProxyStatusError)
    assert info.value.status == 401
    assert "credentials refused" in str(info.value)
    assert "wrong" not in str(info.value)  # the password never appears in messages
    assert tcp_echo_server.first_bytes == []


async def test_tinyproxy_no_credentials(tinyproxy_auth: ProxyServer, tcp_echo_server: EchoServer) -> None:
    with pytest.raises(ProxyAuthError, match="authentication required"):
        await round_trip(HTTPProxyConnector(tinyproxy_auth.url("http")), "127.0.0.1", tcp_echo_server.port, b"x")


# squid


async def test_squid_plain_and_tls_origin(
    squid: ProxyServer, tcp_echo_server: EchoServer, tls_echo_server: EchoServer, certs: Certs, payload: bytes
) -> None:
    connector = HTTPProxyConnector(squid.url("http", role="plain"))
    await round_trip(connector, "127.0.0.1", tcp_echo_server.port, payload)
    await round_trip(connector, "127.0.0.1", tls_echo_server.port, payload, ssl_context=certs.client_context())


async def test_squid_auth(squid: ProxyServer, tls_echo_server: EchoServer, certs: Certs, payload: bytes) -> None:
    connector = HTTPProxyConnector(squid.url("http", role="auth", user=USER, password=PASSWORD))
    await round_trip(connector, "127.0.0.1", tls_echo_server.port, payload, ssl_context=certs.client_context())


async def test_squid_wrong_password_is_407(squid: ProxyServer, tls_echo_server: EchoServer, certs: Certs) -> None:
    connector = HTTPProxyConnector(squid.url("http", role="auth", user=USER, password="nope"))
    with pytest.raises(ProxyAuthError) as info:
        await round_trip(connector, "127.0.0.1", tls_echo_server.port, b"x", ssl_context=certs.client_context())
    assert isinstance(info.value, ProxyAuthStatusError)
    assert info.value.status == 407
    assert f"proxy http://{USER}:***@127.0.0.1:{squid.ports['auth']}: credentials refused" in str(info.value)
    assert tls_echo_server.first_bytes == []


async def test_squid_https_proxy_tls_in_tls(
    squid: ProxyServer, tls_echo_server: EchoServer, tcp_echo_server: EchoServer, certs: Certs, payload: bytes
) -> None:
    connector = HTTPProxyConnector(squid.url("https", role="tls"), ssl=certs.client_context())
    await round_trip(connector, "127.0.0.1", tls_echo_server.port, payload, ssl_context=certs.client_context())
    await round_trip(connector, "127.0.0.1", tcp_echo_server.port, payload)


async def test_https_proxy_verifies_its_certificate_by_default(squid: ProxyServer, tcp_echo_server: EchoServer) -> None:
    # The system CAs do not include the test CA: TLS to the proxy must fail, and say it was the proxy.
    connector = HTTPProxyConnector(squid.url("https", role="tls"))
    with pytest.raises(ProxyError, match=r"TLS handshake with the proxy failed") as info:
        await round_trip(connector, "127.0.0.1", tcp_echo_server.port, b"x")
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


async def test_squid_refused_destination(squid: ProxyServer, certs: Certs) -> None:
    closed_port = free_port()
    connector = HTTPProxyConnector(squid.url("http", role="plain"))
    with pytest.raises(ProxyStatusError) as info:
        await round_trip(connector, "127.0.0.1", closed_port, b"x", ssl_context=certs.client_context())
    assert info.value.status == 503
    assert info.value.body  # squid explains itself in an HTML page
    message = str(info.value)
    assert message.startswith(f"proxy http://127.0.0.1:{squid.ports['plain']}: CONNECT 127.0.0.1:{closed_port}")
    assert "\n" not in message
    # squid's HTML page, reduced to its text, says why.
    assert "Connection refused" in message and "<" not in message
    # Not an ssl error: no TLS handshake is attempted after a failed CONNECT.
    assert not isinstance(info.value, ssl.SSLError)


async def test_proxy_refusing_connections() -> None:
    port = free_port()
    with pytest.raises(ProxyError) as info:
        await HTTPProxyConnector(f"http://127.0.0.1:{port}").connect(
            asyncio.Protocol, "example.com", 80, ssl=None, server_hostname=None, timeout=5
        )
    assert str(info.value) == f"proxy http://127.0.0.1:{port}: connection refused"
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


async def test_proxy_host_not_resolvable() -> None:
    with pytest.raises(ProxyError, match=r"^proxy http://proxy\.invalid:3128: cannot resolve proxy host") as info:
        await HTTPProxyConnector("http://proxy.invalid:3128").connect(
            asyncio.Protocol, "example.com", 80, ssl=None, server_hostname=None, timeout=5
        )
    assert info.value.__cause__ is not None


# a scripted proxy: what real proxies rarely do, on a real socket


class ScriptedProxy:
    """A loopback server that reads one request head, records it, and runs ``script(head, reader,
    writer)``."""

    def __init__(self, script: Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]):
        self.script = script
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> ScriptedProxy:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            await self.script(head, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _relay_to(target_port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while data := await src.read(2**16):
            dst.write(data)
            await dst.drain()
        dst.close()

    await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer), return_exceptions=True)


class Collect(asyncio.Protocol):
    """Records the order of protocol events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.events.append(("made", b""))

    def data_received(self, data: bytes) -> None:
        self.events.append(("data", data))
        if b"END" in b"".join(d for _, d in self.events) and not self.done.done():
            self.done.set_result(None)

    def eof_received(self) -> bool:
        self.events.append(("eof", b""))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", b""))


@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("status", [200, 204, 299])
async def test_any_2xx_and_bytes_after_the_reply_are_kept(version: str, status: int) -> None:
    async def script(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The reply and the origin's first bytes in one segment, as a fast origin behind a proxy makes happen.
        writer.write(f"HTTP/{version} {status} Tunnel\r\nX-Via: test\r\n\r\n".encode() + b"early bytes ")
        await writer.drain()
        writer.write(b"and later END")
        await writer.drain()
        await reader.read()

    async with ScriptedProxy(script) as proxy:
        transport, protocol = await HTTPProxyConnector(proxy.url).connect(
            Collect, "origin.example", 8080, ssl=None, server_hostname=None, timeout=5
        )
        assert isinstance(protocol, Collect)
        await asyncio.wait_for(protocol.done, 5)
        transport.close()
    assert protocol.events[0] == ("made", b"")
    assert b"".join(data for kind, data in protocol.events if kind == "data") == b"early bytes and later END"
    assert proxy.heads[0].startswith(b"CONNECT origin.example:8080 HTTP/1.1\r\nHost: origin.example:8080\r\n")


async def test_eof_right_after_the_reply_reaches_the_protocol() -> None:
    async def script(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nbye END")
        writer.write_eof()
        await reader.read()

    async with ScriptedProxy(script) as proxy:
        transport, protocol = await HTTPProxyConnector(proxy.url).connect(
            Collect, "h", 1, ssl=None, server_hostname=None, timeout=5
        )
        assert isinstance(protocol, Collect)
        await asyncio.wait_for(protocol.done, 5)
        for _ in range(100):  # bounded: let the EOF arrive if it came in a later segment
            if ("eof", b"") in protocol.events:
                break
            await asyncio.sleep(0.01)
        transport.close()
    kinds = [kind for kind, _ in protocol.events]
    assert kinds[0] == "made"
    assert "eof" in kinds
    assert kinds.index("eof") > kinds.index("data")


async def test_credentials_and_extra_headers_are_sent_up_front() -> None:
    after_refusal: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def script(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nno thanks")
        await writer.drain()
        # Whatever the client sends until it closes: a TLS ClientHello here would be a defect.
        after_refusal.set_result(await asyncio.wait_for(reader.read(), 5))

    async with ScriptedProxy(script) as proxy:
        url = proxy.url.replace("http://", "http://us%40er:p%3Ass@")
        connector = HTTPProxyConnector(url, headers={"X-Team": "blue", "User-Agent": "probe/1"})
        with pytest.raises(ProxyStatusError) as info:
            await connector.connect(
                asyncio.Protocol,
                "::1",
                443,
                ssl=ssl.create_default_context(),
                server_hostname=None,
                timeout=5,
            )
    head = proxy.heads[0]
    assert head.startswith(b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n")
    # base64("us@er:p:ss")
    assert b"\r\nProxy-Authorization: Basic dXNAZXI6cDpzcw==\r\n" in head
    assert b"\r\nX-Team: blue\r\n" in head and b"\r\nUser-Agent: probe/1\r\n" in head
    assert info.value.status == 403 and info.value.body == b"no thanks"
    assert str(info.value).endswith("CONNECT [::1]:443 refused: 403 Forbidden: no thanks")
    assert "p:ss" not in str(info.value) and "p%3Ass" not in str(info.value)
    assert await asyncio.wait_for(after_refusal, 5) == b""  # the client closed without a TLS handshake


async def test_407_without_body_and_proxy_hanging_up() -> None:
    async def refuse(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n"
        )
        await writer.drain()

    async def hang_up(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with ScriptedProxy(refuse) as proxy:
        with pytest.raises(ProxyAuthError) as info:
            await HTTPProxyConnector(proxy.url).connect(
                asyncio.Protocol, "h", 1, ssl=None, server_hostname=None, timeout=5
            )
        assert str(info.value) == (f"proxy {proxy.url}: authentication required (407 Proxy Authentication Required)")
    async with ScriptedProxy(hang_up) as proxy:
        with pytest.raises(ProxyError, match="closed the connection before answering CONNECT h:1"):
            await HTTPProxyConnector(proxy.url).connect(
                asyncio.Protocol, "h", 1, ssl=None, server_hostname=None, timeout=5
            )


async def test_not_an_http_proxy() -> None:
    async def socks_like(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x05\xff\r\n\r\n")
        await writer.drain()

    async with ScriptedProxy(socks_like) as proxy:
        with pytest.raises(ProxyError, match="not an HTTP proxy"):
            await HTTPProxyConnector(proxy.url).connect(
                asyncio.Protocol, "h", 1, ssl=None, server_hostname=None, timeout=5
            )


async def test_timeout_names_the_hop_and_the_step() -> None:
    async def silent(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with ScriptedProxy(silent) as proxy:
        with pytest.raises(TimeoutError) as info:
            await HTTPProxyConnector(proxy.url).connect(
                asyncio.Protocol, "h", 1, ssl=None, server_hostname=None, timeout=0.3
            )
    assert str(info.value) == f"timed out after 0.3 s: proxy {proxy.url}: waiting for the reply to CONNECT h:1"


async def test_relay_through_scripted_http10_proxy(tcp_echo_server: EchoServer, payload: bytes) -> None:
    async def relay(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 200 Connection established\r\nProxy-agent: scripted\r\n\r\n")
        await _relay_to(tcp_echo_server.port, reader, writer)

    async with ScriptedProxy(relay) as proxy:
        await round_trip(HTTPProxyConnector(proxy.url), "127.0.0.1", tcp_echo_server.port, payload)


def test_url_validation() -> None:
    with pytest.raises(ValueError, match="not an HTTP proxy URL"):
        HTTPProxyConnector("socks5://127.0.0.1:1080")
    with pytest.raises(ValueError, match="without a host"):
        HTTPProxyConnector("http://:3128")
    with pytest.raises(ValueError, match="https:// proxies only"):
        HTTPProxyConnector("http://p:1", ssl=ssl.create_default_context())
    with pytest.raises(ValueError, match="invalid proxy header"):
        HTTPProxyConnector("http://p:1", headers={"X": "a\r\nInjected: 1"})
    assert HTTPProxyConnector("http://p").port == 80
    assert HTTPProxyConnector("https://p").port == 443
    assert repr(HTTPProxyConnector("http://u:pw@p:1")) == "HTTPProxyConnector('http://u:***@p:1')"
