"""Parsing of the list-valued handshake headers: Connection, Upgrade, Sec-WebSocket-Protocol and
Sec-WebSocket-Extensions (RFC 9110 list syntax, RFC 6455 9.1).

Hand-written scanners that look at each character once: no regular expression, so no backtracking on hostile
input.
"""

from __future__ import annotations

from ..exceptions import HandshakeError
from .http11 import TOKEN, is_token

__all__ = ["ExtensionOffer", "format_extension", "parse_extension_list", "parse_token_list"]

#: One extension: its name and its parameters as (lowercased name, value or None), values unquoted.
ExtensionOffer = tuple[str, list[tuple[str, "str | None"]]]


def parse_token_list(values: list[str]) -> list[str]:
    """The comma-separated tokens of every value (empty elements skipped); raises HandshakeError on junk."""
    tokens = []
    for value in values:
        for element in value.split(","):
            element = element.strip(" \t")
            if not element:
                continue
            if not is_token(element):
                raise HandshakeError(f"invalid token {element[:40]!r} in header list")
            tokens.append(element)
    return tokens


class _Scanner:
    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_ows(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        self.pos = pos

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self) -> str:
        match = TOKEN.match(self.text, self.pos)
        if match is None:
            raise HandshakeError(f"expected a token at position {self.pos} of {self.text[:80]!r}")
        self.pos = match.end()
        return match.group()

    def quoted_string(self) -> str:
        text = self.text
        pos = self.pos + 1  # opening quote
        out: list[str] = []
        while pos < len(text):
            char = text[pos]
            if char == '"':
                self.pos = pos + 1
                return "".join(out)
            if char == "\\":
                pos += 1
                if pos == len(text):
                    break
                char = text[pos]
            out.append(char)
            pos += 1
        raise HandshakeError(f"unterminated quoted string in {text[:80]!r}")


def parse_extension_list(values: list[str]) -> list[ExtensionOffer]:
    """Parse Sec-WebSocket-Extensions values into (name, params) in order; raise HandshakeError on bad syntax.

    A quoted parameter value must unquote to a token (RFC 6455 9.1).
    """
    offers: list[ExtensionOffer] = []
    for value in values:
        scanner = _Scanner(value)
        while True:
            scanner.skip_ows()
            if scanner.peek() == ",":
                scanner.pos += 1
                continue
            if not scanner.peek():
                break
            name = scanner.token()
            params: list[tuple[str, str | None]] = []
            scanner.skip_ows()
            while scanner.peek() == ";":
                scanner.pos += 1
                scanner.skip_ows()
                param = scanner.token().lower()
                scanner.skip_ows()
                param_value: str | None = None
                if scanner.peek() == "=":
                    scanner.pos += 1
                    scanner.skip_ows()
                    if scanner.peek() == '"':
                        param_value = scanner.quoted_string()
                        if not is_token(param_value):
                            raise HandshakeError(f"quoted extension parameter {param_value[:40]!r} is not a token")
                    else:
                        param_value = scanner.token()
                    scanner.skip_ows()
                params.append((param, param_value))
            offers.append((name, params))
            if scanner.peek() == ",":
                scanner.pos += 1
            elif scanner.peek():
                raise HandshakeError(f"unexpected {scanner.peek()!r} in extension header {value[:80]!r}")
    return offers


def format_extension(name: str, params: list[tuple[str, str | None]]) -> str:
    """Serialise one extension as a header element, e.g. ``permessage-deflate; server_max_window_bits=12``."""
    return "; ".join([name] + [param if value is None else f"{param}={value}" for param, value in params])
