"""Every close path of the stream adapter: who closes, with which code, and what each side sees."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

import wsstream
from tests.streams.helpers import TIMEOUT, Recorder, ServerFactory
from wsstream.exceptions import ConnectionClosedError
from wsstream.streams import WebSocketTransport, create_connection, open_connection

WsServerFactory = Callable[..., Awaitable[str]]


Outcome = tuple[list[object], int | None, str | None]


def peer_recorder() -> tuple[Callable[[wsstream.WebSocket], Awaitable[None]], asyncio.Future[Outcome]]:
    """A message-API handler that records what it receives until the close, then (messages, code, reason)."""
    result: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

    async def handler(ws: wsstream.WebSocket) -> None:
        messages: list[object] = []
        try:
            async for message in ws:
                messages.append(message)
        except wsstream.ConnectionClosedError:
            pass
        await ws.wait_closed()
        result.set_result((messages, ws.close_code, ws.close_reason))

    return handler, result


async def test_write_eof_sends_close_1000_after_data_and_reads_to_eof(ws_server: WsServerFactory) -> None:
    handler, result = peer_recorder()
    reader, writer = await open_connection(await ws_server(handler), proxy=None)
    writer.write(b"last words")
    assert writer.can_write_eof()
    writer.write_eof()
    with pytest.raises(RuntimeError):
        writer.write(b"more")
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    messages, code, _ = await asyncio.wait_for(result, TIMEOUT)
    assert messages == [b"last words"]
    assert code == 1000
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), TIMEOUT)


async def test_after_write_eof_everything_the_peer_sent_before_its_close_arrives(
    ws_server: WsServerFactory,
) -> None:
    sent: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def flood(ws: wsstream.WebSocket) -> None:
        count = 0
        try:
            for _ in range(100_000):
                await ws.send(b"y" * 1000)
                count += 1000
        except wsstream.ConnectionClosed:
            pass
        sent.set_result(count)

    reader, writer = await open_connection(await ws_server(flood), proxy=None)
    received = len(await asyncio.wait_for(reader.readexactly(10_000), TIMEOUT))
    writer.write_eof()  # the peer is still sending: all it sent before answering our Close must arrive
    for _ in range(200_000):
        chunk = await asyncio.wait_for(reader.read(2**16), TIMEOUT)
        if not chunk:
            break
        received += len(chunk)
    assert received == await asyncio.wait_for(sent, TIMEOUT)
    assert received < 100_000_000  # the peer was stopped by our Close, not by running out


@pytest.mark.parametrize("how", ["option", "argument", "attribute"])
async def test_close_sends_the_chosen_code(ws_server: WsServerFactory, how: str) -> None:
    handler, result = peer_recorder()
    uri = await ws_server(handler)
    if how == "option":
        _reader, writer = await open_connection(uri, proxy=None, close_code=4001, close_reason="bye")
        writer.close()
    else:
        _reader, writer = await open_connection(uri, proxy=None)
        transport = writer.transport
        assert isinstance(transport, WebSocketTransport)
        if how == "argument":
            transport.close(4001, "bye")
        else:
            transport.close_code, transport.close_reason = 4001, "bye"
            writer.close()
    await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
    _, code, reason = await asyncio.wait_for(result, TIMEOUT)
    assert (code, reason) == (4001, "bye")


async def test_plain_close_is_1000_and_flushes_written_data(ws_server: WsServerFactory) -> None:
    handler, result = peer_recorder()
    _reader, writer = await open_connection(await ws_server(handler), proxy=None)
    for i in range(100):
        writer.write(b"%d," % i)
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
    messages, code, _ = await asyncio.wait_for(result, TIMEOUT)
    assert b"".join(messages) == b"".join(b"%d," % i for i in range(100))  # type: ignore[arg-type]
    assert code == 1000


@pytest.mark.parametrize("code", [1000, 1001])
async def test_peer_normal_close_is_eof_and_a_later_write_raises(ws_server: WsServerFactory, code: int) -> None:
    async def handler(ws: wsstream.WebSocket) -> None:
        await ws.send(b"bye")
        await ws.close(code)

    reader, writer = await open_connection(await ws_server(handler), proxy=None)
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"bye"
    with pytest.raises(ConnectionClosedError) as caught:
        writer.write(b"into the void")
    assert caught.value.code == code
    await asyncio.wait_for(writer.wait_closed(), TIMEOUT)


async def test_peer_abnormal_close_raises_on_read_and_drain(ws_server: WsServerFactory) -> None:
    async def handler(ws: wsstream.WebSocket) -> None:
        await ws.close(1011, "server broke")

    reader, writer = await open_connection(await ws_server(handler), proxy=None)
    with pytest.raises(ConnectionClosedError) as caught:
        await asyncio.wait_for(reader.read(), TIMEOUT)
    assert (caught.value.code, caught.value.reason) == (1011, "server broke")
    with pytest.raises(ConnectionClosedError):
        writer.write(b"x")
    with pytest.raises(ConnectionClosedError):
        await asyncio.wait_for(writer.drain(), TIMEOUT)


async def test_peer_drops_tcp_without_close_is_1006(ws_server: WsServerFactory) -> None:
    async def handler(ws: wsstream.WebSocket) -> None:
        await ws.send(b"partial")
        ws.abort()

    reader, _writer = await open_connection(await ws_server(handler), proxy=None)
    with pytest.raises(ConnectionClosedError) as caught:
        await asyncio.wait_for(reader.read(), TIMEOUT)
    assert caught.value.code == 1006


async def test_abort_drops_the_connection_and_calls_connection_lost_none(ws_server: WsServerFactory) -> None:
    handler, result = peer_recorder()
    transport, protocol = await create_connection(Recorder, await ws_server(handler), proxy=None)
    transport.abort()
    assert transport.is_closing()
    assert await asyncio.wait_for(protocol.lost, TIMEOUT) is None
    _, code, _ = await asyncio.wait_for(result, TIMEOUT)
    assert code == 1006


async def test_server_close_reaches_client_as_eof(stream_server: ServerFactory) -> None:
    started = asyncio.Event()

    async def callback(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        started.set()
        await reader.read()

    server = await wsstream.streams.start_server(callback, "127.0.0.1", 0)
    reader, _writer = await open_connection(f"ws://127.0.0.1:{server.port}/", proxy=None)
    await asyncio.wait_for(started.wait(), TIMEOUT)
    server.close()  # 1001 Going Away: a normal close
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    await asyncio.wait_for(server.wait_closed(), TIMEOUT)


async def test_callback_exception_closes_with_1011(
    stream_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def callback(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise ValueError("boom")

    reader, _writer = await open_connection(await stream_server(callback), proxy=None)
    with pytest.raises(ConnectionClosedError) as caught:
        await asyncio.wait_for(reader.read(), TIMEOUT)
    assert caught.value.code == 1011
    assert "Unhandled exception in client_connected_cb" in caplog.text


async def test_close_completes_while_reading_is_paused(stream_server: ServerFactory) -> None:
    # The server floods; the client never reads, so its socket is paused; close() must still finish.
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                writer.write(b"x" * 65536)
                await writer.drain()
        except ConnectionClosedError:
            pass

    _reader, writer = await open_connection(await stream_server(flood), proxy=None, limit=1024)
    transport = writer.transport
    assert isinstance(transport, WebSocketTransport)
    for _ in range(1000):
        if not transport.is_reading():
            break
        await asyncio.sleep(0.01)
    assert not transport.is_reading()
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
    assert transport.websocket.state == wsstream.State.CLOSED


async def test_callback_order_for_a_clean_exchange(ws_server: WsServerFactory) -> None:
    async def handler(ws: wsstream.WebSocket) -> None:
        await ws.send(b"one")
        await ws.send("two")
        await ws.close()

    transport, protocol = await create_connection(Recorder, await ws_server(handler), proxy=None)
    assert await asyncio.wait_for(protocol.lost, TIMEOUT) is None
    assert protocol.names() == ["connection_made", "data_received", "eof_received", "connection_lost"]
    assert protocol.data() == b"onetwo"
    assert transport.is_closing()


async def test_eof_received_false_closes_the_transport(ws_server: WsServerFactory) -> None:
    async def handler(ws: wsstream.WebSocket) -> None:
        await ws.close()

    _transport, protocol = await create_connection(
        lambda: Recorder(keep_open_on_eof=False), await ws_server(handler), proxy=None
    )
    assert await asyncio.wait_for(protocol.lost, TIMEOUT) is None
    assert protocol.names() == ["connection_made", "eof_received", "connection_lost"]


async def test_abnormal_close_order_skips_eof(ws_server: WsServerFactory) -> None:
    answered: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def handler(ws: wsstream.WebSocket) -> None:
        await ws.send(b"data")
        await ws.close(4000)  # returns once the client answers (close_timeout is far longer than the test's wait)
        answered.set_result(ws.close_code)

    # Data and Close often arrive with the handshake response, before the transport takes the messages over.
    _transport, protocol = await create_connection(
        Recorder, await ws_server(handler, close_timeout=10 * TIMEOUT), proxy=None, close_timeout=10 * TIMEOUT
    )
    exc = await asyncio.wait_for(protocol.lost, TIMEOUT)
    assert isinstance(exc, ConnectionClosedError) and exc.code == 4000
    assert protocol.names() == ["connection_made", "data_received", "connection_lost"]
    assert await asyncio.wait_for(answered, TIMEOUT) == 4000


async def test_text_mode_close_with_an_incomplete_character_is_1007(ws_server: WsServerFactory) -> None:
    handler, result = peer_recorder()
    _reader, writer = await open_connection(await ws_server(handler), proxy=None, mode="text")
    writer.write("é".encode()[:1])
    with pytest.raises(RuntimeError):
        writer.write_eof()
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
    messages, code, _ = await asyncio.wait_for(result, TIMEOUT)
    assert (messages, code) == ([], 1007)


async def test_extra_info(ws_server: WsServerFactory) -> None:
    handler, _ = peer_recorder()
    uri = await ws_server(handler, subprotocols=["chat"])
    _reader, writer = await open_connection(uri, proxy=None, subprotocols=["chat"])
    ws = writer.get_extra_info("websocket")
    assert isinstance(ws, wsstream.WebSocket)
    assert writer.get_extra_info("subprotocol") == "chat"
    assert writer.get_extra_info("peername")[1] == int(uri.rsplit(":", 1)[1].strip("/"))
    assert writer.get_extra_info("sockname") == ws.local_address
    assert writer.get_extra_info("ssl_object") is None
    assert writer.get_extra_info("nonsense", "dflt") == "dflt"
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
