"""Payload masking (RFC 6455 section 5.3) and one-allocation frame building (section 5.2).

Owns the loader of the optional C accelerator ``wsstream._speedups``: at import, the C functions are used when
the extension imports and the environment variable ``WSSTREAM_NO_SPEEDUPS`` is unset, empty or "0"; otherwise
the pure-Python ``py_*`` functions below, which are always importable (the tests compare both). ``SPEEDUPS``
says which one was chosen.

The pure-Python masking picks, by size, the fastest trick measured on CPython 3.10-3.13 (docs/speedups.md):
one big-integer XOR for small payloads, four strided ``bytes.translate`` calls through a per-key-byte XOR
table for large ones.
"""

from __future__ import annotations

import operator
import os
import struct
from collections.abc import Callable

__all__ = [
    "SPEEDUPS",
    "BytesLike",
    "apply_mask",
    "apply_mask_into",
    "build_frame",
    "parse_messages",
    "py_apply_mask",
    "py_apply_mask_into",
    "py_build_frame",
]

BytesLike = bytes | bytearray | memoryview

# Crossover measured in bench/bench_mask.py: the big-int XOR costs about 3 ns/byte, the translate path about
# 2 ns/byte plus a fixed ~1.5 us, so they meet around 1 KiB.
_SMALL = 1024

_PACK_16 = struct.Struct("!BBH").pack
_PACK_64 = struct.Struct("!BBQ").pack


def _xor_tables() -> tuple[bytes, ...]:
    """Return the 256 translation tables t[k] with t[k][b] == b ^ k (about 0.3 ms, 64 KiB, at import)."""
    identity = int.from_bytes(bytes(range(256)), "little")
    return tuple((identity ^ int.from_bytes(bytes((k,)) * 256, "little")).to_bytes(256, "little") for k in range(256))


_XOR_TABLES = _xor_tables()


def _check_mask(mask: BytesLike) -> bytes:
    """Return mask as bytes; ValueError unless it is exactly 4 bytes."""
    if type(mask) is not bytes:
        mask = bytes(memoryview(mask))  # memoryview() so that an int is a TypeError, not bytes(int)
    if len(mask) != 4:
        raise ValueError(f"mask must be 4 bytes, got {len(mask)}")
    return mask


def _as_bytes_view(view: memoryview) -> memoryview:
    """Return view as unsigned bytes; BufferError (as from the C accelerator) unless it is C-contiguous."""
    if not view.c_contiguous:
        raise BufferError("memoryview: underlying buffer is not C-contiguous")
    return view.cast("B")


def py_apply_mask(data: BytesLike, mask: BytesLike) -> bytes:
    """Return data XOR-ed with the 4-byte mask repeated; ValueError unless len(mask) == 4.

    data is any C-contiguous bytes-like object (a memoryview is taken byte by byte whatever its format).
    """
    mask = _check_mask(mask)
    if type(data) is memoryview:
        data = _as_bytes_view(data)
    n = len(data)
    if n <= _SMALL:
        key = (mask * ((n + 3) >> 2))[:n]
        return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")
    out = bytearray(data)
    _translate_into(out, mask)
    return bytes(out)


def _translate_into(buf: bytearray, mask: bytes) -> None:
    """XOR buf in place with mask, one strided translate per key byte (fast for large buffers only)."""
    tables = _XOR_TABLES
    for k in range(4):
        buf[k::4] = buf[k::4].translate(tables[mask[k]])


def py_apply_mask_into(buf: bytearray | memoryview, mask: BytesLike) -> None:
    """XOR the writable C-contiguous buffer buf in place with the 4-byte mask repeated.

    ValueError unless len(mask) == 4; BufferError if buf is read-only or not C-contiguous.
    """
    mask = _check_mask(mask)
    if type(buf) is bytearray:
        if len(buf) > _SMALL:
            _translate_into(buf, mask)
        else:
            buf[:] = py_apply_mask(buf, mask)
        return
    view = memoryview(buf)
    if view.readonly:
        raise BufferError("apply_mask_into() needs a writable buffer")
    # Strided memoryview slices copy element by element (~20x slower than bytearray's): mask a copy instead.
    view = _as_bytes_view(view)
    view[:] = py_apply_mask(view, mask)


def py_build_frame(first_byte: int, payload: BytesLike, mask: BytesLike | None) -> bytes:
    """Return one frame: first_byte (FIN|RSV1-3|opcode), the shortest payload length, then the payload.

    When mask is a 4-byte key the MASK bit is set and the key and the masked payload follow; when it is None
    the payload is copied unchanged. ValueError if first_byte is not in 0..255 or mask is not 4 bytes.
    """
    if type(first_byte) is not int:
        first_byte = operator.index(first_byte)  # TypeError for float etc., as in C
    if not 0 <= first_byte <= 255:
        raise ValueError(f"first_byte must be in 0..255, got {first_byte}")
    if type(payload) is memoryview:
        payload = _as_bytes_view(payload)
    n = len(payload)
    if mask is None:
        mask_bit = 0
    else:
        mask = _check_mask(mask)
        mask_bit = 0x80
    if n < 126:
        header = bytes((first_byte, mask_bit | n))
    elif n < 65536:
        header = _PACK_16(first_byte, mask_bit | 126, n)
    else:
        header = _PACK_64(first_byte, mask_bit | 127, n)
    if mask is None:
        return header + payload
    if n <= _SMALL:
        # py_apply_mask's small path, inlined: the call and its second mask check cost ~15% of a small frame.
        key = (mask * ((n + 3) >> 2))[:n]
        masked = (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")
        return header + mask + masked
    out = bytearray(payload)
    _translate_into(out, mask)
    return header + mask + out


def _speedups_wanted() -> bool:
    """True unless WSSTREAM_NO_SPEEDUPS is set to a non-empty value other than "0"."""
    return os.environ.get("WSSTREAM_NO_SPEEDUPS", "") in ("", "0")


SPEEDUPS: bool
apply_mask: Callable[[BytesLike, BytesLike], bytes]
apply_mask_into: Callable[[bytearray | memoryview, BytesLike], None]
build_frame: Callable[[int, BytesLike, BytesLike | None], bytes]
#: The C fast path for runs of small whole data frames (see protocol.Connection._receive); None without it.
parse_messages: Callable[[bytes | bytearray, int, bool, int], tuple[list[str | bytes], int]] | None

try:
    if not _speedups_wanted():
        raise ImportError("disabled by WSSTREAM_NO_SPEEDUPS")
    from .. import _speedups
except ImportError:
    SPEEDUPS = False
    apply_mask = py_apply_mask
    apply_mask_into = py_apply_mask_into
    build_frame = py_build_frame
    parse_messages = None
else:
    SPEEDUPS = True
    apply_mask = _speedups.apply_mask
    apply_mask_into = _speedups.apply_mask_into
    build_frame = _speedups.build_frame
    parse_messages = _speedups.parse_messages
