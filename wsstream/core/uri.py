"""WebSocket URIs: ``ws://``, ``wss://``, ``ws+unix:///path/to.sock:/request/path``; ``http(s)://`` are taken
as ``ws(s)://``. Userinfo becomes HTTP Basic credentials."""

from __future__ import annotations

import dataclasses
import urllib.parse

from ..exceptions import InvalidURI

__all__ = ["WebSocketURI", "parse_uri"]

_SCHEMES = {"ws": False, "wss": True, "http": False, "https": True, "ws+unix": False, "wss+unix": True}


@dataclasses.dataclass(frozen=True)
class WebSocketURI:
    """A parsed WebSocket URI."""

    secure: bool
    host: str  # without brackets for IPv6; "localhost" for unix sockets
    port: int
    resource_name: str  # path and query, as sent in the request line
    username: str | None = None
    password: str | None = None
    unix_path: str | None = None

    @property
    def host_header(self) -> str:
        """The Host header value: the port is left out when it is the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default or self.unix_path else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        """scheme://host[:port], used to tell same-origin redirects apart."""
        return f"{'wss' if self.secure else 'ws'}://{self.host_header}"


def parse_uri(uri: str) -> WebSocketURI:
    """Parse and validate ``uri``; raise :class:`InvalidURI` when it is not a WebSocket URI."""
    try:
        parsed = urllib.parse.urlsplit(uri)
    except ValueError as exc:
        raise InvalidURI(f"{uri!r} is not a valid URI: {exc}") from None
    scheme = parsed.scheme.lower()
    if scheme not in _SCHEMES:
        raise InvalidURI(f"{uri!r} is not a WebSocket URI (scheme must be ws, wss or ws+unix)")
    if parsed.fragment or "#" in uri:
        raise InvalidURI(f"{uri!r} has a fragment, which WebSocket URIs may not have")
    secure = _SCHEMES[scheme]
    if scheme.endswith("+unix"):
        # ws+unix:///path/to.sock:/request/path  (the request path defaults to "/")
        sock_path, sep, resource = parsed.path.partition(":")
        if not sock_path:
            raise InvalidURI(f"{uri!r} names no unix socket path")
        resource = (resource if sep else "") or "/"
        if parsed.query:
            resource += "?" + parsed.query
        return WebSocketURI(secure, "localhost", 443 if secure else 80, resource, unix_path=sock_path)
    try:
        host = parsed.hostname
        port = parsed.port
    except ValueError as exc:
        raise InvalidURI(f"{uri!r}: {exc}") from None
    if not host:
        raise InvalidURI(f"{uri!r} has no host")
    if any(c in host for c in " \r\n\t/\\"):
        raise InvalidURI(f"{uri!r} has an invalid host")
    resource = parsed.path or "/"
    if parsed.query:
        resource += "?" + parsed.query
    if any(c in resource for c in " \r\n"):
        raise InvalidURI(f"{uri!r} has whitespace in its path")
    username = password = None
    if parsed.username is not None:
        username = urllib.parse.unquote(parsed.username)
        password = urllib.parse.unquote(parsed.password or "")
    return WebSocketURI(
        secure, host, port or (443 if secure else 80), resource, username=username, password=password
    )
