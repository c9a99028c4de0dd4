"""Tests of wsstream.core.deflate: permessage-deflate negotiation (RFC 7692 7.1) and the codec.

Negotiation is checked from both sides against the RFC's rules and against Python ``websockets``' own
extension factories; the codec round-trips with itself, with plain zlib and with ``websockets``' codec, is fed
fragmented frames, corrupt data and a 1 GiB deflate bomb whose inflation must stop at max_size + 1 bytes with
peak memory (measured with tracemalloc, which traces zlib's allocations too) under 3x max_size.
"""

from __future__ import annotations

import os
import random
import sys
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.extensions.permessage_deflate import PerMessageDeflate as WsPerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.headers import parse_extension

from wsstream.core.deflate import Deflate, PerMessageDeflate
from wsstream.exceptions import HandshakeError, PayloadTooBig, ProtocolError

Params = list[tuple[str, "str | None"]]

MiB = 1 << 20


def header_params(value: str) -> Params:
    """Parse one Sec-WebSocket-Extensions value with websockets' independent parser."""
    [(name, params)] = parse_extension(value)
    assert name == "permessage-deflate"
    return list(params)


def pair(client: Deflate | None = None, server: Deflate | None = None) -> tuple[PerMessageDeflate, PerMessageDeflate]:
    """Negotiate as a handshake does: the client's offer through the server, the answer back."""
    client = client or Deflate()
    server = server or Deflate()
    accepted = server.server_accept([header_params(client.client_offer())])
    assert accepted is not None
    response, server_codec = accepted
    client_codec = client.client_accept(header_params(response))
    assert client_codec.extension == response == server_codec.extension
    return client_codec, server_codec


def text_corpus(size: int, seed: int = 0) -> bytes:
    """Compressible, JSON-like bytes that differ per seed."""
    rng = random.Random(seed)
    words = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(300)]
    out = bytearray()
    while len(out) < size:
        out += b'{"id": %d, "text": "%s"},' % (rng.randint(0, 10**6), b" ".join(rng.choices(words, k=6)))
    return bytes(out[:size])


