"""How stream bytes map onto messages: binary and text modes, split UTF-8, the message size cap, incoming types."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest

import wsstream
from tests.streams.helpers import TIMEOUT, ServerFactory
from wsstream.streams import open_connection

WsServerFactory = Callable[..., Awaitable[str]]


def collector() -> tuple[Callable[[wsstream.WebSocket], Awaitable[None]], asyncio.Future[list[str | bytes]]]:
    """A message-API handler that returns every message it received, once the client has closed."""
    result: asyncio.Future[list[str | bytes]] = asyncio.get_running_loop().create_future()

    async def handler(ws: wsstream.WebSocket) -> None:
        result.set_result([message async for message in ws])

    return handler, result


async def test_binary_mode_sends_each_write_as_a_binary_message(ws_server: WsServerFactory) -> None:
    handler, result = collector()
    _, writer = await open_connection(await ws_server(handler), proxy=None)
    writer.write(b"abc")
    writer.writelines([b"de", bytearray(b"f"), memoryview(b"gh")])
    writer.write(b"")  # nothing at all: no empty message
    writer.close()
    assert await asyncio.wait_for(result, TIMEOUT) == [b"abc", b"defgh"]


async def test_text_mode_holds_a_split_character_until_complete(ws_server: WsServerFactory) -> None:
    handler, result = collector()
    _, writer = await open_connection(await ws_server(handler), proxy=None, mode="text")
    text = "naïve café 日本語 🎉 end"
    encoded = text.encode()
    rng = random.Random(7)
    pos = 0
    while pos < len(encoded):
        step = rng.randint(1, 3)
        writer.write(encoded[pos : pos + step])
        pos += step
    writer.close()
    messages = await asyncio.wait_for(result, TIMEOUT)
    assert all(type(m) is str for m in messages)
    assert "".join(messages) == text  # type: ignore[arg-type]


async def test_text_mode_every_byte_split_of_a_four_byte_character(ws_server: WsServerFactory) -> None:
    handler, result = collector()
    _, writer = await open_connection(await ws_server(handler), proxy=None, mode="text")
    emoji = "🎉".encode()
    for cut in range(1, 4):
        writer.write(emoji[:cut])
        writer.write(emoji[cut:])
    writer.close()
    assert await asyncio.wait_for(result, TIMEOUT) == ["🎉", "🎉", "🎉"]


async def test_text_mode_rejects_invalid_utf8_and_sends_nothing(ws_server: WsServerFactory) -> None:
    handler, result = collector()
    _, writer = await open_connection(await ws_server(handler), proxy=None, mode="text")
    with pytest.raises(UnicodeDecodeError):
        writer.write(b"ok \xff bad")
    writer.write(b"fine")
    writer.close()
    assert await asyncio.wait_for(result, TIMEOUT) == ["fine"]


async def test_max_message_size_splits_writes_without_splitting_characters(ws_server: WsServerFactory) -> None:
    handler, result = collector()
    _, writer = await open_connection(await ws_server(handler), proxy=None, mode="text", max_message_size=10)
    text = "aé日🎉" * 20
    writer.write(text.encode())
    writer.close()
    messages = await asyncio.wait_for(result, TIMEOUT)
    assert "".join(messages) == text  # type: ignore[arg-type]
    assert len(messages) > 1
    assert all(len(m.encode()) <= 10 for m in messages)  # type: ignore[union-attr]


async def test_max_message_size_in_binary_mode(ws_server: WsServerFactory) -> None:
    handler, result = collector()
    _, writer = await open_connection(await ws_server(handler), proxy=None, max_message_size=1000)
    data = bytes(range(256)) * 10
    writer.write(data)
    writer.close()
    messages = await asyncio.wait_for(result, TIMEOUT)
    assert [len(m) for m in messages] == [1000, 1000, 560]
    assert b"".join(messages) == data  # type: ignore[arg-type]


async def test_incoming_text_and_binary_both_arrive_as_bytes_in_order(ws_server: WsServerFactory) -> None:
    async def handler(ws: wsstream.WebSocket) -> None:
        await ws.send("héllo ")
        await ws.send(b"\x00\x01 ")
        await ws.send("")
        await ws.send(["frag", "mented"])
        await ws.close()

    reader, _ = await open_connection(await ws_server(handler), proxy=None, mode="text")
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == "héllo ".encode() + b"\x00\x01 fragmented"


async def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        await open_connection("ws://127.0.0.1:1/", proxy=None, mode="utf8")  # type: ignore[arg-type]


async def test_write_rejects_non_bytes(ws_server: WsServerFactory) -> None:
    handler, result = collector()
    _, writer = await open_connection(await ws_server(handler), proxy=None)
    with pytest.raises(TypeError):
        writer.write("text is not bytes")  # type: ignore[arg-type]
    writer.close()
    assert await asyncio.wait_for(result, TIMEOUT) == []


async def test_permessage_deflate_when_negotiated(stream_server: ServerFactory) -> None:
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def callback(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()
        received.set_result(data)
        writer.close()

    uri = await stream_server(callback, compression="deflate")
    reader, writer = await open_connection(uri, proxy=None, compression="deflate")
    assert writer.get_extra_info("websocket").extensions  # negotiated: messages over the threshold are compressed
    text = b"compressible stream data " * 20_000
    writer.write(text)
    writer.write_eof()
    assert await asyncio.wait_for(received, TIMEOUT) == text
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    writer.close()
