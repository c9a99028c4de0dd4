"""The client: :func:`connect` opens a WebSocket connection, directly or through a connector (proxy, unix socket).

``connect(...)`` can be awaited (``ws = await connect(uri)``) or used as an async context manager
(``async with connect(uri) as ws:``), which closes the connection on the way out.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import ssl as ssl_module
import sys
import urllib.parse
from collections.abc import Awaitable, Generator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from . import __version__
from .connection import WebSocket
from .connectors import UnixConnector, connector_for_proxy, proxy_from_environment
from .connectors.base import format_address
from .connectors.direct import HAPPY_EYEBALLS_DELAY, happy_eyeballs
from .core import handshake
from .core.http11 import HeadersLike
from .core.uri import WebSocketURI, parse_uri
from .exceptions import HandshakeError, InvalidStatus, InvalidURI

if TYPE_CHECKING:
    from .connectors import Connector
    from .core.deflate import Deflate

__all__ = ["connect"]

_REDIRECTS = frozenset((301, 302, 303, 307, 308))
T = TypeVar("T")


def _is_ip_literal(host: str) -> bool:
    """One address, nothing to race: happy eyeballs would only add tasks (asyncio's staggered race)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _default_ssl_context() -> ssl_module.SSLContext:
    """The verifying context for wss:// without ssl=: built once (loading the CA store takes milliseconds)."""
    return ssl_module.create_default_context()


def resolve_compression(compression: Any) -> Deflate | None:
    """``"deflate"`` -> default :class:`Deflate` options, a Deflate as is, None -> no compression."""
    if compression is None or compression is False:
        return None
    from .core.deflate import Deflate

    if compression == "deflate" or compression is True:
        return Deflate()
    if isinstance(compression, Deflate):
        return compression
    raise ValueError(f"compression must be None, 'deflate' or a wsstream.Deflate, not {compression!r}")


class connect:
    """Open a WebSocket connection to ``uri``; see ``docs/API`` for every option and its default.

    ``await connect(uri)`` returns an open :class:`WebSocket`; ``async with connect(uri) as ws`` also closes it.
    """

    def __init__(
        self,
        uri: str,
        *,
        subprotocols: Sequence[str] | None = None,
        headers: HeadersLike | None = None,
        origin: str | None = None,
        user_agent: str | None = f"wsstream/{__version__}",
        compression: Literal["deflate"] | Deflate | None = "deflate",
        ssl: ssl_module.SSLContext | bool | None = None,
        server_hostname: str | None = None,
        proxy: str | Literal[True] | None = True,
        connector: Connector | None = None,
        open_timeout: float | None = 10.0,
        close_timeout: float | None = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        max_size: int | None = 100 * 2**20,
        max_queue: int | None = 16,
        write_limit: int = 64 * 1024,
        follow_redirects: bool = False,
        max_redirects: int = 10,
        protocol_version: int = 13,
        skip_utf8_validation: bool = False,
        auto_pong: bool = True,
    ) -> None:
        if protocol_version not in (8, 13):
            raise ValueError("protocol_version must be 13 or 8")
        self.uri = uri
        self.options: dict[str, Any] = dict(
            subprotocols=subprotocols,
            headers=headers,
            origin=origin,
            user_agent=user_agent,
            protocol_version=protocol_version,
        )
        self.deflate = resolve_compression(compression)
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.proxy = proxy
        self.connector = connector
        self.open_timeout = open_timeout
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.ws_options: dict[str, Any] = dict(
            close_timeout=close_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_size=max_size,
            max_queue=max_queue,
            write_limit=write_limit,
            skip_utf8_validation=skip_utf8_validation,
            auto_pong=auto_pong,
        )
        self._ws: WebSocket | None = None
        self._deadline: float | None = None

    def __await__(self) -> Generator[Any, None, WebSocket]:
        return self._connect_with_timeout().__await__()

    async def __aenter__(self) -> WebSocket:
        self._ws = await self
        return self._ws

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def _connect_with_timeout(self) -> WebSocket:
        # open_timeout bounds the whole connect; each step gets what is left of it so that a timeout names the
        # step (and the proxy hop) that used it up.
        loop = asyncio.get_running_loop()
        self._deadline = None if self.open_timeout is None else loop.time() + self.open_timeout
        return await self._connect()

    async def _within(self, work: Awaitable[T], step: str) -> T:
        """Await ``work`` before the deadline; a timeout names ``step``."""
        remaining = self._remaining()
        if remaining is None:
            return await work
        if sys.version_info >= (3, 11):
            try:
                async with asyncio.timeout(remaining) as scope:
                    return await work
            except TimeoutError:
                if not scope.expired():
                    raise
        else:
            try:
                return await asyncio.wait_for(work, remaining)
            except asyncio.TimeoutError:
                pass
        raise TimeoutError(f"timed out after {self.open_timeout:g} s: {step}")

    def _remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    async def _connect(self) -> WebSocket:
        uri_text = self.uri
        wsuri = parse_uri(uri_text)
        for _ in range(self.max_redirects + 1):
            ws = await self._open_once(wsuri)
            response = ws.response
            assert response is not None
            if ws._conn is not None:  # handshake accepted (it may already be closing)
                return ws
            ws.abort()
            location = response.headers.get("Location")
            if not (self.follow_redirects and response.status in _REDIRECTS and location):
                raise InvalidStatus(response)
            uri_text = urllib.parse.urljoin(uri_text.replace("ws", "http", 1), location)
            new_uri = parse_uri(uri_text)
            if new_uri.origin != wsuri.origin or (wsuri.secure and not new_uri.secure):
                # Never carry credentials to another origin or over a downgraded connection.
                new_uri = WebSocketURI(
                    new_uri.secure, new_uri.host, new_uri.port, new_uri.resource_name, unix_path=new_uri.unix_path
                )
                self._strip_credentials()
            wsuri = new_uri
        raise HandshakeError(f"more than {self.max_redirects} redirects")

    def _strip_credentials(self) -> None:
        headers = self.options.get("headers")
        if headers is not None:
            from .core.http11 import Headers

            cleaned = Headers(headers)
            del cleaned["Authorization"]
            del cleaned["Cookie"]
            self.options["headers"] = cleaned

    async def _open_once(self, wsuri: WebSocketURI) -> WebSocket:
        """One connection attempt; returns an open WebSocket, or one whose response is a redirect."""
        ssl_context: ssl_module.SSLContext | None = None
        if wsuri.secure:
            ssl_context = self.ssl if isinstance(self.ssl, ssl_module.SSLContext) else _default_ssl_context()
        elif self.ssl not in (None, False):
            raise InvalidURI(f"ssl= given for the insecure URI {self.uri!r}; use wss://")
        server_hostname = self.server_hostname or (wsuri.host if ssl_context is not None else None)

        def factory() -> WebSocket:
            return WebSocket(is_client=True, **self.ws_options)

        connector = self.connector
        if connector is None:
            if wsuri.unix_path is not None:
                connector = UnixConnector(wsuri.unix_path)
            elif self.proxy is not None:
                proxy_url = proxy_from_environment(self._uri_for(wsuri)) if self.proxy is True else self.proxy
                if proxy_url is not None:
                    connector = connector_for_proxy(proxy_url)
        if connector is None:
            # The loop's own connect under the shared deadline: no extra task, unlike a connector's timeout.
            loop = asyncio.get_running_loop()
            _, ws = await self._within(
                loop.create_connection(
                    factory, wsuri.host, wsuri.port, ssl=ssl_context, server_hostname=server_hostname,
                    **happy_eyeballs(loop, None if _is_ip_literal(wsuri.host) else HAPPY_EYEBALLS_DELAY),
                ),
                f"connecting to {format_address(wsuri.host, wsuri.port)}",
            )
        else:
            _, protocol = await connector.connect(
                factory, wsuri.host, wsuri.port, ssl=ssl_context, server_hostname=server_hostname,
                timeout=self._remaining(),
            )
            assert isinstance(protocol, WebSocket)
            ws = protocol
        try:
            key = handshake.generate_key()
            request = handshake.build_request(
                wsuri,
                key,
                extensions=self.deflate.client_offer() if self.deflate is not None else None,
                **self.options,
            )
            response = await self._within(
                ws._client_handshake(request), f"waiting for the opening handshake with {self.uri}"
            )
            if response.status in _REDIRECTS and self.follow_redirects:
                return ws
            accepted = handshake.check_response(
                response, key, subprotocols=self.options["subprotocols"], deflate=self.deflate
            )
        except BaseException:
            ws.abort()
            raise
        ws._open(accepted, compression_limit=self.deflate.concurrency_limit if self.deflate else 10)
        return ws

    @staticmethod
    def _uri_for(wsuri: WebSocketURI) -> str:
        scheme = "wss" if wsuri.secure else "ws"
        host = f"[{wsuri.host}]" if ":" in wsuri.host else wsuri.host
        return f"{scheme}://{host}:{wsuri.port}{wsuri.resource_name}"
