"""Tests of wsstream.core.mask: masking and frame building, C accelerator and pure Python alike.

Every implementation is checked against an obviously-correct byte loop and against RFC 6455 section 5.7's
example frames; the C functions are also checked against the pure-Python ones. The pure-Python functions are
tested even when the C accelerator is loaded (they are imported directly).
Set WSSTREAM_EXPECT_SPEEDUPS=1 (CI does, after building the extension) to fail instead of skip when the C
accelerator is missing.
"""

from __future__ import annotations

import array
import os
import random
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from wsstream.core import mask as mask_module
from wsstream.core.mask import BytesLike, py_apply_mask, py_apply_mask_into, py_build_frame

# The directory holding the wsstream package this process imported, so that subprocesses import the same one
# (the checkout with an in-place build, or site-packages).
IMPORT_ROOT = Path(mask_module.__file__).resolve().parents[2]

try:
    from wsstream import _speedups
except ImportError:
    _speedups = None  # type: ignore[assignment]

requires_c = pytest.mark.skipif(
    _speedups is None and os.environ.get("WSSTREAM_EXPECT_SPEEDUPS", "") in ("", "0"),
    reason="the C accelerator wsstream._speedups is not built",
)

ApplyMask = Callable[[BytesLike, BytesLike], bytes]
ApplyMaskInto = Callable[[bytearray | memoryview, BytesLike], None]
BuildFrame = Callable[[int, BytesLike, BytesLike | None], bytes]


def _c(name: str) -> object:
    if _speedups is None:
        pytest.fail("WSSTREAM_EXPECT_SPEEDUPS is set but wsstream._speedups does not import")
    return getattr(_speedups, name)


@pytest.fixture(params=["python", pytest.param("c", marks=requires_c)])
def apply_mask(request: pytest.FixtureRequest) -> ApplyMask:
    return py_apply_mask if request.param == "python" else _c("apply_mask")  # type: ignore[return-value]


@pytest.fixture(params=["python", pytest.param("c", marks=requires_c)])
def apply_mask_into(request: pytest.FixtureRequest) -> ApplyMaskInto:
    return py_apply_mask_into if request.param == "python" else _c("apply_mask_into")  # type: ignore[return-value]


@pytest.fixture(params=["python", pytest.param("c", marks=requires_c)])
def build_frame(request: pytest.FixtureRequest) -> BuildFrame:
    return py_build_frame if request.param == "python" else _c("build_frame")  # type: ignore[return-value]


