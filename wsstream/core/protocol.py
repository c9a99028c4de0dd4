"""The WebSocket connection state machine (RFC 6455 sections 5-7), without I/O.

Feed received bytes to :meth:`Connection.receive_data`; it returns the events they complete: a ``str`` for a text
message, ``bytes`` for a binary message (messages are reassembled here, so the common case costs no event object),
and :class:`Ping`, :class:`Pong`, :class:`CloseReceived` or, when the peer broke the protocol, the
:class:`~wsstream.exceptions.ProtocolError` the connection was failed with (always the last event).
Automatic replies (Pong to Ping, the Close echo, the Close that fails the connection) collect in
:attr:`Connection.outgoing`; the I/O layer writes and clears it after each call.
The ``send_*`` methods return the bytes to write.

Frames are parsed from the received buffer with an index rather than a coroutine per frame: this loop is the
hottest code in the library.
"""

from __future__ import annotations

import codecs
import enum
import os
from typing import TYPE_CHECKING, Union

from ..exceptions import PayloadTooBig, ProtocolError
from .frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    encode_close_payload,
    parse_close_payload,
)
from .mask import apply_mask, build_frame, parse_messages

if TYPE_CHECKING:
    from .deflate import PerMessageDeflate

__all__ = ["CloseReceived", "Connection", "Event", "Ping", "Pong", "State"]

DEFAULT_MAX_SIZE = 100 * 2**20
_MASK_POOL_SIZE = 4096


class State(enum.IntEnum):
    """The state of a connection, as ws and the browser API name them."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class Ping:
    """A Ping frame was received (already answered when ``auto_pong`` is on)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __repr__(self) -> str:
        return f"Ping({self.payload!r})"


class Pong:
    """A Pong frame was received."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __repr__(self) -> str:
        return f"Pong({self.payload!r})"


class CloseReceived:
    """The peer's Close frame; ``code`` is 1005 when it carried no status."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"CloseReceived({self.code}, {self.reason!r})"


Event = Union[str, bytes, Ping, Pong, CloseReceived, ProtocolError]

_new_utf8_decoder = codecs.getincrementaldecoder("utf-8")


def _frame_size(buf: bytearray) -> int | None:
    """Header plus payload length of the frame at the start of buf; None while its header is incomplete."""
    avail = len(buf)
    if avail < 2:
        return None
    b1 = buf[1]
    length = b1 & 0x7F
    hlen = 2
    if length == 126:
        if avail < 4:
            return None
        length = (buf[2] << 8) | buf[3]
        hlen = 4
    elif length == 127:
        if avail < 10:
            return None
        length = int.from_bytes(buf[2:10], "big")
        hlen = 10
    if b1 & 0x80:
        hlen += 4
    return hlen + length


