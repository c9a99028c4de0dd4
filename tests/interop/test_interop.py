"""wsstream against other implementations: Python `websockets` and Node `ws`, each as server and as client.

Every test runs four times (see ``kind`` in conftest.py) over real loopback sockets. Covered: text and binary
echo at the frame-length boundaries (0, 125, 126, 65535, 65536 bytes) and at 1 MiB and 16 MiB, fragmented
messages sent by the peer (text split inside UTF-8 characters, many and empty fragments) and by wsstream,
Ping/Pong both ways, close codes and reasons both ways, subprotocol negotiation, and permessage-deflate
(marked ``compression``).
"""

from __future__ import annotations

import asyncio
import json
import random

import pytest

import wsstream
from tests.interop.peers import Pair, command, fragments_command, open_pair

pytestmark = pytest.mark.timeout(120)

SIZES = [0, 125, 126, 65535, 65536, 2**20, 16 * 2**20]
#: One wait in a test; 16 MiB through a pure-Python path on a busy 2-core machine stays well inside it.
WAIT = 60.0


def text_of_size(size: int) -> str:
    """A str whose UTF-8 encoding is exactly size bytes, with 1-, 2-, 3- and 4-byte characters."""
    unit = "aé€😀"  # 1 + 2 + 3 + 4 bytes
    text = unit * (size // 10) + "a" * (size % 10)
    assert len(text.encode()) == size
    return text


def bytes_of_size(size: int) -> bytes:
    """size deterministic pseudo-random bytes."""
    return random.Random(size).randbytes(size)


async def recv(pair: Pair) -> str | bytes:
    """The next message, bounded."""
    return await asyncio.wait_for(pair.ws.recv(), WAIT)


async def peer_info(pair: Pair) -> dict[str, object]:
    """What the peer says it agreed to (subprotocol, extensions) and the request path."""
    await pair.ws.send(command("info"))
    reply = await recv(pair)
    assert isinstance(reply, str) and reply.startswith("!info "), reply
    info: dict[str, object] = json.loads(reply[len("!info ") :])
    return info


# --- echo


@pytest.mark.parametrize("size", SIZES)
async def test_text_echo(kind: str, size: int) -> None:
    message = text_of_size(size)
    async with open_pair(kind) as pair:
        await pair.ws.send(message)
        echoed = await recv(pair)
        assert isinstance(echoed, str)
        assert echoed == message


@pytest.mark.parametrize("size", SIZES)
async def test_binary_echo(kind: str, size: int) -> None:
    message = bytes_of_size(size)
    async with open_pair(kind) as pair:
        await pair.ws.send(message)
        echoed = await recv(pair)
        assert isinstance(echoed, bytes)
        assert echoed == message


async def test_messages_stay_in_order_and_typed(kind: str) -> None:
    messages: list[str | bytes] = [text_of_size(n) if n % 2 else bytes_of_size(n) for n in range(1, 60)]
    async with open_pair(kind) as pair:
        for message in messages:
            await pair.ws.send(message)
        for message in messages:
            assert await recv(pair) == message


# --- fragmentation


async def test_fragmented_text_from_peer_split_inside_characters(kind: str) -> None:
    whole = "Grüße, wörld! 😀 €uro ✓".encode()
    # 3-byte frames cut through the 2-, 3- and 4-byte characters.
    parts = [whole[i : i + 3] for i in range(0, len(whole), 3)]
    async with open_pair(kind) as pair:
        await pair.ws.send(fragments_command(parts, binary=False))
        assert await recv(pair) == whole.decode()


async def test_fragmented_binary_from_peer_many_and_empty_fragments(kind: str) -> None:
    parts = [b"", *(bytes([i % 256]) * 64 for i in range(1000)), b""]
    async with open_pair(kind) as pair:
        await pair.ws.send(fragments_command(parts, binary=True))
        assert await recv(pair) == b"".join(parts)
        # The connection is still in step afterwards.
        await pair.ws.send(b"after")
        assert await recv(pair) == b"after"


async def test_fragmented_message_sent_by_wsstream(kind: str) -> None:
    async with open_pair(kind) as pair:
        await pair.ws.send(["frag", "mént", "ed 😀"])
        assert await recv(pair) == "fragménted 😀"
        await pair.ws.send([b"\x00\x01", b"", b"\xff" * 70000])
        assert await recv(pair) == b"\x00\x01" + b"\xff" * 70000


# --- ping / pong


async def test_ping_from_wsstream_is_answered(kind: str) -> None:
    async with open_pair(kind) as pair:
        rtt = await asyncio.wait_for(pair.ws.ping(b"are you there"), WAIT)
        assert isinstance(rtt, float) and rtt >= 0
        await pair.ws.send("still open")
        assert await recv(pair) == "still open"


async def test_ping_from_peer_gets_a_pong(kind: str) -> None:
    async with open_pair(kind) as pair:
        await pair.ws.send(command("ping", data="peer-ping-1"))
        # The peer sends this only after the Pong carrying the same payload came back.
        assert await recv(pair) == "!pong peer-ping-1"


# --- closing


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (1001, "going away"), (4001, "wsstream dit adiós ✓")])
async def test_close_from_wsstream(kind: str, code: int, reason: str) -> None:
    async with open_pair(kind) as pair:
        await asyncio.wait_for(pair.ws.close(code, reason), WAIT)
        assert pair.ws.state is wsstream.State.CLOSED
        assert await asyncio.wait_for(asyncio.shield(pair.peer.closed), WAIT) == (code, reason)


