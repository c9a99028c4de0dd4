"""permessage-deflate (RFC 7692): negotiation of the extension and the per-connection codec.

This module owns two things and imports no I/O:

* :class:`Deflate`, the user's configuration (exported as ``wsstream.Deflate``). It builds the client's
  offer (:meth:`Deflate.client_offer`), checks the server's answer (:meth:`Deflate.client_accept`) and, on a
  server, picks the first acceptable offer and answers it (:meth:`Deflate.server_accept`), following
  RFC 7692 section 7.1.
* :class:`PerMessageDeflate`, the agreed codec of one connection: :meth:`~PerMessageDeflate.compress` turns
  a whole message into a payload without the trailing ``00 00 ff ff`` (RFC 7692 section 7.2.1) and
  :meth:`~PerMessageDeflate.decompress` inflates one frame of a compressed message, never producing more than
  the caller's remaining ``max_size`` budget, so a deflate bomb costs at most ~2x ``max_size`` of memory.

Window bits 8: zlib refuses ``wbits=-8`` for raw deflate (madler/zlib#171, since zlib 1.2.9) while inflate
accepts it. When our side must compress with an LZ77 window of 2**8 bytes we compress with ``wbits=-9``.
That is still a valid 8-bit stream: zlib never emits a match distance above
``MAX_DIST = w_size - MIN_LOOKAHEAD``, 512 - 262 = 250 for 9 bits, so every back-reference fits a 256-byte
window (the tests check it with a window-8 inflater). So 8 is accepted everywhere, as RFC 7692 allows,
instead of being refused as Python ``websockets`` does.

A codec is not thread-safe: per connection, calls must not overlap (the asyncio layer may run one in a
worker thread).
"""

from __future__ import annotations

import sys
import zlib
from dataclasses import dataclass

from ..exceptions import HandshakeError, PayloadTooBig, ProtocolError

__all__ = ["EXTENSION_NAME", "Deflate", "PerMessageDeflate"]

EXTENSION_NAME = "permessage-deflate"

# The empty stored block a sync flush ends with: stripped on send, appended on receive (RFC 7692 7.2.1/7.2.2).
_TRAILER = b"\x00\x00\xff\xff"
# A compressed empty message: the header of an empty stored block whose LEN/NLEN are the stripped trailer.
_EMPTY_MESSAGE = b"\x00"
# Exact spellings only: "09", "+9", " 9" or "9.0" are refused (RFC 7692 7.1.2: a decimal integer 8..15).
_WINDOW_BITS = {str(bits): bits for bits in range(8, 16)}
# Below this size, copying the payload to append the trailer beats a second decompress() call.
_JOIN_TRAILER_BELOW = 2048
# max_length for zlib must fit a Py_ssize_t; a budget this large means "no limit" (max_length=0).
_UNLIMITED = sys.maxsize - 1
# Larger payloads are fed to zlib in slices of this size: when the output budget runs out zlib copies the
# unread input into unconsumed_tail, and a slice keeps that copy small (peak memory ~2x max_size, not 3x).
_INPUT_CHUNK = 65536

_Params = list[tuple[str, "str | None"]]


def _is_window_bits(value: object) -> bool:
    return type(value) is int and 8 <= value <= 15


