"""A small, strict, bounded HTTP/1.1 head parser and the request/response objects of the opening handshake.

Only what a WebSocket handshake needs: a request line or status line and header fields, with limits on the
number of header lines and the length of each line so a hostile peer cannot make us buffer without bound.
Bodies are read by the I/O layer (only refusals and redirects carry one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Union

from ..exceptions import HandshakeError

__all__ = [
    "DEFAULT_MAX_HEADER_COUNT",
    "DEFAULT_MAX_LINE_SIZE",
    "HeadParser",
    "Headers",
    "HeadersLike",
    "Request",
    "Response",
]

#: Header fields allowed in one request or response head (as `websockets`; Node allows 2000, nginx ~100).
DEFAULT_MAX_HEADER_COUNT = 128
#: Longest request line, status line or header line, CRLF excluded (as `websockets` and nginx's 8 KiB buffers).
DEFAULT_MAX_LINE_SIZE = 8192

# Single character classes: matching is linear in the input, with no backtracking to exploit.
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

HeadersLike = Union["Headers", Mapping[str, str], Iterable[tuple[str, str]]]


def is_token(value: str) -> bool:
    """Whether ``value`` is an RFC 9110 token (header names, extension and parameter names)."""
    return TOKEN.fullmatch(value) is not None


class Headers:
    """Header fields in received order; names compare case-insensitively and may repeat."""

    __slots__ = ("_index", "_items")

    def __init__(self, items: HeadersLike | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        self._index: dict[str, list[str]] | None = None  # lowercased name -> values, built on first lookup
        if items is None:
            return
        if isinstance(items, Headers):
            self._items = list(items._items)
            return
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            self.add(name, value)

    @classmethod
    def _trusted(cls, items: list[tuple[str, str]]) -> Headers:
        """Headers from pairs already validated (parsed off the wire, or built by the handshake itself)."""
        headers = cls()
        headers._items = items
        return headers

    def add(self, name: str, value: str) -> None:
        """Append a field; refuses names that are not tokens and values with CR, LF or NUL (header injection)."""
        if not is_token(name):
            raise ValueError(f"invalid header name {name!r}")
        if _BAD_VALUE_CHAR.search(value) is not None:
            raise ValueError(f"invalid header value for {name}")
        self._items.append((name, value))
        self._index = None

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._items:
                key = name.lower()
                if key in index:
                    index[key].append(value)
                else:
                    index[key] = [value]
            self._index = index
        return index

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        values = self._lookup().get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        return list(self._lookup().get(name.lower(), ()))

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        del self[name]
        self.add(name, value)

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        self._items = [item for item in self._items if item[0].lower() != key]
        self._index = None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        """All (name, value) pairs in order."""
        return list(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def serialize(self) -> bytes:
        """The header lines, each ending in CRLF."""
        return "".join([f"{name}: {value}\r\n" for name, value in self._items]).encode("latin-1")


class Request:
    """An HTTP request head: the client's upgrade request.

    A parsed request keeps its raw header block; :meth:`compact` drops the parsed :attr:`headers`, which are
    rebuilt on the next access. A server compacts requests once the handshake is done, because idle
    connections would otherwise each hold a dozen small header strings they rarely look at again.
    """

    __slots__ = ("_headers", "_raw", "body", "method", "path")

    def __init__(
        self,
        path: str,
        headers: HeadersLike | None = None,
        method: str = "GET",
        body: bytes = b"",
        *,
        raw_headers: bytes | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self._raw = raw_headers
        self._headers: Headers | None = (
            headers if isinstance(headers, Headers) else Headers(headers) if raw_headers is None or headers else None
        )
        self.body = body

    @property
    def headers(self) -> Headers:
        """The header fields."""
        if self._headers is None:
            assert self._raw is not None
            self._headers = _parse_fields(self._raw.split(b"\r\n") if self._raw else [])
        return self._headers

    @headers.setter
    def headers(self, value: Headers) -> None:
        self._headers = value
        self._raw = None

    def compact(self) -> None:
        """Free the parsed headers of a request that came off the wire (they are parsed again on demand)."""
        if self._raw is not None:
            self._headers = None

    def serialize(self) -> bytes:
        """The request head as sent on the wire."""
        return f"{self.method} {self.path} HTTP/1.1\r\n".encode() + self.headers.serialize() + b"\r\n"

    def __repr__(self) -> str:
        return f"Request({self.method} {self.path!r})"


class Response:
    """An HTTP response: the server's 101, or a refusal (``wsstream.Response(403, body=b"no")``).

    ``headers`` may be a :class:`Headers`, a mapping or (name, value) pairs. A refusal with a body gets
    ``Content-Length`` and ``Content-Type: text/plain`` unless given, and ``Connection: close``.
    """

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(
        self, status: int, headers: HeadersLike | None = None, body: bytes | str = b"", reason: str = ""
    ) -> None:
        if not 100 <= status <= 999:
            raise ValueError(f"invalid HTTP status {status}")
        self.status = status
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = body.encode() if isinstance(body, str) else bytes(body)
        self.reason = reason or _REASONS.get(status, "")

    def serialize(self) -> bytes:
        """The response as sent on the wire (head and body)."""
        headers = self.headers
        if self.status != 101:
            headers = Headers(headers)
            if "Content-Length" not in headers:
                headers.add("Content-Length", str(len(self.body)))
            if self.body and "Content-Type" not in headers:
                headers.add("Content-Type", "text/plain; charset=utf-8")
            if "Connection" not in headers:
                headers.add("Connection", "close")
        head = f"HTTP/1.1 {self.status} {self.reason}\r\n".encode() + headers.serialize() + b"\r\n"
        return head + self.body

    def __repr__(self) -> str:
        return f"Response({self.status} {self.reason!r})"


_REASONS = {
    101: "Switching Protocols",
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class HeadParser:
    """Accumulates bytes until a complete HTTP head (ending in an empty line), enforcing the limits.

    :meth:`feed` returns True once the head is complete; the bytes after it are in :attr:`leftover`.
    Errors raise :class:`HandshakeError` (the server answers 400, or 431 when ``too_large`` is set).
    """

    __slots__ = ("_buffer", "leftover", "lines", "max_header_count", "max_line_size")

    def __init__(self, max_header_count: int = DEFAULT_MAX_HEADER_COUNT, max_line_size: int = DEFAULT_MAX_LINE_SIZE):
        self.max_header_count = max_header_count
        self.max_line_size = max_line_size
        self._buffer = b""
        self.lines: list[bytes] = []
        self.leftover = b""

    def feed(self, data: bytes) -> bool:
        """Add received bytes; True when the head is complete."""
        buf = self._buffer + data if self._buffer else bytes(data)
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            # Incomplete: refuse as soon as the limits are already exceeded, never buffer past them.
            last_line = len(buf) - (buf.rfind(b"\n") + 1)
            if last_line > self.max_line_size + 1:
                raise _too_large("line longer than max_line_size")
            newlines = buf.count(b"\n")
            if newlines > self.max_header_count + 1:
                raise _too_large("more than max_header_count header fields")
            if newlines != buf.count(b"\r\n"):
                raise HandshakeError("HTTP line not terminated by CRLF")
            self._buffer = buf
            return False
        self._buffer = b""
        lines = buf[:end].split(b"\r\n")
        if len(lines) > self.max_header_count + 1:
            raise _too_large("more than max_header_count header fields")
        if max(map(len, lines)) > self.max_line_size:
            raise _too_large("line longer than max_line_size")
        if not lines[0]:
            raise HandshakeError("empty HTTP head")
        if buf.count(b"\n", 0, end) != len(lines) - 1:
            raise HandshakeError("HTTP line not terminated by CRLF")
        self.lines = lines
        self.leftover = buf[end + 4 :]
        return True

    def _headers(self) -> Headers:
        return _parse_fields(self.lines[1:])

    def request(self) -> Request:
        """The parsed request (call after :meth:`feed` returned True)."""
        parts = self.lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            raise HandshakeError(f"malformed request line {self.lines[0][:60]!r}")
        method, target, version = parts
        if version != b"HTTP/1.1":
            raise HandshakeError(f"unsupported HTTP version {version.decode('latin-1')}")
        try:
            path = target.decode("ascii")
        except UnicodeDecodeError:
            raise HandshakeError("request target is not ASCII") from None
        headers = self._headers()  # parsed now so that a malformed head is refused at once
        return Request(path, headers, method.decode("latin-1"), raw_headers=b"\r\n".join(self.lines[1:]))

    def response(self) -> Response:
        """The parsed response head (call after :meth:`feed` returned True); the body is read separately."""
        version, _, rest = self.lines[0].partition(b" ")
        status, _, reason = rest.partition(b" ")
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(status) != 3 or not status.isdigit():
            raise HandshakeError(f"malformed status line {self.lines[0][:60]!r}")
        return Response(int(status), self._headers(), reason=reason.decode("latin-1"))


def _parse_fields(lines: list[bytes]) -> Headers:
    """Header fields from their lines (CRLF removed); HandshakeError on a malformed line."""
    items = []
    for line in lines:
        name, sep, value = line.partition(b":")
        try:
            text_name = name.decode("ascii")
        except UnicodeDecodeError:
            text_name = ""
        if not sep or TOKEN.fullmatch(text_name) is None:
            raise HandshakeError(f"malformed header line {line[:40]!r}")
        text_value = value.strip(b" \t").decode("latin-1")
        if _BAD_VALUE_CHAR.search(text_value) is not None:
            raise HandshakeError(f"malformed header line {line[:40]!r}")
        items.append((text_name, text_value))
    return Headers._trusted(items)


def _too_large(message: str) -> HandshakeError:
    error = HandshakeError(message)
    error.too_large = True  # type: ignore[attr-defined]
    return error