async def test_normal_close_from_peer_ends_iteration(kind: str) -> None:
    async with open_pair(kind) as pair:
        await pair.ws.send(command("close", code=1000, reason="done here"))
        received = [message async for message in pair.ws]
        assert received == []
        assert (pair.ws.close_code, pair.ws.close_reason) == (1000, "done here")


async def test_error_close_from_peer_raises(kind: str) -> None:
    async with open_pair(kind) as pair:
        await pair.ws.send(command("close", code=4002, reason="peer dit adiós ✓"))
        with pytest.raises(wsstream.ConnectionClosedError) as caught:
            await recv(pair)
        assert (caught.value.code, caught.value.reason) == (4002, "peer dit adiós ✓")
        assert (pair.ws.close_code, pair.ws.close_reason) == (4002, "peer dit adiós ✓")
        await asyncio.wait_for(pair.ws.wait_closed(), WAIT)
        assert pair.ws.state is wsstream.State.CLOSED


# --- subprotocols


async def test_subprotocol_agreed(kind: str) -> None:
    # One protocol in common, so the answer does not depend on whose preference order wins.
    ours, theirs = ["chat.v2", "chat.v1"], ["chat.v1", "chat.v0"]
    if kind.endswith("-server"):
        ours, theirs = theirs, ours  # the client's list is the one without chat.v2
    async with open_pair(kind, subprotocols=ours, peer_subprotocols=theirs) as pair:
        assert pair.ws.subprotocol == "chat.v1"
        assert (await peer_info(pair))["protocol"] == "chat.v1"


async def test_no_subprotocol_when_none_offered(kind: str) -> None:
    # Only the server side has subprotocols; the client offers none.
    server_side = ["chat.v1"]
    if kind.endswith("-server"):
        pair_cm = open_pair(kind, peer_subprotocols=server_side)
    else:
        pair_cm = open_pair(kind, subprotocols=server_side)
    async with pair_cm as pair:
        assert pair.ws.subprotocol is None
        assert (await peer_info(pair))["protocol"] in ("", None)


# --- permessage-deflate


@pytest.mark.compression
async def test_deflate_negotiated_and_used(kind: str) -> None:
    compressible = "wsstream interop " * 70000  # > 1 MiB, well above the 1024-byte threshold
    incompressible = bytes_of_size(70000)
    async with open_pair(kind, deflate=True) as pair:
        assert pair.ws.extensions, "no extension agreed"
        assert pair.ws.extensions[0].startswith("permessage-deflate")
        assert "permessage-deflate" in str((await peer_info(pair))["extensions"])
        for message in (compressible, incompressible, "", b"", "short"):
            await pair.ws.send(message)
            assert await recv(pair) == message


@pytest.mark.compression
async def test_deflate_fragmented_from_peer(kind: str) -> None:
    whole = ("deflate across frames ✓ " * 4000).encode()
    parts = [whole[i : i + 1000] for i in range(0, len(whole), 1000)]
    async with open_pair(kind, deflate=True) as pair:
        await pair.ws.send(fragments_command(parts, binary=False))
        assert await recv(pair) == whole.decode()


@pytest.mark.compression
async def test_deflate_off_when_one_side_declines(kind: str) -> None:
    # wsstream offers/accepts deflate, the peer has it off: no extension, messages still flow.
    async with open_pair(kind, deflate=True, peer_deflate=False) as pair:
        assert pair.ws.extensions == []
        await pair.ws.send("x" * 5000)
        assert await recv(pair) == "x" * 5000
