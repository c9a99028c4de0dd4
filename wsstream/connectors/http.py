"""HTTP CONNECT proxies (RFC 9110 section 9.3.6), over plain TCP (``http://``) or TLS to the proxy
(``https://``).

CONNECT is used for ``ws://`` as well as ``wss://``: a forwarding GET would let the proxy rewrite the upgrade.
Basic credentials from the proxy URL are sent with the first request (no 407 round trip). Any 2xx opens the
tunnel; whatever follows the reply's head belongs to the tunnel and is kept. A refused CONNECT closes the
connection: no TLS handshake is tried after it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import re
import ssl as ssl_module
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

from ..exceptions import ProxyAuthError, ProxyError, ProxyStatusError
from .base import Attempt, Pipe, TunnelConnector, format_address, redact
from .direct import open_tcp_pipe

__all__ = ["HTTPProxyConnector", "ProxyAuthStatusError"]

# A CONNECT reply is a status line and a few fields; a proxy sending more than this is not one we can trust.
MAX_REPLY_HEAD = 2**16
# How much of a refusal's body goes into the exception (``.body``), and how long to wait for it to arrive.
BODY_PREVIEW = 8192
BODY_GRACE = 1.0

_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) +(\d{3})(?: +([^\r\n]*))?")
_INVISIBLE = re.compile(r"<(head|script|style)\b.*?(</\1\s*>|$)|<!--.*?(-->|$)", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>?")
_CHUNK_SIZE_LINE = re.compile(rb"[0-9A-Fa-f]+(?:;[^\r\n]*)?\r?\n")

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class ProxyAuthStatusError(ProxyAuthError, ProxyStatusError):
    """An HTTP proxy refused the credentials (407, or 401 as tinyproxy answers): both an auth and a status
    error."""


class HTTPProxyConnector(TunnelConnector):
    """Tunnel through an HTTP proxy with CONNECT.

    ``url`` is ``http://[user:password@]host[:port]`` (port 80 by default) or ``https://...`` (443) for TLS to
    the proxy; percent-escapes in the user info are decoded. ``headers`` are added to the CONNECT request (a
    ``Proxy-Authorization`` there replaces the one built from the URL). ``ssl`` is the context for TLS to an
    ``https://`` proxy (default: verifying, system CAs); TLS to the origin is separate and end-to-end.
    """

    __slots__ = ("_fields", "host", "label", "port", "secure", "ssl", "username")

    def __init__(self, url: str, *, headers: Headers | None = None, ssl: ssl_module.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"not an HTTP proxy URL (http:// or https://): {redact(url)}")
        if not parts.hostname:
            raise ValueError(f"proxy URL without a host: {redact(url)}")
        self.secure = scheme == "https"
        if ssl is not None and not self.secure:
            raise ValueError("ssl= applies to https:// proxies only")
        self.host = parts.hostname
        self.port = parts.port or (443 if self.secure else 80)
        self.ssl = ssl
        self.label = redact(url)
        self.username = unquote(parts.username) if parts.username is not None else None

        pairs = list(headers.items() if isinstance(headers, Mapping) else headers or ())
        for field_name, value in pairs:
            if any(c in f"{field_name}{value}" for c in "\r\n\0"):
                raise ValueError(f"invalid proxy header {field_name!r}")
        if self.username is not None and not any(n.lower() == "proxy-authorization" for n, _ in pairs):
            password = unquote(parts.password or "")
            token = base64.b64encode(f"{self.username}:{password}".encode()).decode("ascii")
            pairs.insert(0, ("Proxy-Authorization", f"Basic {token}"))
        self._fields = "".join(f"{n}: {v}\r\n" for n, v in pairs).encode("latin-1")

    def __repr__(self) -> str:
        return f"HTTPProxyConnector({self.label!r})"

    @property
    def first_address(self) -> tuple[str, int]:
        return self.host, self.port

    def _tls_context(self) -> ssl_module.SSLContext:
        if self.ssl is None:
            self.ssl = ssl_module.create_default_context()
        return self.ssl

    async def open_tunnel(
        self, host: str, port: int, attempt: Attempt, *, via: Pipe | None = None, name: str | None = None
    ) -> Pipe:
        """CONNECT to ``host:port``; ``via`` already reaches the proxy (else a new TCP connection is made)."""
        name = name or f"proxy {self.label}"
        pipe = via or await open_tcp_pipe(self.host, self.port, name, attempt)
        try:
            if self.secure:
                attempt.step = f"{name}: TLS handshake with the proxy"
                try:
                    await pipe.start_tls(self._tls_context(), self.host, attempt)
                except OSError as exc:  # ssl.SSLError is an OSError
                    raise ProxyError(f"{name}: TLS handshake with the proxy failed: {exc}") from exc
            await self._handshake(pipe, format_address(_ascii_host(host), port), name, attempt)
        except BaseException:
            pipe.abort()
            raise
        return pipe

    async def _handshake(self, pipe: Pipe, target: str, name: str, attempt: Attempt) -> None:
        attempt.step = f"{name}: waiting for the reply to CONNECT {target}"
        wire = target.encode("ascii")
        pipe.write(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (wire, wire, self._fields))
        try:
            head = await pipe.read_head(MAX_REPLY_HEAD)
        except asyncio.IncompleteReadError as exc:
            raise ProxyError(f"{name}: closed the connection before answering CONNECT {target}") from exc
        if head is None:
            raise ProxyError(f"{name}: reply to CONNECT {target} exceeds {MAX_REPLY_HEAD} bytes")
        match = _STATUS_LINE.match(head)
        if match is None:
            raise ProxyError(f"{name}: not an HTTP proxy (answered {head[:40]!r})")
        status = int(match[3])
        reason = (match[4] or b"").decode("latin-1").strip()
        if 200 <= status < 300:
            return
        body = await _read_body_preview(pipe, _fields(head))
        summary = f"{status} {reason}".strip()
        if status in (401, 407):
            what = "credentials refused" if self.username is not None else "authentication required"
            raise ProxyAuthStatusError(f"{name}: {what} ({summary})", status, body)
        message = f"{name}: CONNECT {target} refused: {summary}"
        text = _body_text(body)
        if text:
            message += f": {text[:240]}"
        raise ProxyStatusError(message, status, body)


def _ascii_host(host: str) -> str:
    """``host`` as it goes on the wire: an internationalised name in its IDNA (punycode) form."""
    return host if host.isascii() else host.encode("idna").decode("ascii")


def _body_text(body: bytes) -> str:
    """A refusal's body as one line of text: proxies explain themselves in HTML pages."""
    text = body.decode("utf-8", "replace")
    if "<" in text:
        text = _INVISIBLE.sub(" ", text)
        text = html.unescape(_TAG.sub(" ", text))
    return " ".join(text.split())


def _fields(head: bytes) -> dict[str, str]:
    """The header fields of a reply head, names lowercased (the last of repeated fields wins: only two are
    read)."""
    fields = {}
    for line in head.splitlines()[1:]:
        field_name, sep, value = line.partition(b":")
        if sep:
            fields[field_name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return fields


async def _read_body_preview(pipe: Pipe, fields: dict[str, str]) -> bytes:
    """Up to ``BODY_PREVIEW`` bytes of a refusal's body, waiting at most ``BODY_GRACE`` for them to arrive."""
    try:
        length = int(fields["content-length"])
    except (KeyError, ValueError):
        length = None
    chunked = "chunked" in fields.get("transfer-encoding", "").lower()
    want = BODY_PREVIEW if length is None or chunked else min(length, BODY_PREVIEW)
    body = bytearray()

    async def collect() -> None:
        while len(body) < want:
            data = await pipe.read_some(want - len(body))
            if not data:
                return
            body.extend(data)

    if want:
        # A proxy may keep the connection open after a short body: what arrived by then makes the message.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(collect(), BODY_GRACE)
    if chunked:
        match = _CHUNK_SIZE_LINE.match(body)
        if match:
            del body[: match.end()]
    return bytes(body)
