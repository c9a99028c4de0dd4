"""One-line descriptions of failures for ``wsstream: <reason>`` messages (no tracebacks for expected failures)."""

from __future__ import annotations

import asyncio
import socket
import ssl

from ..exceptions import ConnectionClosed, InvalidStatus, InvalidURI, ProxyError, WebSocketError

__all__ = ["Interrupted", "describe"]


class Interrupted(Exception):
    """A signal arrived before there was a connection to close gracefully (exit status 130)."""

#: Wording for close codes that arrive without a reason (RFC 6455 7.4.1).
CLOSE_CODE_NAMES = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status code",
    1006: "connection lost without a Close frame",
    1007: "invalid payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    1015: "TLS handshake failure",
}


def _errno_text(exc: OSError) -> str:
    if exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]  # "Connection reset by peer" mid-sentence
    return str(exc) or type(exc).__name__


def describe(exc: BaseException, target: str | None = None) -> str:
    """A one-line reason for ``exc``; ``target`` (``host:port``) names what we were reaching for."""
    where = f": {target}" if target else ""
    if isinstance(exc, ConnectionClosed):
        code = exc.code if exc.code is not None else 1006
        return f"closed {code} {exc.reason or CLOSE_CODE_NAMES.get(code, '')}".rstrip()
    if isinstance(exc, InvalidStatus):
        status = exc.response.status
        return f"server refused the WebSocket upgrade{where}: HTTP {status}"
    if isinstance(exc, InvalidURI):
        return f"invalid URI: {exc}"
    if isinstance(exc, ProxyError):
        return f"proxy error: {exc}"
    if isinstance(exc, WebSocketError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed{where}: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error{where}: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused{where}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve{where}: {exc.strerror or exc}"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return f"timed out{where}" + (f": {exc}" if str(exc) and target is None else "")
    if isinstance(exc, OSError):
        if exc.errno is None and "Multiple exceptions" in str(exc) and "refused" in str(exc):
            return f"connection refused{where}"  # every address of a multi-address host refused
        return f"{_errno_text(exc)}{where}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