@dataclass(frozen=True)
class Deflate:
    """Configuration of permessage-deflate, for a client (``connect``) or a server (``serve``).

    The knobs are ws's. On a client they shape the offer; on a server they shape the answer:

    * ``server_no_context_takeover``: client: ask the server to reset its compressor per message;
      server: always reset ours (and say so). An offer asking for it is always granted.
    * ``client_no_context_takeover``: client: reset our compressor per message (and tell the server);
      server: require the client to reset its compressor, so we can free our inflater between messages.
    * ``server_max_window_bits`` (8..15 or None): client: ask the server for at most this LZ77 window;
      server: use at most this window (answered even when the client did not ask).
    * ``client_max_window_bits`` (8..15, True or None): client: True offers the parameter without a value
      (the server may choose), an int offers that limit, None/False does not offer it; server: an int limits
      the client's window and declines offers that do not allow a limit (ws's behaviour), True/None do not
      limit (an offered value is still echoed: it shrinks our inflater for free).
    * ``level`` / ``mem_level``: zlib's compression level (-1..9) and memory level (1..9) of our compressor.
    * ``threshold``: messages shorter than this many bytes are sent uncompressed.
    * ``concurrency_limit``: stored for the asyncio layer (how many compressions may run in threads).
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | bool | None = True
    # zlib's own defaults (Z_DEFAULT_COMPRESSION is 6, DEF_MEM_LEVEL is 8), which ws uses too: level 6 costs
    # ~2.5x the time of level 1 for ~10% smaller payloads, memLevel 8 is ~30% faster than websockets' 5 at
    # window 15 for 128 KiB more per compressor. See docs/compression.md.
    level: int = 6
    mem_level: int = 8
    threshold: int = 1024
    concurrency_limit: int = 10

    def __post_init__(self) -> None:
        """Validate every option (ValueError), so a bad configuration fails before any connection."""
        if type(self.server_no_context_takeover) is not bool:
            raise ValueError("server_no_context_takeover must be a bool")
        if type(self.client_no_context_takeover) is not bool:
            raise ValueError("client_no_context_takeover must be a bool")
        if self.server_max_window_bits is not None and not _is_window_bits(self.server_max_window_bits):
            raise ValueError("server_max_window_bits must be None or an int between 8 and 15")
        cmwb = self.client_max_window_bits
        if cmwb is not None and type(cmwb) is not bool and not _is_window_bits(cmwb):
            raise ValueError("client_max_window_bits must be None, a bool or an int between 8 and 15")
        if type(self.level) is not int or not -1 <= self.level <= 9:
            raise ValueError("level must be an int between -1 and 9")
        if type(self.mem_level) is not int or not 1 <= self.mem_level <= 9:
            raise ValueError("mem_level must be an int between 1 and 9")
        if type(self.threshold) is not int or self.threshold < 0:
            raise ValueError("threshold must be an int >= 0")
        if type(self.concurrency_limit) is not int or self.concurrency_limit < 1:
            raise ValueError("concurrency_limit must be an int >= 1")

    # -- client side --

    def client_offer(self) -> str:
        """The Sec-WebSocket-Extensions value a client sends: one permessage-deflate offer."""
        params: _Params = []
        if self.server_no_context_takeover:
            params.append(("server_no_context_takeover", None))
        if self.client_no_context_takeover:
            params.append(("client_no_context_takeover", None))
        if self.server_max_window_bits is not None:
            params.append(("server_max_window_bits", str(self.server_max_window_bits)))
        cmwb = self.client_max_window_bits
        if cmwb is True:
            params.append(("client_max_window_bits", None))
        elif cmwb is not None and cmwb is not False:
            params.append(("client_max_window_bits", str(cmwb)))
        return _format(params)

    def client_accept(self, params: list[tuple[str, str | None]]) -> PerMessageDeflate:
        """Check the server's permessage-deflate response ``params`` against our offer; the negotiated codec.

        Raises HandshakeError when the response is malformed or is not an acceptable answer to the offer
        (RFC 7692 7.1: the client must then fail the connection).
        """
        snct, cnct, smwb, cmwb = _parse(params, offer=False)
        if self.server_no_context_takeover and not snct:
            raise HandshakeError("permessage-deflate: server_no_context_takeover requested, not answered")
        if self.server_max_window_bits is not None:
            if smwb is None:
                raise HandshakeError("permessage-deflate: server_max_window_bits requested, not answered")
            if smwb > self.server_max_window_bits:
                raise HandshakeError(
                    f"permessage-deflate: server_max_window_bits={smwb} is larger than the "
                    f"{self.server_max_window_bits} requested"
                )
        offered = self.client_max_window_bits
        if offered is None or offered is False:
            if cmwb is not None:
                raise HandshakeError("permessage-deflate: client_max_window_bits was not offered")
        elif offered is not True:
            if cmwb is None:
                # Our offered value is a promise about our own compressor: keep it.
                cmwb = offered
            elif cmwb > offered:
                raise HandshakeError(
                    f"permessage-deflate: client_max_window_bits={cmwb} is larger than the {offered} offered"
                )
        return PerMessageDeflate(
            is_client=True,
            extension=_format(params),
            local_no_context_takeover=cnct or self.client_no_context_takeover,
            remote_no_context_takeover=snct,
            local_max_window_bits=cmwb or 15,
            remote_max_window_bits=smwb or 15,
            level=self.level,
            mem_level=self.mem_level,
            threshold=self.threshold,
        )

    # -- server side --

    def server_accept(self, offers: list[list[tuple[str, str | None]]]) -> tuple[str, PerMessageDeflate] | None:
        """Answer the client's permessage-deflate ``offers`` (in their order of preference).

        Every offer is validated first, so a malformed or duplicate parameter in any of them raises
        HandshakeError (the server answers 400) whatever its position. Then the first acceptable offer wins:
        returns the response header value and the codec, or None when no offer is acceptable (the connection
        then runs uncompressed).
        """
        parsed = [_parse(params, offer=True) for params in offers]
        limit_client = self.client_max_window_bits
        if type(limit_client) is not int:  # True, False or None: we do not limit the client's window
            limit_client = None
        for snct, cnct, smwb, cmwb in parsed:
            if limit_client is not None and cmwb is None:
                # We want to cap the client's window (our inflater's memory) but this offer forbids answering
                # client_max_window_bits (RFC 7692 7.1.2.2): decline it, as ws does.
                continue
            snct = snct or self.server_no_context_takeover
            cnct = cnct or self.client_no_context_takeover
            if smwb is not None:
                if self.server_max_window_bits is not None:
                    smwb = min(smwb, self.server_max_window_bits)
            else:
                smwb = self.server_max_window_bits
            if limit_client is not None:
                cmwb = limit_client if cmwb is True or cmwb is None else min(cmwb, limit_client)
            elif cmwb is True:
                cmwb = None  # no value offered and we set no limit: the client keeps 15
            response: _Params = []
            if snct:
                response.append(("server_no_context_takeover", None))
            if cnct:
                response.append(("client_no_context_takeover", None))
            if smwb is not None:
                response.append(("server_max_window_bits", str(smwb)))
            if cmwb is not None:
                response.append(("client_max_window_bits", str(cmwb)))
            extension = _format(response)
            codec = PerMessageDeflate(
                is_client=False,
                extension=extension,
                local_no_context_takeover=snct,
                remote_no_context_takeover=cnct,
                local_max_window_bits=smwb or 15,
                remote_max_window_bits=int(cmwb or 15),
                level=self.level,
                mem_level=self.mem_level,
                threshold=self.threshold,
            )
            return extension, codec
        return None


def _format(params: _Params) -> str:
    """A permessage-deflate header element: the name then ``; name`` or ``; name=value`` per parameter."""
    parts = [EXTENSION_NAME]
    for name, value in params:
        parts.append(name if value is None else f"{name}={value}")
    return "; ".join(parts)


def _parse(params: _Params, *, offer: bool) -> tuple[bool, bool, int | None, int | bool | None]:
    """Validate one offer's or response's parameters (names already lowercased, values unquoted).

    Returns (server_no_context_takeover, client_no_context_takeover, server_max_window_bits,
    client_max_window_bits); the last is True for a valueless client_max_window_bits (offers only).
    Unknown or duplicate parameters and bad values raise HandshakeError.
    """
    snct = cnct = False
    smwb: int | None = None
    cmwb: int | bool | None = None
    seen: set[str] = set()
    for name, value in params:
        if name in seen:
            raise HandshakeError(f"permessage-deflate: duplicate parameter {name}")
        seen.add(name)
        if name == "server_no_context_takeover" or name == "client_no_context_takeover":
            if value is not None:
                raise HandshakeError(f"permessage-deflate: {name} takes no value, got {value!r}")
            if name[0] == "s":
                snct = True
            else:
                cnct = True
        elif name == "server_max_window_bits":
            if value is None or value not in _WINDOW_BITS:
                raise HandshakeError(f"permessage-deflate: invalid server_max_window_bits {value!r}")
            smwb = _WINDOW_BITS[value]
        elif name == "client_max_window_bits":
            if value is None:
                if not offer:
                    raise HandshakeError("permessage-deflate: client_max_window_bits without a value in a response")
                cmwb = True
            elif value in _WINDOW_BITS:
                cmwb = _WINDOW_BITS[value]
            else:
                raise HandshakeError(f"permessage-deflate: invalid client_max_window_bits {value!r}")
        else:
            raise HandshakeError(f"permessage-deflate: unknown parameter {name}")
    return snct, cnct, smwb, cmwb


def _limit(budget: int) -> int:
    """zlib's max_length for an output budget: one byte more than allowed, so exceeding it is detectable."""
    return budget + 1 if budget < _UNLIMITED else 0


