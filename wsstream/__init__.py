"""wsstream: a fast asyncio WebSocket client and server that doubles as a byte stream.

Every public name is importable from here; see ``docs/`` and the README.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .broadcast import broadcast
from .client import connect
from .connection import WebSocket
from .connectors import (
    Connector,
    DirectConnector,
    HTTPProxyConnector,
    ProxyChain,
    SOCKSProxyConnector,
    UnixConnector,
    proxy_from_environment,
)
from .core.deflate import Deflate
from .core.http11 import Headers, Request, Response
from .core.mask import SPEEDUPS
from .core.protocol import State
from .exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    InvalidStatus,
    InvalidURI,
    PayloadTooBig,
    ProtocolError,
    ProxyAuthError,
    ProxyError,
    ProxyStatusError,
    WebSocketError,
)
from .server import Server, WebSocketServer, serve
from .streams import WebSocketTransport, create_connection, open_connection, open_stream, start_server

__all__ = [
    "SPEEDUPS",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Connector",
    "Deflate",
    "DirectConnector",
    "HTTPProxyConnector",
    "HandshakeError",
    "Headers",
    "InvalidStatus",
    "InvalidURI",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyAuthError",
    "ProxyChain",
    "ProxyError",
    "ProxyStatusError",
    "Request",
    "Response",
    "SOCKSProxyConnector",
    "Server",
    "State",
    "UnixConnector",
    "WebSocket",
    "WebSocketError",
    "WebSocketServer",
    "WebSocketTransport",
    "__version__",
    "broadcast",
    "connect",
    "create_connection",
    "open_connection",
    "open_stream",
    "proxy_from_environment",
    "serve",
    "start_server",
]
