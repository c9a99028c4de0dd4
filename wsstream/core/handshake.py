"""The opening handshake (RFC 6455 section 4): building and checking the upgrade request and the 101 response.

Pure functions over :class:`~wsstream.core.http11.Request` / :class:`~wsstream.core.http11.Response`; the I/O
layers move the bytes. Errors raise :class:`~wsstream.exceptions.HandshakeError` carrying the HTTP status the
server should answer with (``status``: 400, or 426 for an unsupported version).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..exceptions import HandshakeError, InvalidStatus
from .headers import parse_extension_list, parse_token_list
from .http11 import Headers, HeadersLike, Request, Response
from .uri import WebSocketURI

if TYPE_CHECKING:
    from .deflate import Deflate, PerMessageDeflate

__all__ = [
    "Accepted",
    "accept_key",
    "build_request",
    "build_response",
    "check_request",
    "check_response",
    "generate_key",
    "negotiate_extensions",
    "select_subprotocol",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUPPORTED_VERSIONS = ("13", "8")
DEFLATE = "permessage-deflate"


class Accepted(NamedTuple):
    """What a successful handshake agreed on."""

    subprotocol: str | None
    extensions: list[str]
    deflate: PerMessageDeflate | None


def generate_key() -> str:
    """A fresh Sec-WebSocket-Key."""
    return base64.b64encode(os.urandom(16)).decode()


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value for ``key``."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def _fail(message: str, status: int = 400) -> HandshakeError:
    error = HandshakeError(message)
    error.status = status  # type: ignore[attr-defined]
    return error


# ---------------------------------------------------------------------- client side


def build_request(
    uri: WebSocketURI,
    key: str,
    *,
    subprotocols: Sequence[str] | None = None,
    headers: HeadersLike | None = None,
    origin: str | None = None,
    user_agent: str | None = None,
    extensions: str | None = None,
    protocol_version: int = 13,
) -> Request:
    """The client's upgrade request. ``headers`` are added last and may not replace the handshake's own."""
    items = [
        ("Host", uri.host_header),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", str(protocol_version)),
    ]
    if subprotocols:
        items.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
    if extensions:
        items.append(("Sec-WebSocket-Extensions", extensions))
    if origin is not None:
        items.append(("Origin" if protocol_version == 13 else "Sec-WebSocket-Origin", origin))
    if uri.username is not None:
        credentials = f"{uri.username}:{uri.password or ''}".encode()
        items.append(("Authorization", "Basic " + base64.b64encode(credentials).decode()))
    # The handshake's own values are valid by construction; origin and the URI's parts are checked here,
    # the application's extra headers by Headers() itself.
    request_headers = Headers(items) if origin is not None else Headers._trusted(items)
    if headers is not None:
        reserved = {"upgrade", "connection", "sec-websocket-key", "sec-websocket-version"}
        for name, value in Headers(headers).items():
            if name.lower() in reserved:
                raise ValueError(f"header {name} is set by the handshake itself")
            if name.lower() in ("host", "origin", "authorization", "user-agent") and name in request_headers:
                request_headers[name] = value  # an explicit header wins over the derived one
            else:
                request_headers.add(name, value)
    if user_agent and "User-Agent" not in request_headers:
        request_headers.add("User-Agent", user_agent)
    return Request(uri.resource_name, request_headers)


def check_response(
    response: Response,
    key: str,
    *,
    subprotocols: Sequence[str] | None = None,
    deflate: Deflate | None = None,
) -> Accepted:
    """Validate the server's answer to our upgrade request; raises InvalidStatus for a status other than 101."""
    if response.status != 101:
        raise InvalidStatus(response)
    headers = response.headers
    upgrade = [token.lower() for token in parse_token_list(headers.get_all("Upgrade"))]
    if upgrade != ["websocket"]:
        raise HandshakeError(f"invalid Upgrade header in response: {headers.get('Upgrade')!r}")
    if "upgrade" not in (token.lower() for token in parse_token_list(headers.get_all("Connection"))):
        raise HandshakeError(f"invalid Connection header in response: {headers.get('Connection')!r}")
    accept = headers.get_all("Sec-WebSocket-Accept")
    if accept != [accept_key(key)]:
        raise HandshakeError("Sec-WebSocket-Accept does not match our key")
    subprotocol = None
    chosen = parse_token_list(headers.get_all("Sec-WebSocket-Protocol"))
    if chosen:
        if len(chosen) > 1:
            raise HandshakeError("server selected several subprotocols")
        if not subprotocols or chosen[0] not in subprotocols:
            raise HandshakeError(f"server selected subprotocol {chosen[0]!r}, which we did not offer")
        subprotocol = chosen[0]
    codec = None
    extensions = []
    for name, params in parse_extension_list(headers.get_all("Sec-WebSocket-Extensions")):
        if name.lower() != DEFLATE or deflate is None:
            raise HandshakeError(f"server agreed to extension {name!r}, which we did not offer")
        if codec is not None:
            raise HandshakeError("server agreed to permessage-deflate twice")
        codec = deflate.client_accept(params)
        extensions.append(codec.extension)
    return Accepted(subprotocol, extensions, codec)


