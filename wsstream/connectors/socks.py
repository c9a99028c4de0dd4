"""SOCKS proxies (SOCKS4, SOCKS4a, SOCKS5 with RFC 1929 username/password), speaking through python-socks.

python-socks supplies the message formats and the handshake sequence (its connectors read and write through
any object with ``read``/``read_exactly``/``write``); the byte pipe, DNS, timeouts and errors are ours, which
is what lets a SOCKS hop run over another hop's tunnel. The scheme decides where names are resolved, exactly:
``socks4://`` and ``socks5://`` resolve the target locally, ``socks4a://`` and ``socks5h://`` send the name to
the proxy.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import unquote, urlsplit

import python_socks
from python_socks import ProxyType
from python_socks._abc import AsyncResolver, AsyncSocketStream
from python_socks._connectors.factory_async import create_connector
from python_socks._protocols.errors import ReplyError

from ..exceptions import ProxyAuthError, ProxyError
from .base import Attempt, Pipe, TunnelConnector, format_address, redact
from .direct import open_tcp_pipe

__all__ = ["SOCKSProxyConnector"]

# scheme -> (SOCKS version, the proxy resolves the target's name)
_SCHEMES = {
    "socks4": (4, False),
    "socks4a": (4, True),
    "socks5": (5, False),
    "socks5h": (5, True),
}
DEFAULT_PORT = 1080
# python-socks 3 reads replies with read_exactly(); 2.x read a reply with one read(), which could swallow the
# first tunnelled bytes. Its stream and connector modules are private: versions from 3.0 to 3.2 are tested.
_MIN_PYTHON_SOCKS = (3, 0)


def _python_socks_version() -> tuple[int, ...]:
    version = getattr(python_socks, "__version__", "0")
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


class SOCKSProxyConnector(TunnelConnector):
    """Tunnel through a SOCKS proxy given as
    ``socks4|socks4a|socks5|socks5h://[user[:password]@]host[:port]``.

    The port defaults to 1080; percent-escapes in the user info are decoded. SOCKS4 sends the user as its user
    id; SOCKS5 offers username/password authentication when both are given.
    """

    __slots__ = ("host", "label", "password", "port", "remote_dns", "username", "version")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ValueError(f"not a SOCKS proxy URL (socks4, socks4a, socks5, socks5h): {redact(url)}")
        if not parts.hostname:
            raise ValueError(f"proxy URL without a host: {redact(url)}")
        if _python_socks_version() < _MIN_PYTHON_SOCKS:
            raise RuntimeError(f"SOCKS proxies need python-socks>=3.0 (found {python_socks.__version__})")
        self.version, self.remote_dns = _SCHEMES[scheme]
        self.host = parts.hostname
        self.port = parts.port or DEFAULT_PORT
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.label = redact(url)

    def __repr__(self) -> str:
        return f"SOCKSProxyConnector({self.label!r})"

    @property
    def first_address(self) -> tuple[str, int]:
        return self.host, self.port

    async def open_tunnel(
        self, host: str, port: int, attempt: Attempt, *, via: Pipe | None = None, name: str | None = None
    ) -> Pipe:
        """Ask the proxy to connect to ``host:port``; ``via`` already reaches the proxy (else TCP is
        dialled)."""
        name = name or f"proxy {self.label}"
        pipe = via or await open_tcp_pipe(self.host, self.port, name, attempt)
        try:
            await self._handshake(pipe, host, port, name, attempt)
        except BaseException:
            pipe.abort()
            raise
        return pipe

    async def _handshake(self, pipe: Pipe, host: str, port: int, name: str, attempt: Attempt) -> None:
        target = format_address(host, port)
        attempt.step = f"{name}: SOCKS{self.version} handshake to reach {target}"
        stream = _PipeStream(pipe)
        connector = create_connector(
            proxy_type=ProxyType.SOCKS5 if self.version == 5 else ProxyType.SOCKS4,
            username=self.username,
            password=self.password,
            rdns=self.remote_dns,
            resolver=_LocalResolver(name),
        )
        try:
            await connector.connect(stream=stream, host=host.strip("[]"), port=port)
        except ReplyError as exc:
            code = exc.error_code
            if code is not None:
                raise ProxyError(f"{name}: cannot reach {target}: {exc} (SOCKS reply {code:#04x})") from exc
            text = str(exc)
            if "authentication" in text.lower():
                raise ProxyAuthError(f"{name}: {text}") from exc
            raise ProxyError(f"{name}: bad SOCKS{self.version} reply: {text}") from exc
        except asyncio.IncompleteReadError as exc:
            # After the method selection and the credentials (two writes), a close means the login was
            # refused: several servers hang up instead of answering RFC 1929's failure status.
            if self.version == 5 and self.username and self.password and stream.writes == 2:
                raise ProxyAuthError(f"{name}: hung up after the credentials (refused?)") from exc
            raise ProxyError(f"{name}: hung up during the SOCKS{self.version} handshake") from exc
        except UnicodeEncodeError as exc:
            raise ProxyError(f"{name}: SOCKS credentials and names must be ASCII") from exc


class _PipeStream(AsyncSocketStream):
    """python-socks' stream interface over a :class:`Pipe`; counts writes to know the handshake's phase."""

    __slots__ = ("pipe", "writes")

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.writes = 0

    async def write(self, data: bytes) -> None:
        self.writes += 1
        self.pipe.write(data)

    async def read(self, max_bytes: int = 65536) -> bytes:
        return await self.pipe.read_some(max_bytes)

    async def read_exactly(self, n: int) -> bytes:
        return await self.pipe.read_exactly(n)

    async def close(self) -> None:
        self.pipe.abort()


class _LocalResolver(AsyncResolver):
    """Local DNS for ``socks4://`` and ``socks5://``; a failure names the hop."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> tuple[socket.AddressFamily, str]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ProxyError(f"{self.name}: cannot resolve {host!r} locally (DNS: {exc.strerror or exc})") from exc
        if not infos:
            raise ProxyError(f"{self.name}: cannot resolve {host!r} locally (no address)")
        # IPv4 first, as python-socks does: SOCKS4 has no other, and more proxies reach out over IPv4.
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        family_found, _, _, _, address = infos[0]
        return family_found, str(address[0])
