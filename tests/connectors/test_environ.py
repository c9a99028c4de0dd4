"""Proxy settings from the environment: which variable wins, ``no_proxy``, loopback; and real connections made
from nothing but environment variables (squid and tiny-proxy resolve TEST_HOSTNAME to 127.0.0.1)."""

from __future__ import annotations

import pytest

from tests.connectors.support import PASSWORD, USER, Certs, EchoServer, round_trip
from tests.proxy_servers import TEST_HOSTNAME, ProxyServer
from wsstream.connectors import (
    DirectConnector,
    HTTPProxyConnector,
    SOCKSProxyConnector,
    connector_for_proxy,
    is_loopback,
    proxy_from_environment,
)


def pick(uri: str, **env: str) -> str | None:
    return proxy_from_environment(uri, env)


def test_scheme_specific_variables_win() -> None:
    env = {
        "wss_proxy": "http://wss:1",
        "https_proxy": "http://https:1",
        "ws_proxy": "http://ws:1",
        "http_proxy": "http://http:1",
        "all_proxy": "socks5h://all:1",
    }
    assert pick("wss://example.com/", **env) == "http://wss:1"
    assert pick("ws://example.com/", **env) == "http://ws:1"
    assert pick("https://example.com/", **env) == "http://wss:1"  # https:// is taken as wss://
    del env["wss_proxy"], env["ws_proxy"]
    assert pick("wss://example.com/", **env) == "http://https:1"
    assert pick("ws://example.com/", **env) == "http://http:1"
    del env["https_proxy"], env["http_proxy"]
    assert pick("wss://example.com/", **env) == "socks5h://all:1"
    assert pick("ws://example.com/", **env) == "socks5h://all:1"
    assert pick("ws://example.com/") is None


def test_lower_case_before_upper_case_and_empty_is_unset() -> None:
    assert pick("wss://e.com", HTTPS_PROXY="http://upper:1", https_proxy="http://lower:1") == "http://lower:1"
    assert pick("wss://e.com", HTTPS_PROXY="http://upper:1") == "http://upper:1"
    assert pick("wss://e.com", https_proxy="", ALL_PROXY="http://all:1") == "http://all:1"
    assert pick("ws://e.com", WS_PROXY="http://ws:1") == "http://ws:1"


def test_httpoxy_upper_case_http_proxy_ignored_in_cgi() -> None:
    assert pick("ws://e.com", HTTP_PROXY="http://evil:1", REQUEST_METHOD="GET") is None
    assert pick("ws://e.com", http_proxy="http://ok:1", REQUEST_METHOD="GET") == "http://ok:1"


def test_values_without_scheme() -> None:
    assert pick("ws://e.com", http_proxy="proxy.corp:3128") == "http://proxy.corp:3128"
    assert pick("ws://e.com", socks_proxy="proxy.corp:1080") == "socks5h://proxy.corp:1080"


@pytest.mark.parametrize(
    "uri",
    [
        "ws://localhost:8080/",
        "wss://127.0.0.1/",
        "ws://127.9.8.7/",
        "ws://[::1]:80/",
        "ws://app.localhost/",
        "ws://LOCALHOST./",
        "ws://[::ffff:127.0.0.1]/",
        "ws+unix:///run/app.sock:/path",
    ],
)
def test_loopback_and_unix_are_never_proxied(uri: str) -> None:
    assert pick(uri, all_proxy="http://p:1", ws_proxy="http://p:1", wss_proxy="http://p:1") is None


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.com") and not is_loopback("localhost.com")


@pytest.mark.parametrize(
    ("no_proxy", "uri", "bypassed"),
    [
        ("*", "wss://anything.example/", True),
        ("example.com", "wss://example.com/", True),
        ("example.com", "wss://api.example.com/", True),
        ("example.com", "wss://notexample.com/", False),
        (".example.com", "wss://example.com/", True),
        (".example.com", "wss://a.b.example.com/", True),
        ("*.example.com", "wss://a.example.com/", True),
        ("EXAMPLE.com", "wss://Api.Example.COM./", True),
        ("other.org, example.com", "ws://x.example.com/", True),
        ("other.org example.com", "ws://x.example.com/", True),
        ("example.com:8443", "wss://example.com:8443/", True),
        ("example.com:8443", "wss://example.com/", False),
        ("example.com:443", "wss://example.com/", True),  # default port
        ("example.com:80", "ws://example.com/", True),
        ("10.0.0.0/8", "ws://10.1.2.3/", True),
        ("10.0.0.0/8", "ws://11.1.2.3/", False),
        ("10.0.0.0/8", "ws://ten.example/", False),
        ("192.168.1.7", "ws://192.168.1.7:9000/", True),
        ("fd00::/8", "ws://[fd12::1]/", True),
        ("fd00::/8", "ws://[fe80::1]/", False),
        ("[2001:db8::1]:8080", "ws://[2001:db8::1]:8080/", True),
        ("[2001:db8::1]:8080", "ws://[2001:db8::1]:8081/", False),
        ("2001:db8::1", "ws://[2001:db8::1]/", True),
        ("", "ws://example.com/", False),
    ],
)
def test_no_proxy(no_proxy: str, uri: str, bypassed: bool) -> None:
    for name in ("no_proxy", "NO_PROXY"):
        result = pick(uri, **{name: no_proxy, "all_proxy": "http://p:1"})
        assert result == (None if bypassed else "http://p:1")