# ---------------------------------------------------------------------- server side


def check_request(request: Request) -> str:
    """Validate a client's upgrade request; return its Sec-WebSocket-Key.

    The raised HandshakeError's ``status`` is 426 (with the versions we speak) for an unsupported version, else 400.
    """
    headers = request.headers
    if request.method != "GET":
        raise _fail(f"method {request.method} is not GET", 405)
    if "Host" not in headers:
        raise _fail("missing Host header")
    if "websocket" not in (token.lower() for token in parse_token_list(headers.get_all("Upgrade"))):
        raise _fail(f"missing or invalid Upgrade header: {headers.get('Upgrade')!r}", 426)
    if "upgrade" not in (token.lower() for token in parse_token_list(headers.get_all("Connection"))):
        raise _fail(f"missing or invalid Connection header: {headers.get('Connection')!r}")
    versions = headers.get_all("Sec-WebSocket-Version")
    if len(versions) != 1 or versions[0].strip() not in SUPPORTED_VERSIONS:
        raise _fail(f"unsupported Sec-WebSocket-Version {', '.join(versions)!r}", 426)
    keys = headers.get_all("Sec-WebSocket-Key")
    if len(keys) != 1:
        raise _fail("missing or repeated Sec-WebSocket-Key")
    try:
        raw = base64.b64decode(keys[0].strip(), validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 16:
        raise _fail("Sec-WebSocket-Key is not 16 bytes in base64")
    return keys[0].strip()


def offered_subprotocols(request: Request) -> list[str]:
    """The subprotocols the client offered, in its order."""
    return parse_token_list(request.headers.get_all("Sec-WebSocket-Protocol"))


def select_subprotocol(offered: Sequence[str], supported: Sequence[str] | None) -> str | None:
    """The first of the server's ``supported`` subprotocols that the client offered (server preference)."""
    if not supported or not offered:
        return None
    for subprotocol in supported:
        if subprotocol in offered:
            return subprotocol
    return None


def negotiate_extensions(request: Request, deflate: Deflate | None) -> tuple[str | None, PerMessageDeflate | None]:
    """Accept the first acceptable permessage-deflate offer; other extensions are ignored (RFC 6455 9.1)."""
    if deflate is None:
        return None, None
    offers = [
        params
        for name, params in parse_extension_list(request.headers.get_all("Sec-WebSocket-Extensions"))
        if name.lower() == DEFLATE
    ]
    if not offers:
        return None, None
    accepted = deflate.server_accept(offers)
    if accepted is None:
        return None, None
    return accepted


def build_response(
    key: str, subprotocol: str | None = None, extensions: str | None = None, headers: HeadersLike | None = None
) -> Response:
    """The 101 Switching Protocols response."""
    items = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept_key(key))]
    if subprotocol is not None:
        items.append(("Sec-WebSocket-Protocol", subprotocol))
    if extensions:
        items.append(("Sec-WebSocket-Extensions", extensions))
    if headers is not None:
        items += Headers(headers).items()  # validated: they come from the application
    return Response(101, Headers._trusted(items))