def reference_mask(data: bytes, key: bytes) -> bytes:
    """The definition in RFC 6455 section 5.3, one byte at a time."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


SMALL_SIZES = list(range(201))
# Around the pure-Python crossover (1 KiB), the GIL-release threshold (64 KiB) and a non-multiple-of-8 MiB.
LARGE_SIZES = [1023, 1024, 1025, 4096 + 7, 65535, 65536, 65537, (1 << 20) + 3]


@pytest.mark.parametrize("size", SMALL_SIZES + LARGE_SIZES)
def test_apply_mask_matches_reference(apply_mask: ApplyMask, size: int) -> None:
    rng = random.Random(size)
    data = rng.randbytes(size)
    key = rng.randbytes(4)
    expected = reference_mask(data, key)
    result = apply_mask(data, key)
    assert type(result) is bytes
    assert result == expected
    # Masking is an involution: applying it twice restores the payload.
    assert apply_mask(result, key) == data


@pytest.mark.parametrize("size", [0, 1, 3, 7, 8, 9, 63, 64, 65, 127, 200, 1500, 70000])
@pytest.mark.parametrize("offset", range(8))
def test_apply_mask_every_alignment(apply_mask: ApplyMask, size: int, offset: int) -> None:
    rng = random.Random(size * 8 + offset)
    backing = rng.randbytes(size + 16)
    key = rng.randbytes(4)
    expected = reference_mask(backing[offset : offset + size], key)
    assert apply_mask(memoryview(backing)[offset : offset + size], key) == expected
    assert apply_mask(memoryview(bytearray(backing))[offset : offset + size], key) == expected


@pytest.mark.parametrize("size", [0, 5, 100, 3000])
def test_apply_mask_accepts_every_bytes_like(apply_mask: ApplyMask, size: int) -> None:
    rng = random.Random(size)
    data = rng.randbytes(size)
    key = rng.randbytes(4)
    expected = reference_mask(data, key)
    for value in (data, bytearray(data), memoryview(data)):
        for key_value in (key, bytearray(key), memoryview(key)):
            assert apply_mask(value, key_value) == expected
    # A memoryview of another format is masked byte by byte, like the C buffer protocol sees it.
    words = array.array("I", data[: size // 4 * 4])
    assert apply_mask(memoryview(words), key) == reference_mask(words.tobytes(), key)


def test_apply_mask_leaves_input_unchanged(apply_mask: ApplyMask) -> None:
    data = bytearray(range(256)) * 300
    before = bytes(data)
    apply_mask(data, b"\x01\x02\x03\x04")
    assert data == before


@pytest.mark.parametrize("bad", [b"", b"abc", b"abcde", bytes(8)])
def test_apply_mask_rejects_bad_mask_length(apply_mask: ApplyMask, bad: bytes) -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        apply_mask(b"payload", bad)


def test_apply_mask_rejects_non_bytes(apply_mask: ApplyMask) -> None:
    with pytest.raises(TypeError):
        apply_mask(b"payload", 4)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        apply_mask("text", b"abcd")  # type: ignore[arg-type]


def test_apply_mask_rejects_non_contiguous(apply_mask: ApplyMask) -> None:
    with pytest.raises(BufferError):
        apply_mask(memoryview(bytes(64))[::2], b"abcd")


@pytest.mark.parametrize("size", [0, 1, 7, 64, 125, 1024, 1025, 9000, 65537, (1 << 20) + 1])
@pytest.mark.parametrize("offset", [0, 1, 3, 5])
def test_apply_mask_into_in_place(apply_mask_into: ApplyMaskInto, size: int, offset: int) -> None:
    rng = random.Random(size + offset)
    backing = bytearray(rng.randbytes(size + offset + 3))
    original = bytes(backing)
    key = rng.randbytes(4)
    apply_mask_into(memoryview(backing)[offset : offset + size], key)
    # Only the view is masked: the bytes around it are untouched.
    assert backing == (
        original[:offset] + reference_mask(original[offset : offset + size], key) + original[offset + size :]
    )
    if offset == 0:
        whole = bytearray(original)
        apply_mask_into(whole, key)
        assert whole == reference_mask(original, key)


def test_apply_mask_into_rejects_read_only_and_bad_mask(apply_mask_into: ApplyMaskInto) -> None:
    with pytest.raises(BufferError):
        apply_mask_into(memoryview(b"read-only"), b"abcd")
    with pytest.raises(BufferError):
        apply_mask_into(memoryview(bytearray(64))[::2], b"abcd")
    with pytest.raises(ValueError, match="4 bytes"):
        apply_mask_into(bytearray(10), b"abc")


@requires_c
@pytest.mark.parametrize("size", [*range(201), 1023, 1025, 65537, 3 << 20])
def test_c_and_python_agree(size: int) -> None:
    rng = random.Random(~size)
    data = rng.randbytes(size + 3)
    key = rng.randbytes(4)
    c_apply_mask: ApplyMask = _c("apply_mask")  # type: ignore[assignment]
    c_build_frame: BuildFrame = _c("build_frame")  # type: ignore[assignment]
    for offset in range(4):
        view = memoryview(data)[offset : offset + size]
        assert c_apply_mask(view, key) == py_apply_mask(view, key)
        for frame_key in (None, key):
            assert c_build_frame(0x82, view, frame_key) == py_build_frame(0x82, view, frame_key)


@requires_c
def test_c_masks_large_payloads_from_threads() -> None:
    # Above 64 KiB the C code releases the GIL: concurrent calls must still each get their own right answer.
    c_apply_mask: ApplyMask = _c("apply_mask")  # type: ignore[assignment]
    payloads = [bytes([i]) * (1 << 20) + bytes(range(i + 1)) for i in range(4)]
    keys = [bytes((i, i + 1, i + 2, 255 - i)) for i in range(4)]
    results: list[bytes | None] = [None] * 4

    def work(i: int) -> None:
        for _ in range(5):
            results[i] = c_apply_mask(payloads[i], keys[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    for i in range(4):
        assert results[i] == py_apply_mask(payloads[i], keys[i])


# RFC 6455 section 5.7, "Examples".
HELLO_KEY = bytes((0x37, 0xFA, 0x21, 0x3D))
RFC_EXAMPLES = [
    pytest.param(0x81, b"Hello", None, bytes((0x81, 0x05)) + b"Hello", id="unmasked-text"),
    pytest.param(
        0x81,
        b"Hello",
        HELLO_KEY,
        bytes((0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58)),
        id="masked-text",
    ),
    pytest.param(0x01, b"Hel", None, bytes((0x01, 0x03)) + b"Hel", id="first-fragment"),
    pytest.param(0x80, b"lo", None, bytes((0x80, 0x02)) + b"lo", id="last-fragment"),
    pytest.param(0x89, b"Hello", None, bytes((0x89, 0x05)) + b"Hello", id="unmasked-ping"),
    pytest.param(
        0x8A,
        b"Hello",
        HELLO_KEY,
        bytes((0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58)),
        id="masked-pong",
    ),
    pytest.param(0x82, bytes(256), None, bytes((0x82, 0x7E, 0x01, 0x00)) + bytes(256), id="256-bytes-16-bit-length"),
    pytest.param(
        0x82,
        bytes(65536),
        None,
        bytes((0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0)) + bytes(65536),
        id="64-KiB-64-bit-length",
    ),
]


@pytest.mark.parametrize(("first_byte", "payload", "key", "expected"), RFC_EXAMPLES)
def test_build_frame_rfc_examples(
    build_frame: BuildFrame, first_byte: int, payload: bytes, key: bytes | None, expected: bytes
) -> None:
    assert build_frame(first_byte, payload, key) == expected


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20])
@pytest.mark.parametrize("masked", [False, True])
def test_build_frame_length_encodings(build_frame: BuildFrame, size: int, masked: bool) -> None:
    rng = random.Random(size)
    payload = rng.randbytes(size)
    key = rng.randbytes(4) if masked else None
    mask_bit = 0x80 if masked else 0
    if size < 126:
        header = bytes((0xC2, mask_bit | size))
    elif size < 65536:
        header = bytes((0xC2, mask_bit | 126)) + struct.pack("!H", size)
    else:
        header = bytes((0xC2, mask_bit | 127)) + struct.pack("!Q", size)
    body = payload if key is None else key + reference_mask(payload, key)
    for value in (payload, bytearray(payload), memoryview(payload)):
        frame = build_frame(0xC2, value, key)
        assert type(frame) is bytes
        assert frame == header + body


@pytest.mark.parametrize("first_byte", [0x00, 0x0F, 0x70, 0x88, 0xFF])
def test_build_frame_copies_first_byte(build_frame: BuildFrame, first_byte: int) -> None:
    assert build_frame(first_byte, b"", None) == bytes((first_byte, 0))
    assert build_frame(first_byte, b"", b"\x00\x00\x00\x00") == bytes((first_byte, 0x80, 0, 0, 0, 0))


def test_build_frame_rejects_bad_arguments(build_frame: BuildFrame) -> None:
    for bad_first in (-1, 256, 1 << 70, -(1 << 70)):
        with pytest.raises(ValueError, match="first_byte"):
            build_frame(bad_first, b"", None)
    with pytest.raises(TypeError):
        build_frame(1.0, b"", None)  # type: ignore[arg-type]
    for bad_key in (b"", b"abc", b"abcde"):
        with pytest.raises(ValueError, match="4 bytes"):
            build_frame(0x82, b"payload", bad_key)
    with pytest.raises(TypeError):
        build_frame(0x82, "text", None)  # type: ignore[arg-type]


def test_loader_picks_c_when_available() -> None:
    disabled = os.environ.get("WSSTREAM_NO_SPEEDUPS", "") not in ("", "0")
    assert mask_module.SPEEDUPS is (_speedups is not None and not disabled)
    if mask_module.SPEEDUPS:
        assert _speedups is not None
        assert mask_module.apply_mask is _speedups.apply_mask
        assert mask_module.apply_mask_into is _speedups.apply_mask_into
        assert mask_module.build_frame is _speedups.build_frame
    else:
        assert mask_module.apply_mask is py_apply_mask
        assert mask_module.apply_mask_into is py_apply_mask_into
        assert mask_module.build_frame is py_build_frame


def _probe_in_subprocess(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "WSSTREAM_NO_SPEEDUPS"}
    if env_value is not None:
        env["WSSTREAM_NO_SPEEDUPS"] = env_value
    env["PYTHONPATH"] = os.pathsep.join([str(IMPORT_ROOT), env.get("PYTHONPATH", "")])
    code = (
        "from wsstream.core import mask\n"
        "assert (mask.apply_mask is mask.py_apply_mask) is (not mask.SPEEDUPS)\n"
        "assert mask.apply_mask(b'Hello', bytes((0x37, 0xFA, 0x21, 0x3D))) == bytes.fromhex('7f9f4d5158')\n"
        "print(mask.SPEEDUPS)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return completed.stdout.strip()


@pytest.mark.parametrize("value", ["1", "yes"])
def test_env_var_switches_speedups_off(value: str) -> None:
    assert _probe_in_subprocess(value) == "False"


@pytest.mark.parametrize("value", [None, "", "0"])
def test_env_var_unset_empty_or_zero_keeps_speedups(value: str | None) -> None:
    assert _probe_in_subprocess(value) == str(_speedups is not None)
