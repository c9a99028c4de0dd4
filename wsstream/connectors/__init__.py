"""Connectors: how a client reaches the origin server's byte pipe (the role of ``ws``'s agents).

A :class:`Connector` has the shape of ``loop.create_connection``. Built in: :class:`DirectConnector` (TCP,
happy eyeballs), :class:`UnixConnector`, :class:`HTTPProxyConnector` (CONNECT over ``http://`` or
``https://``), :class:`SOCKSProxyConnector` (SOCKS4/4a/5/5h) and :class:`ProxyChain`.
:func:`proxy_from_environment` and :func:`connector_for_proxy` turn ``connect(proxy=...)`` into one of them.
See ``docs/connectors.md``.
"""

from __future__ import annotations

from .base import Connector
from .chain import ProxyChain
from .direct import DirectConnector, UnixConnector
from .environ import connector_for_proxy, is_loopback, proxy_from_environment
from .http import HTTPProxyConnector, ProxyAuthStatusError
from .socks import SOCKSProxyConnector

__all__ = [
    "Connector",
    "DirectConnector",
    "HTTPProxyConnector",
    "ProxyAuthStatusError",
    "ProxyChain",
    "SOCKSProxyConnector",
    "UnixConnector",
    "connector_for_proxy",
    "is_loopback",
    "proxy_from_environment",
]