def raw_deflate(data: bytes, wbits: int = 15, level: int = 6) -> bytes:
    """A complete permessage-deflate payload made by plain zlib (trailer stripped)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


# -- configuration --


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_no_context_takeover": 1},
        {"client_no_context_takeover": "yes"},
        {"server_max_window_bits": 7},
        {"server_max_window_bits": 16},
        {"server_max_window_bits": True},
        {"server_max_window_bits": "12"},
        {"client_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"client_max_window_bits": 12.0},
        {"level": 10},
        {"level": -2},
        {"mem_level": 0},
        {"mem_level": 10},
        {"threshold": -1},
        {"concurrency_limit": 0},
    ],
)
def test_invalid_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Deflate(**kwargs)  # type: ignore[arg-type]


def test_defaults() -> None:
    deflate = Deflate()
    assert (deflate.level, deflate.mem_level, deflate.threshold, deflate.concurrency_limit) == (
        6,
        8,
        1024,
        10,
    )
    assert deflate.client_max_window_bits is True
    assert deflate.server_max_window_bits is None
    client, server = pair()
    assert client.threshold == server.threshold == 1024
    assert client.is_client and not server.is_client


# -- client offer and client_accept --


@pytest.mark.parametrize(
    ("kwargs", "offer"),
    [
        ({}, "permessage-deflate; client_max_window_bits"),
        ({"client_max_window_bits": None}, "permessage-deflate"),
        ({"client_max_window_bits": False}, "permessage-deflate"),
        ({"client_max_window_bits": 10}, "permessage-deflate; client_max_window_bits=10"),
        (
            {
                "server_no_context_takeover": True,
                "client_no_context_takeover": True,
                "server_max_window_bits": 8,
                "client_max_window_bits": 9,
            },
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=8; client_max_window_bits=9",
        ),
    ],
)
def test_client_offer(kwargs: dict[str, object], offer: str) -> None:
    value = Deflate(**kwargs).client_offer()  # type: ignore[arg-type]
    assert value == offer
    header_params(value)  # websockets can parse it


@pytest.mark.parametrize(
    ("kwargs", "response", "expected"),
    [
        # (local_nct, remote_nct, local_bits, remote_bits) of the client codec
        ({}, [], (False, False, 15, 15)),
        ({}, [("server_no_context_takeover", None)], (False, True, 15, 15)),
        ({}, [("client_no_context_takeover", None)], (True, False, 15, 15)),  # the server may add it
        ({"client_no_context_takeover": True}, [], (True, False, 15, 15)),  # our offer binds us anyway
        ({}, [("server_max_window_bits", "10")], (False, False, 15, 10)),  # the server may add it
        ({}, [("server_max_window_bits", "8")], (False, False, 15, 8)),
        ({"server_max_window_bits": 12}, [("server_max_window_bits", "12")], (False, False, 15, 12)),
        ({"server_max_window_bits": 12}, [("server_max_window_bits", "9")], (False, False, 15, 9)),
        ({}, [("client_max_window_bits", "9")], (False, False, 9, 15)),  # offered without value: any
        ({}, [("client_max_window_bits", "8")], (False, False, 8, 15)),
        ({"client_max_window_bits": 11}, [], (False, False, 11, 15)),  # we keep our announced limit
        ({"client_max_window_bits": 11}, [("client_max_window_bits", "10")], (False, False, 10, 15)),
        ({"client_max_window_bits": 11}, [("client_max_window_bits", "11")], (False, False, 11, 15)),
        (
            {"server_no_context_takeover": True},
            [("server_no_context_takeover", None), ("client_no_context_takeover", None)],
            (True, True, 15, 15),
        ),
    ],
)
def test_client_accept(kwargs: dict[str, object], response: Params, expected: tuple[bool, bool, int, int]) -> None:
    codec = Deflate(**kwargs).client_accept(response)  # type: ignore[arg-type]
    got = (
        codec.local_no_context_takeover,
        codec.remote_no_context_takeover,
        codec.local_max_window_bits,
        codec.remote_max_window_bits,
    )
    assert got == expected
    assert codec.is_client
    assert codec.extension == "; ".join(
        ["permessage-deflate"] + [name if value is None else f"{name}={value}" for name, value in response]
    )


@pytest.mark.parametrize(
    ("kwargs", "response", "message"),
    [
        ({"server_no_context_takeover": True}, [], "server_no_context_takeover"),
        ({"server_max_window_bits": 12}, [], "server_max_window_bits"),
        ({"server_max_window_bits": 12}, [("server_max_window_bits", "13")], "larger"),
        ({"client_max_window_bits": None}, [("client_max_window_bits", "12")], "not offered"),
        ({"client_max_window_bits": False}, [("client_max_window_bits", "12")], "not offered"),
        ({"client_max_window_bits": 10}, [("client_max_window_bits", "11")], "larger"),
        ({}, [("client_max_window_bits", None)], "without a value"),
        ({}, [("server_max_window_bits", None)], "invalid"),
        ({}, [("server_no_context_takeover", "1")], "takes no value"),
        ({}, [("client_no_context_takeover", "")], "takes no value"),
        ({}, [("server_no_context_takeover", None), ("server_no_context_takeover", None)], "duplicate"),
        ({}, [("server_max_window_bits", "10"), ("server_max_window_bits", "10")], "duplicate"),
        ({}, [("client_max_window_bits", "10"), ("client_max_window_bits", "9")], "duplicate"),
        ({}, [("unknown", None)], "unknown"),
        ({}, [("max_window_bits", "10")], "unknown"),
    ],
)
def test_client_accept_refuses(kwargs: dict[str, object], response: Params, message: str) -> None:
    with pytest.raises(HandshakeError, match=message):
        Deflate(**kwargs).client_accept(response)  # type: ignore[arg-type]


BAD_WINDOW_BITS = [
    "7",
    "16",
    "0",
    "09",
    "+9",
    "-9",
    " 9",
    "9 ",
    "9.0",
    "1e1",
    "0x9",
    "abc",
    "",
    "\u0661\u0660",
    "10a",
]


@pytest.mark.parametrize("value", BAD_WINDOW_BITS)
@pytest.mark.parametrize("name", ["server_max_window_bits", "client_max_window_bits"])
def test_window_bits_values_are_strict(name: str, value: str) -> None:
    with pytest.raises(HandshakeError, match="invalid"):
        Deflate().client_accept([(name, value)])
    with pytest.raises(HandshakeError, match="invalid"):
        Deflate().server_accept([[(name, value)]])


# -- server_accept --


@pytest.mark.parametrize(
    ("kwargs", "offer", "response", "expected"),
    [
        # (local_nct, remote_nct, local_bits, remote_bits) of the server codec
        ({}, [], "permessage-deflate", (False, False, 15, 15)),
        ({}, [("client_max_window_bits", None)], "permessage-deflate", (False, False, 15, 15)),
        (
            {},
            [("client_max_window_bits", "10")],
            "permessage-deflate; client_max_window_bits=10",  # echoed: a smaller inflater for free
            (False, False, 15, 10),
        ),
        (
            {},
            [("server_no_context_takeover", None)],
            "permessage-deflate; server_no_context_takeover",
            (True, False, 15, 15),
        ),
        (
            {},
            [("client_no_context_takeover", None)],
            "permessage-deflate; client_no_context_takeover",
            (False, True, 15, 15),
        ),
        (
            {"server_no_context_takeover": True, "client_no_context_takeover": True},
            [],
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            (True, True, 15, 15),
        ),
        (
            {},
            [("server_max_window_bits", "10")],
            "permessage-deflate; server_max_window_bits=10",
            (False, False, 10, 15),
        ),
        (
            {},
            [("server_max_window_bits", "8")],
            "permessage-deflate; server_max_window_bits=8",
            (False, False, 8, 15),
        ),
        (
            {"server_max_window_bits": 12},
            [("server_max_window_bits", "10")],
            "permessage-deflate; server_max_window_bits=10",
            (False, False, 10, 15),
        ),
        (
            {"server_max_window_bits": 9},
            [("server_max_window_bits", "12")],
            "permessage-deflate; server_max_window_bits=9",
            (False, False, 9, 15),
        ),
        (
            {"server_max_window_bits": 12},
            [],
            "permessage-deflate; server_max_window_bits=12",
            (False, False, 12, 15),
        ),
        (
            {"client_max_window_bits": 11},
            [("client_max_window_bits", None)],
            "permessage-deflate; client_max_window_bits=11",
            (False, False, 15, 11),
        ),
        (
            {"client_max_window_bits": 11},
            [("client_max_window_bits", "9")],
            "permessage-deflate; client_max_window_bits=9",
            (False, False, 15, 9),
        ),
        (
            {"client_max_window_bits": 11},
            [("client_max_window_bits", "13")],
            "permessage-deflate; client_max_window_bits=11",
            (False, False, 15, 11),
        ),
        (
            {"client_max_window_bits": None},
            [("client_max_window_bits", "12")],
            "permessage-deflate; client_max_window_bits=12",
            (False, False, 15, 12),
        ),
        (
            {"server_max_window_bits": 10, "client_max_window_bits": 9, "server_no_context_takeover": True},
            [
                ("client_no_context_takeover", None),
                ("server_max_window_bits", "14"),
                ("client_max_window_bits", None),
            ],
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10; client_max_window_bits=9",
            (True, True, 10, 9),
        ),
    ],
)
def test_server_accept(
    kwargs: dict[str, object], offer: Params, response: str, expected: tuple[bool, bool, int, int]
) -> None:
    accepted = Deflate(**kwargs).server_accept([offer])  # type: ignore[arg-type]
    assert accepted is not None
    value, codec = accepted
    assert value == response == codec.extension
    got = (
        codec.local_no_context_takeover,
        codec.remote_no_context_takeover,
        codec.local_max_window_bits,
        codec.remote_max_window_bits,
    )
    assert got == expected
    assert not codec.is_client


def test_server_limiting_the_client_window_declines_offers_without_it() -> None:
    deflate = Deflate(client_max_window_bits=10)
    assert deflate.server_accept([[]]) is None
    assert deflate.server_accept([[("server_no_context_takeover", None)]]) is None
    accepted = deflate.server_accept([[], [("client_max_window_bits", None)]])
    assert accepted is not None
    assert accepted[0] == "permessage-deflate; client_max_window_bits=10"


def test_server_accepts_the_first_acceptable_offer() -> None:
    offers: list[Params] = [
        [("server_max_window_bits", "10"), ("client_max_window_bits", None)],
        [("client_max_window_bits", None)],
    ]
    accepted = Deflate().server_accept(offers)
    assert accepted is not None
    assert accepted[0] == "permessage-deflate; server_max_window_bits=10"
    assert Deflate().server_accept([]) is None


@pytest.mark.parametrize(
    "offers",
    [
        [[("server_max_window_bits", "10"), ("server_max_window_bits", "10")]],
        [[("client_max_window_bits", None), ("client_max_window_bits", "9")]],
        [[("client_no_context_takeover", None), ("client_no_context_takeover", None)]],
        [[("server_no_context_takeover", "true")]],
        [[("x-unknown", "1")]],
        # A malformed offer fails the handshake even after (or before) an acceptable one.
        [[], [("server_max_window_bits", "20")]],
        [[("client_max_window_bits", "8x")], []],
    ],
)
def test_server_accept_refuses_malformed_offers(offers: list[Params]) -> None:
    with pytest.raises(HandshakeError):
        Deflate().server_accept(offers)


# -- negotiation interop with websockets' factories --

CONFIGS = [
    {},
    {"server_no_context_takeover": True},
    {"client_no_context_takeover": True},
    {"server_max_window_bits": 10},
    {"client_max_window_bits": 10},
    {"client_max_window_bits": None},
    {"server_max_window_bits": 12, "client_max_window_bits": 12, "client_no_context_takeover": True},
]


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_our_client_with_websockets_server(kwargs: dict[str, object]) -> None:
    deflate = Deflate(**kwargs)  # type: ignore[arg-type]
    for factory in (
        ServerPerMessageDeflateFactory(),
        ServerPerMessageDeflateFactory(server_max_window_bits=9, client_max_window_bits=9),
        ServerPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True),
    ):
        response_params, theirs = factory.process_request_params(header_params(deflate.client_offer()), [])
        ours = deflate.client_accept(list(response_params))
        check_codecs_interoperate(ours, theirs)


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_websockets_client_with_our_server(kwargs: dict[str, object]) -> None:
    deflate = Deflate(**kwargs)  # type: ignore[arg-type]
    for factory in (
        ClientPerMessageDeflateFactory(),
        ClientPerMessageDeflateFactory(server_max_window_bits=11, client_max_window_bits=11),
        ClientPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True),
    ):
        accepted = deflate.server_accept([list(factory.get_request_params())])
        if accepted is None:
            # Only a server limiting the client's window may decline, and only offers without it.
            assert type(deflate.client_max_window_bits) is int
            assert all(name != "client_max_window_bits" for name, _ in factory.get_request_params())
            continue
        response, ours = accepted
        theirs = factory.process_response_params(header_params(response), [])
        check_codecs_interoperate(ours, theirs)


def check_codecs_interoperate(ours: PerMessageDeflate, theirs: WsPerMessageDeflate) -> None:
    """Several messages both ways (context takeover exercised), each decoded by the other codec."""
    for seed in range(4):
        message = text_corpus(5000 + seed * 1000, seed % 2)
        frame = theirs.encode(Frame(Opcode.BINARY, message))
        assert frame.rsv1
        assert ours.decompress(frame.data, True, 10 * MiB) == message
        decoded = theirs.decode(Frame(Opcode.BINARY, ours.compress(message), rsv1=True), max_size=10 * MiB)
        assert decoded.data == message


# -- codec round trips --


@pytest.mark.parametrize("client_nct", [False, True])
@pytest.mark.parametrize("server_nct", [False, True])
@pytest.mark.parametrize("bits", [None, 8, 9, 12])
def test_round_trips(client_nct: bool, server_nct: bool, bits: int | None) -> None:
    client, server = pair(
        Deflate(
            server_no_context_takeover=server_nct,
            client_no_context_takeover=client_nct,
            server_max_window_bits=bits,
            client_max_window_bits=bits or True,
        )
    )
    rng = random.Random(42)
    messages = [b"", b"a", text_corpus(1000), os.urandom(3000), text_corpus(70000, 3), bytes(100000)]
    messages += [text_corpus(rng.randint(1, 20000), rng.randint(0, 3)) for _ in range(20)]
    for message in messages:
        for sender, receiver in ((client, server), (server, client)):
            payload = sender.compress(message)
            assert receiver.decompress(payload, True, len(message)) == message


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_compress_and_decompress_accept_buffers(kind: type) -> None:
    client, server = pair()
    message = text_corpus(10000)
    payload = client.compress(kind(message))
    assert server.decompress(kind(payload), True, MiB) == message
    big = text_corpus(300000, 1)
    assert server.decompress(kind(client.compress(big)), True, MiB) == big


def test_context_takeover_shares_the_window_across_messages() -> None:
    client, server = pair()
    message = text_corpus(4000)
    first = client.compress(message)
    second = client.compress(message)
    # The second copy is a back-reference to the first: the LZ77 window was kept.
    assert len(second) < len(first) / 10
    assert server.decompress(first, True, MiB) == message
    assert server.decompress(second, True, MiB) == message
    # A fresh inflater cannot decode the second one alone: it depends on the previous message.
    with pytest.raises(zlib.error):
        zlib.decompressobj(-15).decompress(second + b"\x00\x00\xff\xff")


@pytest.mark.parametrize("client_nct", [False, True])
def test_no_context_takeover_makes_every_message_self_contained(client_nct: bool) -> None:
    client, _ = pair(Deflate(client_no_context_takeover=client_nct))
    server_side, _ = pair(Deflate(server_no_context_takeover=True))
    for codec, reset in ((client, client_nct), (server_side, False)):
        message = text_corpus(4000)
        payloads = [codec.compress(message) for _ in range(3)]
        for payload in payloads[1:]:
            standalone = zlib.decompressobj(-15)
            if reset:
                assert standalone.decompress(payload + b"\x00\x00\xff\xff") == message
                assert len(payload) == len(payloads[0])
            else:
                with pytest.raises(zlib.error):
                    standalone.decompress(payload + b"\x00\x00\xff\xff")


def test_peer_no_context_takeover_resets_our_inflater() -> None:
    # The client promised not to use context takeover; a client that breaks the promise is caught (1007),
    # which shows the server's inflater really starts afresh per message.
    _, server = pair(Deflate(client_no_context_takeover=True))
    assert server.remote_no_context_takeover
    cheater = zlib.compressobj(6, zlib.DEFLATED, -15)
    message = text_corpus(3000)
    first = (cheater.compress(message) + cheater.flush(zlib.Z_SYNC_FLUSH))[:-4]
    second = (cheater.compress(message) + cheater.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert server.decompress(first, True, MiB) == message
    with pytest.raises(ProtocolError) as excinfo:
        server.decompress(second, True, MiB)
    assert excinfo.value.code == 1007
    # Whereas with context takeover the same pair decodes.
    _, keeping = pair()
    assert keeping.decompress(first, True, MiB) == message
    assert keeping.decompress(second, True, MiB) == message


def test_empty_message_after_others() -> None:
    client, server = pair()
    for message in (text_corpus(2000), b"", b"", text_corpus(2000), b""):
        payload = client.compress(message)
        assert server.decompress(payload, True, MiB) == message


# -- window bits 8 --


def distance_stress(rng: random.Random) -> bytes:
    """Repeats at every distance from 1 to 600: any distance > 256 would be used if allowed."""
    out = bytearray(os.urandom(600))
    for _ in range(100):
        distance = rng.randint(1, 600)
        length = rng.randint(3, 258)
        for _ in range(length):
            out.append(out[-distance])
        out += os.urandom(rng.randint(0, 5))
    return bytes(out)


def strict_inflate(inflater: zlib._Decompress, payload: bytes) -> bytes:
    """Inflate one message one output byte per inflate() call.

    zlib checks a distance against its window only when the match reaches back before the current call's
    output, so a plain decompress() call happily accepts distances up to everything it has output in that
    call. With one byte per call every match reads from the window, and a distance beyond 2**wbits fails.
    """
    out = bytearray()
    data = payload + b"\x00\x00\xff\xff"
    for start in range(0, len(data), 8):
        chunk = data[start : start + 8]
        while chunk:
            out += inflater.decompress(chunk, 1)
            chunk = inflater.unconsumed_tail
    for _ in range(len(data) * 1032 + 1):  # drain what is pending: at most deflate's ratio per input byte
        piece = inflater.decompress(b"", 1)
        if not piece:
            break
        out += piece
    return bytes(out)


def test_strict_8_bit_inflation_rejects_distances_beyond_256() -> None:
    # The control: without this, the window-8 tests below could not fail.
    block = os.urandom(300)
    payload = raw_deflate(block + block, wbits=15)
    assert strict_inflate(zlib.decompressobj(-9), payload) == block + block
    with pytest.raises(zlib.error, match="distance too far"):
        strict_inflate(zlib.decompressobj(-8), payload)


@pytest.mark.parametrize("level", range(-1, 10))
def test_window_bits_8_output_fits_an_8_bit_window(level: int) -> None:
    rng = random.Random(level)
    client, _ = pair(Deflate(client_max_window_bits=8, level=level))
    assert client.local_max_window_bits == 8
    inflater = zlib.decompressobj(-8)
    for _ in range(4):  # with context takeover: distances into earlier messages count too
        message = distance_stress(rng)
        assert strict_inflate(inflater, client.compress(message)) == message


def test_window_bits_8_both_ways_with_websockets() -> None:
    deflate = Deflate(server_max_window_bits=8, client_max_window_bits=8)
    client, server = pair(deflate)
    assert (server.local_max_window_bits, server.remote_max_window_bits) == (8, 8)
    # websockets cannot compress with 8 bits itself but can decompress it.
    theirs = WsPerMessageDeflate(False, False, 8, 9)
    rng = random.Random(8)
    for _ in range(5):
        message = distance_stress(rng)
        assert theirs.decode(Frame(Opcode.BINARY, server.compress(message), rsv1=True)).data == message
        assert client.decompress(server.compress(message), True, MiB) == message
        assert server.decompress(client.compress(message), True, MiB) == message


# -- fragmented messages --


def split(payload: bytes, rng: random.Random) -> Iterator[tuple[bytes, bool]]:
    """Cut a payload into frames of random sizes, empty ones included."""
    cuts = sorted(rng.randint(0, len(payload)) for _ in range(rng.randint(0, 12)))
    bounds = [0, *cuts, len(payload)]
    for index in range(len(bounds) - 1):
        yield payload[bounds[index] : bounds[index + 1]], index == len(bounds) - 2


@pytest.mark.parametrize("seed", range(10))
def test_fragmented_decompression(seed: int) -> None:
    rng = random.Random(seed)
    client, server = pair(Deflate(client_no_context_takeover=bool(seed % 2)))
    for size in (10, 5000, 200000):
        message = text_corpus(size, seed)
        payload = client.compress(message)
        pieces = []
        budget = len(message)
        for frame, fin in split(payload, rng):
            piece = server.decompress(frame, fin, budget)
            budget -= len(piece)
            pieces.append(piece)
        assert b"".join(pieces) == message
        assert budget == 0


def test_byte_by_byte_decompression() -> None:
    client, server = pair()
    message = text_corpus(3000)
    payload = client.compress(message)
    out = b"".join(server.decompress(payload[i : i + 1], i == len(payload) - 1, MiB) for i in range(len(payload)))
    assert out == message


def test_fragmented_message_over_budget_fails_in_a_later_frame() -> None:
    client, server = pair()
    message = text_corpus(100000)
    payload = client.compress(message)
    half = len(payload) // 2
    budget = 60000
    first = server.decompress(payload[:half], False, budget)
    assert len(first) <= budget
    with pytest.raises(PayloadTooBig):
        server.decompress(payload[half:], True, budget - len(first))


# -- max_size and the bomb --


@pytest.mark.parametrize("size", [0, 1, 1000, 2047, 2048, 65536, 65537, 300000])
def test_max_size_boundary(size: int) -> None:
    client, server = pair()
    message = text_corpus(size, 1)
    payload = client.compress(message)
    assert server.decompress(payload, True, size) == message
    if size:
        _, fresh = pair()
        with pytest.raises(PayloadTooBig) as excinfo:
            fresh.decompress(payload, True, size - 1)
        assert excinfo.value.code == 1009


def test_unlimited_budget() -> None:
    client, server = pair()
    message = text_corpus(100000)
    assert server.decompress(client.compress(message), True, 2**63) == message
    assert server.decompress(client.compress(message), True, sys.maxsize) == message
    with pytest.raises(ValueError):
        server.decompress(b"", True, -1)


def make_bomb(gib: int = 1) -> bytes:
    """A raw deflate payload of ~1 MiB that inflates to ``gib`` GiB of zeros.

    Deflate's best ratio is ~1032:1, so 1 GiB needs ~1 MiB of input (a 1 KiB message gives ~1 MiB at most).
    Once the window is full of zeros, every 1 MiB of zeros followed by a sync flush compresses to the same
    byte-aligned block, so the bomb is that block repeated; compressing the whole GiB would take seconds.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MiB)
    blocks = [compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH) for _ in range(3)]
    assert blocks[1] == blocks[2]
    return (blocks[0] + blocks[1] * (1024 * gib - 1))[:-4]


