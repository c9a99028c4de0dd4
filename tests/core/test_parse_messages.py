"""The C fast path for small whole data frames (``_speedups.parse_messages``) against the Python parser.

``Connection._receive`` hands runs of small, whole, uncompressed text/binary frames to the C function and parses
everything else itself. These tests feed the same byte streams to a Connection with the fast path and to one
without it (the pure-Python parser alone), in chunks of every size, and require the same events, the same
failure (close code) and the same outgoing frames. Streams mix what the fast path takes with everything it must
refuse: control frames, fragments, compressed and RSV frames, 64-bit lengths, masking the wrong way, invalid
UTF-8, messages over max_size, incomplete frames at every cut.
"""

from __future__ import annotations

import os
import random

import pytest

from wsstream.core import mask as mask_module
from wsstream.core import protocol as protocol_module
from wsstream.core.protocol import Connection
from wsstream.exceptions import ProtocolError

try:
    from wsstream import _speedups
except ImportError:
    _speedups = None  # type: ignore[assignment]

_disabled = os.environ.get("WSSTREAM_NO_SPEEDUPS", "") not in ("", "0")
pytestmark = pytest.mark.skipif(
    _disabled or (_speedups is None and os.environ.get("WSSTREAM_EXPECT_SPEEDUPS", "") in ("", "0")),
    reason="the C accelerator wsstream._speedups is not built or is turned off",
)

KEY = b"\x37\xfa\x21\x3d"