class Connection:
    """One side of a WebSocket connection after the opening handshake.

    ``max_size`` bounds a whole message (after inflating, when permessage-deflate is on); ``None`` lifts the bound.
    There is deliberately no cap on the number of fragments: empty fragments are never stored, so memory is
    bounded by ``max_size`` alone and Autobahn's 65536-fragment messages pass.
    """

    __slots__ = (
        "_buffer",
        "_decoder",
        "_frag_compressed",
        "_frag_opcode",
        "_frag_parts",
        "_frag_size",
        "_mask_pool",
        "_mask_pos",
        "_stopped",
        "auto_close_reply",
        "auto_pong",
        "close_received",
        "close_sent",
        "deflate",
        "failure",
        "is_client",
        "max_size",
        "outgoing",
        "skip_utf8_validation",
        "state",
    )

    def __init__(
        self,
        is_client: bool,
        *,
        max_size: int | None = DEFAULT_MAX_SIZE,
        auto_pong: bool = True,
        skip_utf8_validation: bool = False,
        deflate: PerMessageDeflate | None = None,
        auto_close_reply: bool = True,
    ) -> None:
        self.is_client = is_client
        #: Answer the peer's Close at once. The asyncio layer turns this off to let the application answer the
        #: messages that arrived before the Close first (RFC 6455 5.5.1 allows the delay); it then calls
        #: :meth:`reply_to_close`.
        self.auto_close_reply = auto_close_reply
        self.max_size = max_size if max_size is not None else 2**63
        self.auto_pong = auto_pong
        self.skip_utf8_validation = skip_utf8_validation
        self.deflate = deflate
        self.state = State.OPEN
        #: Bytes the connection must send without being asked (Pong, Close replies); the I/O layer drains it.
        self.outgoing: list[bytes] = []
        #: (code, reason) of the Close frames received and sent, once they are.
        self.close_received: tuple[int, str] | None = None
        self.close_sent: tuple[int, str] | None = None
        #: The error the connection was failed with, if the peer broke the protocol.
        self.failure: ProtocolError | None = None
        self._buffer = bytearray()
        self._stopped = False
        self._frag_opcode = 0  # opcode of the fragmented message in progress, 0 when none
        self._frag_parts: list[bytes] | list[str] = []
        self._frag_size = 0
        self._frag_compressed = False
        self._decoder: codecs.IncrementalDecoder | None = None
        self._mask_pool = b""
        self._mask_pos = _MASK_POOL_SIZE

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Parse received bytes; return the events they complete, in order."""
        if self._stopped:
            return []
        if type(data) is memoryview:
            data = bytes(data)
        buf = self._buffer
        if buf:
            # Complete the pending frame with just the bytes it lacks instead of appending the whole chunk to the
            # buffer: with large frames that saves one copy of every byte and most of the allocator churn.
            need = _frame_size(buf)
            if need is None or need - len(buf) > len(data):
                buf += data
                return self._receive(buf, [])
            take = need - len(buf)
            buf += memoryview(data)[:take]
            events = self._receive(buf, [])
            if self._stopped or take == len(data):
                return events
            return self._receive(data, events, take)
        return self._receive(data, [])

    def _receive(self, data: bytes | bytearray, events: list[Event], pos: int = 0) -> list[Event]:
        """Parse the frames in data[pos:]; keep an incomplete last frame in the buffer."""
        buf = self._buffer
        end = len(data)
        if parse_messages is not None and not self._frag_opcode and not self.skip_utf8_validation:
            # Whole small text/binary frames in C; the loop below takes over at the first other frame.
            fast, pos = parse_messages(data, pos, self.is_client, self.max_size)
            if fast:
                events += fast
        try:
            while True:
                avail = end - pos
                if avail < 2:
                    break
                b0 = data[pos]
                b1 = data[pos + 1]
                length = b1 & 0x7F
                if length < 126:
                    hlen = 2
                elif length == 126:
                    if avail < 4:
                        break
                    length = (data[pos + 2] << 8) | data[pos + 3]
                    hlen = 4
                else:
                    if avail < 10:
                        break
                    length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                    if length >> 63:
                        raise ProtocolError("frame length has the most significant bit set")
                    hlen = 10
                opcode = b0 & 0x0F
                # Validate the header before waiting for its payload, so a bad frame fails at once.
                if b0 & 0x70 and not self._rsv_allowed(b0, opcode):
                    raise ProtocolError("reserved bits set")
                if opcode >= OP_CLOSE:
                    if opcode > OP_PONG:
                        raise ProtocolError(f"reserved opcode {opcode:#x}")
                    if not b0 & 0x80:
                        raise ProtocolError("fragmented control frame")
                    if length > 125:
                        raise ProtocolError("control frame payload longer than 125 bytes")
                elif opcode == OP_CONT:
                    if not self._frag_opcode:
                        raise ProtocolError("continuation frame outside a fragmented message")
                elif opcode > OP_BINARY:
                    raise ProtocolError(f"reserved opcode {opcode:#x}")
                elif self._frag_opcode:
                    raise ProtocolError("new data frame inside a fragmented message")
                masked = b1 & 0x80
                if masked:
                    if self.is_client:
                        raise ProtocolError("masked frame from the server")
                    hlen += 4
                elif not self.is_client:
                    raise ProtocolError("unmasked frame from the client")
                if opcode < OP_CLOSE and self._frag_size + length > self.max_size:
                    raise PayloadTooBig(f"message larger than max_size ({self.max_size} bytes)")
                if avail < hlen + length:
                    break
                start = pos + hlen
                pos = start + length
                if masked:
                    # Large payloads are unmasked from a view: slicing first would copy them twice.
                    payload: bytes | bytearray = apply_mask(
                        data[start:pos] if length < 16384 else memoryview(data)[start:pos], data[start - 4 : start]
                    )
                else:
                    payload = data[start:pos]
                if opcode == OP_TEXT or opcode == OP_BINARY:
                    if b0 & 0xC0 == 0x80:  # FIN, not compressed: a whole message in one frame
                        if opcode == OP_BINARY:
                            events.append(payload if type(payload) is bytes else bytes(payload))
                        elif self.skip_utf8_validation:
                            events.append(payload.decode(errors="replace"))
                        else:
                            try:
                                events.append(payload.decode())
                            except UnicodeDecodeError:
                                raise ProtocolError("invalid UTF-8 in a text message", 1007) from None
                    else:
                        self._start_message(opcode, bool(b0 & 0x40))
                        message = self._add_fragment(payload, bool(b0 & 0x80))
                        if message is not None:
                            events.append(message)
                elif opcode == OP_CONT:
                    message = self._add_fragment(payload, bool(b0 & 0x80))
                    if message is not None:
                        events.append(message)
                elif opcode == OP_PING:
                    payload = bytes(payload)
                    if self.auto_pong and self.close_sent is None:
                        self.outgoing.append(self._frame(0x80 | OP_PONG, payload))
                    events.append(Ping(payload))
                elif opcode == OP_PONG:
                    events.append(Pong(bytes(payload)))
                else:
                    events.append(self._receive_close(bytes(payload)))
                    break
        except ProtocolError as exc:
            events.append(self._fail(exc))
        if self._stopped:
            buf.clear()
        elif pos < end:
            if data is buf:
                del buf[:pos]
            else:
                buf[:] = memoryview(data)[pos:]
        elif data is buf:
            buf.clear()
        return events

    def receive_eof(self) -> None:
        """The peer closed the TCP connection (or it was lost)."""
        self.state = State.CLOSED
        self._stopped = True
        self._buffer = bytearray()
        self._frag_parts = []

    def _rsv_allowed(self, b0: int, opcode: int) -> bool:
        """RSV1 marks a compressed message: only on the first frame of a data message, only with deflate."""
        return (
            b0 & 0x70 == 0x40 and self.deflate is not None and (opcode == OP_TEXT or opcode == OP_BINARY)
        )

    def _start_message(self, opcode: int, compressed: bool) -> None:
        self._frag_opcode = opcode
        self._frag_parts = []
        self._frag_size = 0
        self._frag_compressed = compressed
        if opcode == OP_TEXT and not self.skip_utf8_validation:
            if self._decoder is None:
                self._decoder = _new_utf8_decoder()
            else:
                self._decoder.reset()

    def _add_fragment(self, payload: bytes | bytearray, fin: bool) -> str | bytes | None:
        """Add one frame's payload to the message in progress; return the message once ``fin`` completes it."""
        if self._frag_compressed:
            assert self.deflate is not None
            payload = self.deflate.decompress(payload, fin, self.max_size - self._frag_size)
        self._frag_size += len(payload)
        if self._frag_size > self.max_size:
            raise PayloadTooBig(f"message larger than max_size ({self.max_size} bytes)")
        parts = self._frag_parts
        if self._frag_opcode == OP_TEXT:
            if self._decoder is not None:
                try:
                    text = self._decoder.decode(payload, fin)
                except UnicodeDecodeError:
                    raise ProtocolError("invalid UTF-8 in a text message", 1007) from None
            else:
                text = bytes(payload).decode(errors="replace")
            if text:
                parts.append(text)  # type: ignore[arg-type]
            if not fin:
                return None
            message: str | bytes = "".join(parts)  # type: ignore[arg-type]
        else:
            if payload:
                parts.append(payload if type(payload) is bytes else bytes(payload))  # type: ignore[arg-type]
            if not fin:
                return None
            message = b"".join(parts)  # type: ignore[arg-type]
        self._frag_opcode = 0
        self._frag_parts = []
        self._frag_size = 0
        return message

    def _receive_close(self, payload: bytes) -> CloseReceived:
        code, reason = parse_close_payload(payload)
        self.close_received = (code, reason)
        if self.close_sent is None and self.auto_close_reply:
            self.outgoing.append(self.reply_to_close())
        self.state = State.CLOSING
        self._stopped = True
        return CloseReceived(code, reason)

    def reply_to_close(self) -> bytes:
        """The Close that answers the peer's: its code echoed (RFC 6455 5.5.1), empty for an empty one."""
        assert self.close_received is not None
        if self.close_sent is not None:
            return b""
        code = self.close_received[0]
        self.close_sent = (code, "")
        return self._frame(0x80 | OP_CLOSE, b"" if code == 1005 else code.to_bytes(2, "big"))

    @property
    def can_send_data(self) -> bool:
        """Data frames may still be sent: we have not sent a Close (even if the peer has) and TCP is up."""
        return self.close_sent is None and self.state != State.CLOSED

    def _fail(self, exc: ProtocolError) -> ProtocolError:
        """Fail the connection (RFC 6455 7.1.7): send a Close with the error's code and stop parsing."""
        self.failure = exc
        if self.close_sent is None:
            reason = str(exc).encode()[:123].decode(errors="ignore")
            self.outgoing.append(self._frame(0x80 | OP_CLOSE, encode_close_payload(exc.code, reason)))
            self.close_sent = (exc.code, reason)
        self.state = State.CLOSING
        self._stopped = True
        return exc

    # ------------------------------------------------------------------ sending

    def send_text(self, data: bytes | bytearray | memoryview, compress: bool = True) -> bytes:
        """A text message, already UTF-8 encoded, as one frame."""
        return self.send_data(OP_TEXT, data, compress)

    def send_binary(self, data: bytes | bytearray | memoryview, compress: bool = True) -> bytes:
        """A binary message as one frame."""
        return self.send_data(OP_BINARY, data, compress)

    def send_data(
        self, opcode: int, data: bytes | bytearray | memoryview, compress: bool = True, fin: bool = True
    ) -> bytes:
        """One frame of a data message; ``opcode`` is OP_CONT for frames after the first.

        When deflate is agreed, ``compress`` is true and the message reaches the threshold, the payload is
        compressed here. Fragmented messages are never compressed (each frame would need the whole message).
        """
        deflate = self.deflate
        if deflate is not None and compress and fin and opcode != OP_CONT and len(data) >= deflate.threshold:
            return self._frame(0xC0 | opcode, deflate.compress(data))
        return self._frame((0x80 if fin else 0) | opcode, data)

    def send_compressed(self, opcode: int, payload: bytes) -> bytes:
        """A message whose payload the caller already compressed with :attr:`deflate` (e.g. in a thread)."""
        return self._frame(0xC0 | opcode, payload)

    def send_ping(self, payload: bytes = b"") -> bytes:
        """A Ping frame (payload at most 125 bytes)."""
        if len(payload) > 125:
            raise ValueError("ping payload longer than 125 bytes")
        return self._frame(0x80 | OP_PING, payload)

    def send_pong(self, payload: bytes = b"") -> bytes:
        """A Pong frame (payload at most 125 bytes)."""
        if len(payload) > 125:
            raise ValueError("pong payload longer than 125 bytes")
        return self._frame(0x80 | OP_PONG, payload)

    def send_close(self, code: int | None = 1000, reason: str = "") -> bytes:
        """Start the closing handshake; returns b"" when a Close was already sent."""
        payload = encode_close_payload(code, reason)
        if self.close_sent is not None:
            return b""
        self.close_sent = (code if code is not None else 1005, reason)
        if self.state == State.OPEN:
            self.state = State.CLOSING
        return self._frame(0x80 | OP_CLOSE, payload)

    @property
    def close_handshake_done(self) -> bool:
        """Both Close frames have been exchanged (or the connection was failed): the server may drop TCP now."""
        return self.close_sent is not None and (self.close_received is not None or self.failure is not None)

    def _frame(self, first_byte: int, payload: bytes | bytearray | memoryview) -> bytes:
        if not self.is_client:
            return build_frame(first_byte, payload, None)
        pos = self._mask_pos
        if pos >= _MASK_POOL_SIZE:
            # One urandom call per 1024 frames instead of one per frame.
            self._mask_pool = os.urandom(_MASK_POOL_SIZE)
            pos = 0
        self._mask_pos = pos + 4
        return build_frame(first_byte, payload, self._mask_pool[pos : pos + 4])
