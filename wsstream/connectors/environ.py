"""Proxy settings from the environment, read the way ``requests``, ``httpx``, curl and ``websockets`` users
expect.

For a ``wss://`` (or ``https://``) URI: ``wss_proxy``, then ``https_proxy``, ``socks_proxy``, ``all_proxy``.
For a ``ws://`` (or ``http://``) URI: ``ws_proxy``, then ``http_proxy``, ``socks_proxy``, ``all_proxy``.
Each name is looked up in lower case first, then in upper case; an empty value counts as unset. As in
``urllib``, upper-case ``HTTP_PROXY`` is ignored inside a CGI request (``REQUEST_METHOD`` set), where a client
could set it through a ``Proxy:`` header ("httpoxy"). A value without a scheme is an ``http://`` proxy
(``socks5h://`` for ``socks_proxy``).

``no_proxy`` (or ``NO_PROXY``) is a list separated by commas or spaces of: ``*`` (no proxy at all); host
names, matching themselves and their subdomains (``example.com``, ``.example.com`` and ``*.example.com`` all
match ``example.com`` and ``a.example.com``); IP addresses; CIDR ranges (``10.0.0.0/8``, ``fd00::/8``); any of
these with ``:port`` (``[v6]:port`` for IPv6) to bypass only that port. Loopback (``localhost``,
``*.localhost``, 127.0.0.0/8, ``::1``) and ``ws+unix`` URIs are never proxied.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

from .base import Connector
from .direct import DirectConnector
from .http import HTTPProxyConnector
from .socks import SOCKSProxyConnector

__all__ = ["connector_for_proxy", "is_loopback", "proxy_from_environment"]

_SECURE = {"wss": True, "https": True, "ws": False, "http": False}
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_SOCKS_SCHEMES = frozenset({"socks4", "socks4a", "socks5", "socks5h"})


def proxy_from_environment(uri: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The proxy URL to use for ``uri`` according to ``environ`` (default ``os.environ``), or None for direct.

    ``uri`` is a ``ws``, ``wss``, ``http``, ``https`` or ``ws+unix`` URI; other schemes raise ``ValueError``.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "ws+unix":
        return None
    if scheme not in _SECURE:
        raise ValueError(f"not a ws, wss, http or https URI: {uri!r}")
    host = (parts.hostname or "").rstrip(".")
    if not host or is_loopback(host):
        return None
    env = os.environ if environ is None else environ
    secure = _SECURE[scheme]
    port = parts.port or (443 if secure else 80)
    if _bypassed(host, port, _lookup(env, "no_proxy") or ""):
        return None
    names = ("wss_proxy", "https_proxy") if secure else ("ws_proxy", "http_proxy")
    for name in (*names, "socks_proxy", "all_proxy"):
        value = _lookup(env, name)
        if value:
            if "://" not in value:
                value = ("socks5h://" if name == "socks_proxy" else "http://") + value
            return value
    return None


def connector_for_proxy(proxy: str | None, *, proxy_ssl: ssl.SSLContext | None = None) -> Connector:
    """The connector for a proxy URL (``http``, ``https``, ``socks4``, ``socks4a``, ``socks5``, ``socks5h``);
    None gives a :class:`DirectConnector`. A URL without a scheme is an HTTP proxy. ``proxy_ssl`` is the TLS
    context for an ``https://`` proxy (default: verifying with the system CAs); other kinds ignore it."""
    if proxy is None:
        return DirectConnector()
    if "://" not in proxy:
        proxy = "http://" + proxy
    scheme = proxy.partition("://")[0].lower()
    if scheme in ("http", "https"):
        return HTTPProxyConnector(proxy, ssl=proxy_ssl if scheme == "https" else None)
    if scheme in _SOCKS_SCHEMES:
        return SOCKSProxyConnector(proxy)
    raise ValueError(f"unsupported proxy scheme {scheme!r} (http, https, socks4, socks4a, socks5, socks5h)")


def is_loopback(host: str) -> bool:
    """``host`` (a name or an IP literal, brackets allowed) is this machine's loopback."""
    host = host.strip("[]").rstrip(".").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    address = _ip(host)
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _lookup(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None and not (name == "http_proxy" and "REQUEST_METHOD" in env):
        value = env.get(name.upper())
    return value.strip() if value else None


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None


def _bypassed(host: str, port: int, no_proxy: str) -> bool:
    """``host:port`` matches an entry of ``no_proxy`` (syntax in the module docstring)."""
    host = host.strip("[]").lower()
    address = _ip(host)
    for entry in no_proxy.replace(",", " ").split():
        if entry == "*":
            return True
        entry_host, entry_port = _split_entry(entry.lower())
        if entry_port is not None and entry_port != port:
            continue
        if "/" in entry_host:
            try:
                network = ipaddress.ip_network(entry_host, strict=False)
            except ValueError:
                continue
            if address is not None and address.version == network.version and address in network:
                return True
            continue
        entry_address = _ip(entry_host)
        if entry_address is not None:
            if address == entry_address:
                return True
            continue
        suffix = entry_host.lstrip("*").lstrip(".").rstrip(".")
        if suffix and (host == suffix or host.endswith("." + suffix)):
            return True
    return False


def _split_entry(entry: str) -> tuple[str, int | None]:
    """A ``no_proxy`` entry as (host or CIDR, port or None)."""
    if entry.startswith("["):
        inside, _, rest = entry[1:].partition("]")
        return inside, _port(rest[1:]) if rest.startswith(":") else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        parsed = _port(port)
        return (name, parsed) if parsed is not None else (entry, None)
    return entry, None  # a bare IPv6 address or range, or no port


def _port(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None