def frame(first: int, payload: bytes, *, masked: bool, length_form: int | None = None) -> bytes:
    """A raw frame; ``length_form`` forces the 7-, 16- or 64-bit length encoding."""
    n = len(payload)
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    bit = 0x80 if masked else 0
    if form == 7:
        header = bytes([first, bit | n])
    elif form == 16:
        header = bytes([first, bit | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([first, bit | 127]) + n.to_bytes(8, "big")
    if not masked:
        return header + payload
    return header + KEY + bytes(b ^ KEY[i % 4] for i, b in enumerate(payload))


Parsed = tuple[list[object], "int | None", list[bytes], object]


def parse(stream: bytes, chunk: int, *, fast: bool, is_client: bool, max_size: int | None = 1 << 20) -> Parsed:
    """Events (as comparable values), failure code and outgoing frames of one Connection fed ``stream``."""
    saved = getattr(protocol_module, "parse_messages")  # noqa: B009 - not exported, read on purpose
    if not fast:
        setattr(protocol_module, "parse_messages", None)  # noqa: B010
    try:
        conn = Connection(is_client, max_size=max_size, auto_close_reply=False)
        events: list[object] = []
        for i in range(0, len(stream), chunk):
            for event in conn.receive_data(stream[i : i + chunk]):
                events.append(repr(event) if not isinstance(event, (str, bytes)) else event)
    finally:
        setattr(protocol_module, "parse_messages", saved)  # noqa: B010
    failure = conn.failure.code if isinstance(conn.failure, ProtocolError) else None
    outgoing = [bytes(f[:2]) for f in conn.outgoing]  # client frames carry random masks: compare headers
    return events, failure, outgoing, conn.state


def both_ways(stream: bytes, *, is_client: bool, max_size: int | None = 1 << 20) -> None:
    chunks = {3, 7, 64, 1000, len(stream) or 1} | ({1, 2} if len(stream) < 4096 else set())
    for chunk in sorted(chunks):
        fast = parse(stream, chunk, fast=True, is_client=is_client, max_size=max_size)
        slow = parse(stream, chunk, fast=False, is_client=is_client, max_size=max_size)
        assert fast == slow, f"chunk={chunk}"


def test_the_fast_path_is_wired_in() -> None:
    assert mask_module.parse_messages is not None
    assert getattr(protocol_module, "parse_messages") is mask_module.parse_messages  # noqa: B009


@pytest.mark.parametrize("is_client", [False, True])
def test_small_messages_of_every_length_form(is_client: bool) -> None:
    masked = not is_client
    stream = b"".join(
        [
            frame(0x82, b"", masked=masked),
            frame(0x81, "héllo €".encode(), masked=masked),
            frame(0x82, bytes(range(125)), masked=masked),
            frame(0x82, b"x" * 126, masked=masked),
            frame(0x81, "ü".encode() * 300, masked=masked),
            frame(0x82, os.urandom(65535), masked=masked),
            frame(0x82, b"forced 16-bit form", masked=masked, length_form=16),
            frame(0x82, b"forced 64-bit form", masked=masked, length_form=64),
            frame(0x82, os.urandom(70000), masked=masked),
        ]
    )
    both_ways(stream, is_client=is_client)
    events, failure, _, _ = parse(stream, len(stream), fast=True, is_client=is_client)
    assert failure is None and len(events) == 9


@pytest.mark.parametrize("is_client", [False, True])
def test_what_the_fast_path_must_leave_to_the_python_parser(is_client: bool) -> None:
    masked = not is_client
    good = frame(0x82, b"ok", masked=masked)
    cases = {
        "ping then data": frame(0x89, b"p", masked=masked) + good,
        "pong": frame(0x8A, b"", masked=masked) + good,
        "fragments": frame(0x01, b"he", masked=masked) + frame(0x80, b"llo", masked=masked) + good,
        "fragment interleaved with ping": frame(0x02, b"a", masked=masked)
        + frame(0x89, b"", masked=masked)
        + frame(0x80, b"b", masked=masked)
        + good,
        "close": good + frame(0x88, (1000).to_bytes(2, "big") + b"bye", masked=masked) + good,
        "rsv1 without deflate": good + frame(0xC2, b"zz", masked=masked),
        "rsv2": good + frame(0xA2, b"zz", masked=masked),
        "reserved opcode": good + frame(0x83, b"", masked=masked),
        "continuation outside a message": good + frame(0x80, b"x", masked=masked),
        "wrong masking": good + frame(0x82, b"x", masked=not masked),
        "invalid utf-8": good + frame(0x81, b"ok \xff\xfe", masked=masked) + good,
        "surrogate in utf-8": good + frame(0x81, b"\xed\xa0\x80", masked=masked),
        "truncated utf-8 at the end": good + frame(0x81, "€".encode()[:2], masked=masked),
        "64-bit length with msb set": good + bytes([0x82, (0x80 if masked else 0) | 127]) + b"\x80" + b"\0" * 7,
        "incomplete last frame": good + frame(0x82, b"0123456789", masked=masked)[:-3],
    }
    for name, stream in cases.items():
        try:
            both_ways(stream, is_client=is_client)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc


@pytest.mark.parametrize("max_size", [0, 10, 125, 126, None])
def test_max_size_is_enforced_the_same_way(max_size: int | None) -> None:
    stream = b"".join(frame(0x82, b"y" * n, masked=True) for n in (0, 5, 10, 11, 125, 126, 127, 300))
    both_ways(stream, is_client=False, max_size=max_size)


@pytest.mark.parametrize("seed", range(20))
def test_random_streams(seed: int) -> None:
    rng = random.Random(seed)
    is_client = bool(seed % 2)
    masked = not is_client
    parts = []
    for _ in range(rng.randrange(5, 40)):
        kind = rng.random()
        size = rng.choice([0, 1, 3, 125, 126, 200, 1000, 65535, 65536])
        if kind < 0.5:
            parts.append(frame(0x82, rng.randbytes(size), masked=masked))
        elif kind < 0.75:
            text = "".join(rng.choice("aé€😀") for _ in range(size // 4))
            parts.append(frame(0x81, text.encode(), masked=masked))
        elif kind < 0.85:
            parts.append(frame(0x89, rng.randbytes(min(size, 125)), masked=masked))
        elif kind < 0.95:
            parts.append(frame(0x01, b"ab", masked=masked) + frame(0x80, "é".encode(), masked=masked))
        else:
            parts.append(frame(0x81, b"\xc3", masked=masked))  # invalid: the connection fails here
    both_ways(b"".join(parts), is_client=is_client)