def test_bad_scheme() -> None:
    with pytest.raises(ValueError, match="not a ws, wss"):
        proxy_from_environment("ftp://example.com/", {})


def test_connector_for_proxy() -> None:
    assert isinstance(connector_for_proxy(None), DirectConnector)
    http = connector_for_proxy("http://u:p@proxy:3128")
    assert isinstance(http, HTTPProxyConnector) and not http.secure and http.port == 3128
    https = connector_for_proxy("HTTPS://proxy")
    assert isinstance(https, HTTPProxyConnector) and https.secure and https.port == 443
    assert isinstance(connector_for_proxy("proxy:3128"), HTTPProxyConnector)
    for scheme, version, remote in [
        ("socks4", 4, False),
        ("socks4a", 4, True),
        ("socks5", 5, False),
        ("socks5h", 5, True),
    ]:
        socks = connector_for_proxy(f"{scheme}://proxy:1080")
        assert isinstance(socks, SOCKSProxyConnector)
        assert (socks.version, socks.remote_dns) == (version, remote)
    with pytest.raises(ValueError, match="unsupported proxy scheme 'ftp'"):
        connector_for_proxy("ftp://proxy:21")


# From the environment to a real proxy, end to end.


async def from_env(uri: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> HTTPProxyConnector | SOCKSProxyConnector:
    for name in (
        "ws_proxy",
        "wss_proxy",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "socks_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    proxy = proxy_from_environment(uri)
    assert proxy is not None
    connector = connector_for_proxy(proxy)
    assert isinstance(connector, (HTTPProxyConnector, SOCKSProxyConnector))
    return connector


async def test_env_http_proxy_with_auth_ws_and_wss(
    squid: ProxyServer,
    tcp_echo_server: EchoServer,
    tls_echo_server: EchoServer,
    certs: Certs,
    payload: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = squid.url("http", role="auth", user=USER, password=PASSWORD)
    ws = await from_env(f"ws://{TEST_HOSTNAME}:{tcp_echo_server.port}/", monkeypatch, HTTP_PROXY=proxy)
    await round_trip(ws, TEST_HOSTNAME, tcp_echo_server.port, payload)
    wss = await from_env(f"wss://{TEST_HOSTNAME}:{tls_echo_server.port}/", monkeypatch, https_proxy=proxy)
    await round_trip(wss, TEST_HOSTNAME, tls_echo_server.port, payload, ssl_context=certs.client_context())


async def test_env_https_proxy_for_wss(
    squid: ProxyServer,
    tls_echo_server: EchoServer,
    certs: Certs,
    payload: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uri = f"wss://{TEST_HOSTNAME}:{tls_echo_server.port}/"
    await from_env(uri, monkeypatch, wss_proxy=squid.url("https", role="tls"), http_proxy="http://127.0.0.1:1")
    # The proxy's certificate is from the test CA.
    connector = connector_for_proxy(proxy_from_environment(uri), proxy_ssl=certs.client_context())
    await round_trip(connector, TEST_HOSTNAME, tls_echo_server.port, payload, ssl_context=certs.client_context())


async def test_env_all_proxy_socks5h(
    tiny_socks5_auth: ProxyServer, tcp_echo_server: EchoServer, payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"ws://{TEST_HOSTNAME}:{tcp_echo_server.port}/"
    proxy = tiny_socks5_auth.url("socks5h", user=USER, password=PASSWORD)
    connector = await from_env(uri, monkeypatch, ALL_PROXY=proxy, no_proxy="example.org,10.0.0.0/8")
    await round_trip(connector, TEST_HOSTNAME, tcp_echo_server.port, payload)
