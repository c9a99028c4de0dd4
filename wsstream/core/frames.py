"""The RFC 6455 wire format: opcodes and close payloads (frames are built by :mod:`wsstream.core.mask`).

Parsing lives in :mod:`wsstream.core.protocol`, inlined into the receive loop because it is the hot path.
"""

from __future__ import annotations

import enum

from ..exceptions import ProtocolError

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Opcode",
    "encode_close_payload",
    "is_valid_close_code",
    "parse_close_payload",
]

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 section 5.2)."""

    CONT = OP_CONT
    TEXT = OP_TEXT
    BINARY = OP_BINARY
    CLOSE = OP_CLOSE
    PING = OP_PING
    PONG = OP_PONG


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a Close frame on the wire (RFC 6455 7.4 and the IANA registry)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def encode_close_payload(code: int | None, reason: str = "") -> bytes:
    """The payload of a Close frame; ``code=None`` gives an empty payload (the peer sees 1005)."""
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not is_valid_close_code(code):
        raise ValueError(f"invalid close code {code}")
    payload = code.to_bytes(2, "big") + reason.encode()
    if len(payload) > 125:
        raise ValueError("close reason is longer than 123 bytes once encoded")
    return payload


def parse_close_payload(payload: bytes) -> tuple[int, str]:
    """Code and reason of a received Close frame; an empty payload means 1005 (no status received).

    Raises :class:`ProtocolError` with 1002 for a bad length or code and 1007 for a reason that is not UTF-8.
    """
    if not payload:
        return 1005, ""
    if len(payload) == 1:
        raise ProtocolError("close frame with a 1-byte payload", 1002)
    code = int.from_bytes(payload[:2], "big")
    if not is_valid_close_code(code):
        raise ProtocolError(f"invalid close code {code}", 1002)
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise ProtocolError("close reason is not valid UTF-8", 1007) from None
    return code, reason
