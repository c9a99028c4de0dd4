"""Connectors without a proxy: TCP (with happy eyeballs) and Unix sockets; and how a proxy hop dials its
proxy.

Direct connections keep asyncio's own errors (``OSError``, ``ssl.SSLError``) so they read exactly as
``loop.create_connection``'s do; a proxy's dial failures become :class:`~wsstream.exceptions.ProxyError`
naming the proxy.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl as ssl_module
from collections.abc import Callable
from typing import Any

from ..exceptions import ProxyError
from .base import Attempt, Pipe, format_address, run_bounded

__all__ = ["DirectConnector", "UnixConnector", "open_tcp_pipe"]

# RFC 8305 recommends 250 ms between connection attempts to successive addresses.
HAPPY_EYEBALLS_DELAY = 0.25


def happy_eyeballs(loop: asyncio.AbstractEventLoop, delay: float | None) -> dict[str, Any]:
    """The ``happy_eyeballs_delay`` argument for loops that take it (asyncio's own; uvloop has none)."""
    return {"happy_eyeballs_delay": delay} if isinstance(loop, asyncio.BaseEventLoop) else {}


class DirectConnector:
    """Connect straight to the origin over TCP, trying IPv6 and IPv4 addresses in parallel (RFC 8305)."""

    __slots__ = ("happy_eyeballs_delay",)

    def __init__(self, *, happy_eyeballs_delay: float | None = HAPPY_EYEBALLS_DELAY) -> None:
        self.happy_eyeballs_delay = happy_eyeballs_delay

    def __repr__(self) -> str:
        return "DirectConnector()"

    async def connect(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> tuple[asyncio.Transport, asyncio.Protocol]:
        """See :class:`~wsstream.connectors.Connector`; failures are asyncio's own ``OSError``s."""
        attempt = Attempt(timeout)
        attempt.step = f"connecting to {format_address(host, port)}"
        loop = asyncio.get_running_loop()
        transport, protocol = await run_bounded(
            attempt,
            loop.create_connection(
                protocol_factory,
                host,
                port,
                ssl=ssl,
                server_hostname=(server_hostname or host) if ssl is not None else None,
                **happy_eyeballs(loop, self.happy_eyeballs_delay),
            ),
        )
        return transport, protocol


class UnixConnector:
    """Connect to a Unix domain socket at ``path``; the host and port given to ``connect`` are ignored."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"UnixConnector({self.path!r})"

    async def connect(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> tuple[asyncio.Transport, asyncio.Protocol]:
        """See :class:`~wsstream.connectors.Connector`. With ``ssl``, the certificate is checked against
        ``server_hostname`` or else ``host``."""
        attempt = Attempt(timeout)
        attempt.step = f"connecting to unix socket {self.path}"
        loop = asyncio.get_running_loop()
        transport, protocol = await run_bounded(
            attempt,
            loop.create_unix_connection(
                protocol_factory,
                self.path,
                ssl=ssl,
                server_hostname=(server_hostname or host) if ssl is not None else None,
            ),
        )
        return transport, protocol


async def open_tcp_pipe(host: str, port: int, name: str, attempt: Attempt) -> Pipe:
    """A :class:`Pipe` over a new TCP connection to a proxy; failures are ``ProxyError`` naming the hop."""
    attempt.step = f"{name}: connecting"
    loop = asyncio.get_running_loop()
    try:
        _, pipe = await loop.create_connection(Pipe, host, port, **happy_eyeballs(loop, HAPPY_EYEBALLS_DELAY))
    except socket.gaierror as exc:
        raise ProxyError(f"{name}: cannot resolve proxy host {host!r} (DNS: {exc.strerror or exc})") from exc
    except OSError as exc:
        raise ProxyError(f"{name}: {describe_os_error(exc)}") from exc
    return pipe


def describe_os_error(exc: OSError) -> str:
    """A few words for a connect failure: "connection refused", "network unreachable", ..."""
    if isinstance(exc, ConnectionRefusedError) or (
        # create_connection folds failed attempts on several addresses into one OSError("Multiple exceptions:
        # ...").
        exc.errno is None and f"[Errno {errno.ECONNREFUSED}]" in str(exc)
    ):
        return "connection refused"
    if exc.errno == errno.ENETUNREACH:
        return "network unreachable"
    if exc.errno == errno.EHOSTUNREACH:
        return "host unreachable"
    if isinstance(exc, TimeoutError):
        return "connection timed out"
    return f"cannot connect: {exc.strerror or exc}"