def _inflate_chunked(decompressor: zlib._Decompress, payload: bytes | bytearray | memoryview, max_size: int) -> bytes:
    """Inflate a large payload slice by slice, raising PayloadTooBig as soon as the budget is exceeded."""
    view = memoryview(payload).cast("B")
    pieces = []
    produced = 0
    for start in range(0, len(view), _INPUT_CHUNK):
        piece = decompressor.decompress(view[start : start + _INPUT_CHUNK], _limit(max_size - produced))
        produced += len(piece)
        if produced > max_size:
            raise PayloadTooBig(f"decompressed message is larger than {max_size} bytes")
        if piece:
            pieces.append(piece)
    return b"".join(pieces)


class PerMessageDeflate:
    """The negotiated permessage-deflate codec of one connection ("local" is our side, "remote" the peer's).

    zlib objects are created on first use, so a connection that never sends (or receives) a compressed
    message never pays for a compressor (~256 KiB at the defaults) or an inflater (~40 KiB).
    """

    __slots__ = (
        "_compressor",
        "_decompressor",
        "_flush_mode",
        "_level",
        "_local_wbits",
        "_mem_level",
        "_remote_no_context_takeover",
        "_remote_wbits",
        "extension",
        "is_client",
        "local_max_window_bits",
        "local_no_context_takeover",
        "remote_max_window_bits",
        "remote_no_context_takeover",
        "threshold",
    )

    def __init__(
        self,
        *,
        is_client: bool,
        extension: str,
        local_no_context_takeover: bool,
        remote_no_context_takeover: bool,
        local_max_window_bits: int,
        remote_max_window_bits: int,
        level: int = 6,
        mem_level: int = 8,
        threshold: int = 1024,
    ) -> None:
        self.is_client = is_client
        self.extension = extension
        self.threshold = threshold
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_max_window_bits = local_max_window_bits
        self.remote_max_window_bits = remote_max_window_bits
        self._level = level
        self._mem_level = mem_level
        # zlib cannot deflate with a raw 8-bit window; 9 bits never emits a distance above 250 (module doc).
        self._local_wbits = -max(local_max_window_bits, 9)
        self._remote_wbits = -remote_max_window_bits
        self._remote_no_context_takeover = remote_no_context_takeover
        # Without context takeover a full flush empties the compressor's dictionary after every message: the
        # next message cannot reference this one, and we avoid reallocating ~256 KiB per message (measured
        # ~5x slower than the full flush for 1 KiB messages).
        self._flush_mode = zlib.Z_FULL_FLUSH if local_no_context_takeover else zlib.Z_SYNC_FLUSH
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None

    def __repr__(self) -> str:
        side = "client" if self.is_client else "server"
        return f"<PerMessageDeflate {side} {self.extension!r}>"

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        """Compress one whole message; the payload without the trailing 00 00 ff ff (RFC 7692 7.2.1)."""
        if not data:
            # An empty sync flush would emit nothing after a previous flush; an empty stored block is valid
            # whatever the state and leaves the compressor untouched.
            return _EMPTY_MESSAGE
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                self._level, zlib.DEFLATED, self._local_wbits, self._mem_level
            )
        head = compressor.compress(data)
        tail = compressor.flush(self._flush_mode)
        if head:
            return head + tail[:-4]
        return tail[:-4]

    def decompress(self, payload: bytes | bytearray | memoryview, fin: bool, max_size: int) -> bytes:
        """Inflate one frame of a compressed message (``fin``: its last one); at most ``max_size`` bytes out.

        ``max_size`` is the message's remaining budget (>= 0; sys.maxsize or more means unlimited). Raises
        PayloadTooBig (1009) as soon as more would come out — zlib is never asked for more than max_size + 1
        bytes, so memory stays ~max_size whatever the ratio — and ProtocolError 1007 on corrupt data.
        """
        if max_size < 0:
            raise ValueError("max_size must be >= 0")
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(self._remote_wbits)
        try:
            if fin and len(payload) < _JOIN_TRAILER_BELOW:
                data = decompressor.decompress(b"".join((payload, _TRAILER)), _limit(max_size))
                if len(data) > max_size:
                    raise PayloadTooBig(f"decompressed message is larger than {max_size} bytes")
            else:
                if len(payload) <= _INPUT_CHUNK:
                    data = decompressor.decompress(payload, _limit(max_size))
                    if len(data) > max_size:
                        raise PayloadTooBig(f"decompressed message is larger than {max_size} bytes")
                else:
                    data = _inflate_chunked(decompressor, payload, max_size)
                if fin:
                    # The trailer only completes an empty stored block, but a peer's odd bit stream could
                    # make it decode to more: keep to the budget.
                    left = max_size - len(data)
                    more = decompressor.decompress(_TRAILER, _limit(left))
                    if more:
                        if len(more) > left:
                            raise PayloadTooBig(f"decompressed message is larger than {max_size} bytes")
                        data += more
        except zlib.error as exc:
            self._decompressor = None
            raise ProtocolError(f"invalid compressed data: {exc}", 1007) from exc
        except PayloadTooBig:
            self._decompressor = None
            raise
        if decompressor.eof:
            # The peer ended its deflate stream with a block whose BFINAL bit is set, which RFC 7692 permits:
            # only our trailer may follow, and the next message needs a new inflater. With context takeover
            # the peer may still refer to this message: seed the new inflater's window with this call's
            # output (a reference beyond it fails as corrupt data, never silently).
            extra = decompressor.unused_data
            if extra and (not fin or extra != _TRAILER):
                self._decompressor = None
                raise ProtocolError("invalid compressed data: data after the final deflate block", 1007)
            if fin:
                if self._remote_no_context_takeover or not data:
                    self._decompressor = None
                else:
                    window = data[-(1 << -self._remote_wbits) :]
                    self._decompressor = zlib.decompressobj(self._remote_wbits, zdict=window)
        elif fin and self._remote_no_context_takeover:
            # The peer resets per message: drop the inflater and its window until the next compressed one.
            self._decompressor = None
        return data