@pytest.fixture(scope="module")
def bomb() -> bytes:
    payload = make_bomb()
    # Sanity: the first 8 MiB really are zeros, and the payload is small.
    assert len(payload) < 1100 * 1024
    head = zlib.decompressobj(-15).decompress(payload, 8 * MiB)
    assert head == bytes(8 * MiB)
    return payload


def peak_memory_of(func: object, *args: object) -> tuple[int, BaseException | None]:
    """Peak traced memory (Python objects, zlib's buffers) while ``func(*args)`` runs; what it raised."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        error: BaseException | None = None
        try:
            func(*args)  # type: ignore[operator]
        except BaseException as exc:
            error = exc
        return tracemalloc.get_traced_memory()[1] - base, error
    finally:
        tracemalloc.stop()


def test_bomb_in_one_frame_stops_at_max_size(bomb: bytes) -> None:
    _, server = pair()
    max_size = MiB
    peak, error = peak_memory_of(server.decompress, bomb, True, max_size)
    assert isinstance(error, PayloadTooBig)
    assert error.code == 1009
    assert peak < 3 * max_size, f"peak {peak / max_size:.2f}x max_size"


def test_bomb_in_many_frames_stops_at_max_size(bomb: bytes) -> None:
    _, server = pair()
    max_size = MiB

    def feed() -> None:
        budget = max_size
        view = memoryview(bomb)
        for start in range(0, len(view), 16384):
            frame = view[start : start + 16384]
            budget -= len(server.decompress(frame, start + 16384 >= len(view), budget))

    peak, error = peak_memory_of(feed)
    assert isinstance(error, PayloadTooBig)
    assert peak < 3 * max_size, f"peak {peak / max_size:.2f}x max_size"


def test_small_bomb() -> None:
    # 1 KiB that inflates to 1 MiB, against a 64 KiB limit.
    payload = raw_deflate(bytes(MiB), level=9)
    assert len(payload) < 1100
    _, server = pair()
    with pytest.raises(PayloadTooBig):
        server.decompress(payload, True, 65536)
    _, server = pair()
    assert server.decompress(payload, True, MiB) == bytes(MiB)


# -- corrupt data --


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff",  # BTYPE 11 is reserved
        b"\x07\xff\xff\xff\xff",
        b"\x00\x05\x00\x00\x00",  # stored block whose NLEN is not ~LEN
        raw_deflate(b"hello world " * 100)[:-3] + b"\xff\xff\xff",  # damaged tail
    ],
)
def test_corrupt_data_is_1007(payload: bytes) -> None:
    _, server = pair()
    with pytest.raises(ProtocolError) as excinfo:
        server.decompress(payload, True, MiB)
    assert excinfo.value.code == 1007
    assert not isinstance(excinfo.value, PayloadTooBig)


def test_corrupt_large_payload_is_1007() -> None:
    _, server = pair()
    payload = raw_deflate(os.urandom(200000), level=1)
    damaged = payload[:1000] + bytes(b ^ 0x5A for b in payload[1000:100000]) + payload[100000:]
    with pytest.raises(ProtocolError) as excinfo:
        server.decompress(damaged, True, 10 * MiB)
    assert excinfo.value.code == 1007


def bfinal_payload(message: bytes) -> bytes:
    """A message ending with a BFINAL block (Z_FINISH), which RFC 7692 allows instead of a sync flush."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(message) + compressor.flush(zlib.Z_FINISH)


def test_message_ending_with_a_bfinal_block() -> None:
    _, server = pair()
    for message in (text_corpus(5000), text_corpus(100000, 2)):
        assert server.decompress(bfinal_payload(message), True, MiB) == message
        # The next message gets a fresh inflater.
        assert server.decompress(raw_deflate(b"next " * 500), True, MiB) == b"next " * 500


def test_context_takeover_survives_a_bfinal_block() -> None:
    # A peer that ends a message with BFINAL may still refer to it in the next message (its window lives on).
    _, server = pair()
    first = text_corpus(5000)
    assert server.decompress(bfinal_payload(first), True, MiB) == first
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=first)
    second = (compressor.compress(first) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert len(second) < 100  # one back-reference into the previous message
    assert server.decompress(second, True, MiB) == first


def test_data_after_a_bfinal_block_is_1007() -> None:
    _, server = pair()
    with pytest.raises(ProtocolError) as excinfo:
        server.decompress(bfinal_payload(b"x" * 2000) + b"\x01\x02\x03", True, MiB)
    assert excinfo.value.code == 1007
    _, server = pair()
    server.decompress(bfinal_payload(b"x" * 2000), False, MiB)
    with pytest.raises(ProtocolError):
        server.decompress(b"more", True, MiB)
