"""The exceptions wsstream raises; every one is a subclass of :class:`WebSocketError`.

This module sits below every layer (the sans-I/O core included) and imports nothing from wsstream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core.http11 import Response

__all__ = [
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "HandshakeError",
    "InvalidStatus",
    "InvalidURI",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyAuthError",
    "ProxyError",
    "ProxyStatusError",
    "WebSocketError",
]


class WebSocketError(Exception):
    """Base class of every exception raised by wsstream."""


class InvalidURI(WebSocketError, ValueError):
    """The URI is not a valid ws://, wss:// or ws+unix:// URI (or http(s)://, taken as ws(s)://)."""


class HandshakeError(WebSocketError):
    """The opening handshake failed: a malformed or refused request or response."""


class InvalidStatus(HandshakeError):
    """The server answered the upgrade request with a status other than 101 (ws's "unexpected-response").

    ``response`` carries the status, headers and (bounded) body.
    """

    def __init__(self, response: Response, message: str | None = None) -> None:
        self.response = response
        super().__init__(message or f"server rejected WebSocket connection: HTTP {response.status}")


class ProxyError(WebSocketError, OSError):
    """A proxy hop failed: it could not be reached, refused the tunnel or answered garbage."""


class ProxyAuthError(ProxyError):
    """The proxy refused our credentials (HTTP 407, SOCKS authentication failure)."""


class ProxyStatusError(ProxyError):
    """The HTTP proxy answered CONNECT with a non-2xx status other than 407."""

    def __init__(self, message: str, status: int, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class ConnectionClosed(WebSocketError):
    """The connection is closed; ``code`` and ``reason`` are what the peer sent (1006 when nothing was)."""

    def __init__(self, code: int | None, reason: str = "", *args: Any) -> None:
        self.code = code
        self.reason = reason
        super().__init__(code, reason, *args)

    def __str__(self) -> str:
        if self.code is None:
            return "connection closed"
        if self.reason:
            return f"connection closed: {self.code} {self.reason}"
        return f"connection closed: {self.code}"


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed normally (1000 or 1001)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed abnormally: a protocol error, an abort, or a close code other than 1000/1001."""


class ProtocolError(WebSocketError):
    """The peer broke RFC 6455; ``code`` is the close code the connection is failed with."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


class PayloadTooBig(ProtocolError):
    """A message (possibly once inflated) is larger than ``max_size``: the connection is failed with 1009."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 1009)
