"""The sans-I/O connection on hand-built frames: parsing, reassembly, control frames, close and every error path."""

from __future__ import annotations

import os
import struct

import pytest

from wsstream.core.deflate import Deflate
from wsstream.core.mask import py_apply_mask
from wsstream.core.protocol import CloseReceived, Connection, Ping, Pong, State
from wsstream.exceptions import PayloadTooBig, ProtocolError

KEY = b"\x01\x02\x03\x04"


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, mask: bytes | None = KEY,
          length: int | None = None) -> bytes:
    """A frame built by hand, independently of the code under test."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    mask_bit = 0x80 if mask is not None else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    return head + mask + py_apply_mask(payload, mask)


def server(**kwargs: object) -> Connection:
    return Connection(False, **kwargs)  # type: ignore[arg-type]


def client(**kwargs: object) -> Connection:
    return Connection(True, **kwargs)  # type: ignore[arg-type]


def failure(events: list[object]) -> ProtocolError:
    assert events and isinstance(events[-1], ProtocolError), events
    return events[-1]


def close_code_sent(conn: Connection) -> int:
    """The code of the Close frame the connection queued (server frames are unmasked)."""
    data = b"".join(conn.outgoing)
    assert data[0] == 0x88, data
    return int.from_bytes(data[2:4], "big")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 100_000])
def test_binary_message_all_length_forms(size: int) -> None:
    payload = os.urandom(size)
    assert server().receive_data(frame(2, payload)) == [payload]
    assert client().receive_data(frame(2, payload, mask=None)) == [payload]


def test_text_message() -> None:
    assert server().receive_data(frame(1, "héllo €".encode())) == ["héllo €"]


def test_byte_at_a_time_and_many_frames_per_chunk() -> None:
    data = frame(1, b"a" * 200) + frame(2, b"b" * 70000) + frame(9, b"p")
    conn = server()
    events: list[object] = []
    for i in range(len(data)):
        events += conn.receive_data(data[i : i + 1])
    assert events[:2] == ["a" * 200, b"b" * 70000]
    assert isinstance(events[2], Ping) and events[2].payload == b"p"
    assert server().receive_data(data)[:2] == events[:2]


def test_fragmented_message_with_interleaved_control_frames() -> None:
    conn = server()
    data = frame(1, b"fra", fin=False) + frame(9, b"x") + frame(0, b"gme", fin=False)
    data += frame(10, b"y") + frame(0, b"nt")
    events = conn.receive_data(data)
    assert isinstance(events[0], Ping) and isinstance(events[1], Pong)
    assert events[2] == "fragment"
    # the automatic pong went out, unmasked, with the ping's payload
    assert conn.outgoing == [b"\x8a\x01x"]


def test_fragmented_utf8_split_inside_a_character() -> None:
    euro = "€".encode()
    events = server().receive_data(frame(1, euro[:1], fin=False) + frame(0, euro[1:2], fin=False) + frame(0, euro[2:]))
    assert events == ["€"]


def test_empty_fragments_are_not_stored() -> None:
    conn = server(max_size=10)
    data = frame(2, b"", fin=False) + b"".join(frame(0, b"", fin=False) for _ in range(1000)) + frame(0, b"ok")
    assert conn.receive_data(data) == [b"ok"]


def test_auto_pong_off_delivers_ping_without_reply() -> None:
    conn = server(auto_pong=False)
    events = conn.receive_data(frame(9, b"hi"))
    assert isinstance(events[0], Ping) and conn.outgoing == []


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        (frame(2, b"x", rsv=4), 1002, "reserved bits"),
        (frame(2, b"x", rsv=2), 1002, "reserved bits"),
        (frame(2, b"x", rsv=1), 1002, "reserved bits"),
        (frame(3, b"x"), 1002, "reserved opcode"),
        (frame(7, b"x"), 1002, "reserved opcode"),
        (frame(11, b"x"), 1002, "reserved opcode"),
        (frame(15, b"x"), 1002, "reserved opcode"),
        (frame(9, b"x", fin=False), 1002, "fragmented control"),
        (frame(9, b"x" * 126), 1002, "longer than 125"),
        (frame(0, b"x"), 1002, "continuation"),
        (frame(1, b"a", fin=False) + frame(1, b"b"), 1002, "inside a fragmented"),
        (frame(2, b"x", mask=None), 1002, "unmasked"),
        (frame(1, b"\xff"), 1007, "UTF-8"),
        (frame(1, b"ok", fin=False) + frame(0, b"\xed\xa0\x80", fin=False), 1007, "UTF-8"),
        (frame(8, b"\x03"), 1002, "1-byte"),
        (frame(8, struct.pack("!H", 999)), 1002, "close code"),
        (frame(8, struct.pack("!H", 1005)), 1002, "close code"),
        (frame(8, struct.pack("!H", 1006)), 1002, "close code"),
        (frame(8, struct.pack("!H", 5000)), 1002, "close code"),
        (frame(8, struct.pack("!H", 1000) + b"\xff"), 1007, "UTF-8"),
        (b"\x82\xff" + struct.pack("!Q", 2**63) + KEY, 1002, "most significant"),
    ],
)
def test_protocol_errors_fail_with_the_right_code(data: bytes, code: int, message: str) -> None:
    conn = server()
    error = failure(conn.receive_data(data))
    assert error.code == code and message in str(error)
    assert close_code_sent(conn) == code
    assert conn.state == State.CLOSING and conn.failure is error
    # a failed connection parses nothing more
    assert conn.receive_data(frame(2, b"late")) == []


def test_utf8_fails_fast_on_the_first_invalid_fragment() -> None:
    conn = server()
    assert conn.receive_data(frame(1, b"ok", fin=False)) == []
    # The message is not finished, but the invalid byte is reported at once.
    assert failure(conn.receive_data(frame(0, b"\xc0\xaf", fin=False))).code == 1007


def test_masked_frame_from_server_is_rejected_by_client() -> None:
    assert failure(client().receive_data(frame(2, b"x"))).code == 1002


def test_max_size_checked_from_the_header_before_the_payload() -> None:
    conn = server(max_size=1000)
    # only the header of a 2000-byte frame: fails without waiting for the payload
    error = failure(conn.receive_data(frame(2, b"x" * 2000)[:8]))
    assert isinstance(error, PayloadTooBig) and error.code == 1009
    assert close_code_sent(conn) == 1009


def test_max_size_across_fragments() -> None:
    conn = server(max_size=1000)
    assert conn.receive_data(frame(2, b"x" * 600, fin=False)) == []
    assert failure(conn.receive_data(frame(0, b"x" * 600))).code == 1009


def test_max_size_exact_fits() -> None:
    assert server(max_size=1000).receive_data(frame(2, b"x" * 1000)) == [b"x" * 1000]


def test_rsv1_needs_deflate_and_a_first_data_frame() -> None:
    assert failure(server().receive_data(frame(2, b"x", rsv=4))).code == 1002
    codec = Deflate().client_accept([])
    conn = Connection(False, deflate=Deflate().server_accept([[]])[1])  # type: ignore[index]
    assert codec is not None
    assert failure(conn.receive_data(frame(9, b"x", rsv=4))).code == 1002
    conn = Connection(False, deflate=Deflate().server_accept([[]])[1])  # type: ignore[index]
    assert failure(conn.receive_data(frame(2, b"", fin=False) + frame(0, b"x", rsv=4))).code == 1002


def test_compressed_messages_round_trip_between_two_connections() -> None:
    offer = Deflate()
    response, server_codec = offer.server_accept([[("client_max_window_bits", None)]])  # type: ignore[misc]
    from wsstream.core.headers import parse_extension_list

    client_codec = offer.client_accept(parse_extension_list([response])[0][1])
    sender = Connection(True, deflate=client_codec)
    receiver = Connection(False, deflate=server_codec)
    text = "compress me " * 500
    data = sender.send_text(text.encode())
    assert data[0] & 0x40  # RSV1: compressed
    assert len(data) < len(text) // 5
    assert receiver.receive_data(data) == [text]
    small = sender.send_text(b"tiny")
    assert not small[0] & 0x40  # under the threshold: sent as is
    assert receiver.receive_data(small) == ["tiny"]
    assert not sender.send_binary(b"y" * 5000, compress=False)[0] & 0x40


def test_close_from_peer_is_echoed_and_stops_parsing() -> None:
    conn = server()
    events = conn.receive_data(frame(8, struct.pack("!H", 1001) + b"bye") + frame(2, b"after"))
    assert len(events) == 1 and isinstance(events[0], CloseReceived)
    assert (events[0].code, events[0].reason) == (1001, "bye")
    assert conn.outgoing == [b"\x88\x02\x03\xe9"]
    assert conn.state == State.CLOSING and conn.close_handshake_done


def test_empty_close_is_1005_and_answered_empty() -> None:
    conn = server()
    events = conn.receive_data(frame(8))
    assert isinstance(events[0], CloseReceived) and events[0].code == 1005
    assert conn.outgoing == [b"\x88\x00"]


def test_close_we_start_then_peer_answers() -> None:
    conn = client()
    data = conn.send_close(1000, "done")
    assert data[0] == 0x88 and data[1] & 0x80  # masked, as a client must
    assert conn.state == State.CLOSING and not conn.close_handshake_done
    assert conn.send_close(1000) == b""  # only one Close is ever sent
    events = conn.receive_data(frame(8, struct.pack("!H", 1000), mask=None))
    assert isinstance(events[0], CloseReceived)
    assert conn.outgoing == [] and conn.close_handshake_done


def test_messages_before_close_are_delivered() -> None:
    conn = server()
    events = conn.receive_data(frame(1, b"last") + frame(8, struct.pack("!H", 1000)))
    assert events[0] == "last" and isinstance(events[1], CloseReceived)


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
def test_send_close_refuses_codes_not_allowed_on_the_wire(code: int) -> None:
    with pytest.raises(ValueError):
        server().send_close(code)


def test_send_close_refuses_long_reason() -> None:
    with pytest.raises(ValueError):
        server().send_close(1000, "x" * 124)


def test_client_frames_are_masked_with_fresh_keys() -> None:
    conn = client()
    first = conn.send_binary(b"hello")
    second = conn.send_binary(b"hello")
    assert first[1] == 0x85 and second[1] == 0x85
    assert first[2:6] != second[2:6]
    assert server().receive_data(first) == [b"hello"]


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_serialised_lengths(size: int) -> None:
    data = server().send_binary(b"z" * size)
    assert client().receive_data(data) == [b"z" * size]


def test_ping_and_pong_payload_limits() -> None:
    with pytest.raises(ValueError):
        server().send_ping(b"x" * 126)
    with pytest.raises(ValueError):
        server().send_pong(b"x" * 126)
    assert server().send_ping(b"p") == b"\x89\x01p"


def test_eof_closes() -> None:
    conn = server()
    conn.receive_data(frame(2, b"partial")[:4])
    conn.receive_eof()
    assert conn.state == State.CLOSED
    assert conn.receive_data(frame(2, b"x")) == []


def test_skip_utf8_validation_replaces_instead_of_failing() -> None:
    assert server(skip_utf8_validation=True).receive_data(frame(1, b"a\xffb")) == ["a\ufffdb"]


@pytest.mark.parametrize("cut", [1, 2, 5, 9, 14, 70000, 70013, 70014, 70020])
def test_chunk_that_completes_a_buffered_frame_and_carries_more(cut: int) -> None:
    big = os.urandom(70000)
    data = frame(2, big) + frame(1, b"next") + frame(2, b"x" * 300)[:10]
    conn = server()
    events = conn.receive_data(data[:cut]) + conn.receive_data(data[cut:])
    assert events == [big, "next"]
    assert conn.receive_data(frame(2, b"x" * 300)[10:]) == [b"x" * 300]
