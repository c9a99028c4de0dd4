"""The asyncio message layer over real loopback sockets: messages, back-pressure, ping, close paths."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

import wsstream
from tests.support import echo
from wsstream import ConnectionClosedError, ConnectionClosedOK, State


def connect(uri: str, **kwargs: object) -> wsstream.connect:
    kwargs.setdefault("proxy", None)
    return wsstream.connect(uri, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 3 * 2**20])
async def test_echo_sizes(echo_uri: str, size: int) -> None:
    async with connect(echo_uri) as ws:
        data = os.urandom(size)
        await ws.send(data)
        assert await ws.recv() == data
        text = "é" * size
        await ws.send(text)
        assert await ws.recv() == text


async def test_message_types_and_binary_override(echo_uri: str) -> None:
    async with connect(echo_uri) as ws:
        await ws.send(bytearray(b"ba"))
        assert await ws.recv() == b"ba"
        await ws.send(memoryview(b"xmvx")[1:3])
        assert await ws.recv() == b"mv"
        await ws.send("as bytes", binary=True)
        assert await ws.recv() == b"as bytes"
        await ws.send(b"as text", binary=False)
        assert await ws.recv() == "as text"
        with pytest.raises(TypeError):
            await ws.send(42)  # type: ignore[arg-type]


async def test_fragmented_send_from_iterables(echo_uri: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"a", b"", b"bc", b"d" * 70000):
            yield part

    async with connect(echo_uri) as ws:
        await ws.send(["fr", "ag", "ment"])
        assert await ws.recv() == "fragment"
        await ws.send(chunks())
        assert await ws.recv() == b"abc" + b"d" * 70000
        await ws.send([])  # no chunks: no message
        await ws.send("after")
        assert await ws.recv() == "after"


async def test_async_for_ends_on_normal_close() -> None:
    async def handler(ws: wsstream.WebSocket) -> None:
        for i in range(3):
            await ws.send(str(i))
        await ws.close(1001, "going away")

    async with wsstream.serve(handler, "127.0.0.1", 0) as server:
        async with connect(f"ws://127.0.0.1:{server.port}") as ws:
            assert [m async for m in ws] == ["0", "1", "2"]
            assert (ws.close_code, ws.close_reason) == (1001, "going away")
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()
            with pytest.raises(ConnectionClosedOK):
                await ws.send("too late")


async def test_handler_exception_closes_with_1011() -> None:
    async def handler(ws: wsstream.WebSocket) -> None:
        await ws.recv()
        raise RuntimeError("boom")

    async with wsstream.serve(handler, "127.0.0.1", 0) as server:
        async with connect(f"ws://127.0.0.1:{server.port}") as ws:
            await ws.send("go")
            with pytest.raises(ConnectionClosedError) as info:
                async for _ in ws:
                    pass
            assert info.value.code == 1011


async def test_client_close_code_and_reason_reach_the_server() -> None:
    seen: asyncio.Future[tuple[int | None, str | None]] = asyncio.get_running_loop().create_future()

    async def handler(ws: wsstream.WebSocket) -> None:
        with pytest.raises(ConnectionClosedError):
            await ws.recv()
        seen.set_result((ws.close_code, ws.close_reason))

    async with wsstream.serve(handler, "127.0.0.1", 0) as server:
        ws = await connect(f"ws://127.0.0.1:{server.port}")
        await ws.close(4000, "custom")
        assert ws.state == State.CLOSED
        assert await asyncio.wait_for(seen, 5) == (4000, "custom")


async def test_abort_is_an_abnormal_close_for_the_peer() -> None:
    closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def handler(ws: wsstream.WebSocket) -> None:
        try:
            await ws.recv()
        except ConnectionClosedError as exc:
            closed.set_result(exc.code)

    async with wsstream.serve(handler, "127.0.0.1", 0) as server:
        ws = await connect(f"ws://127.0.0.1:{server.port}")
        ws.abort()
        await ws.wait_closed()
        assert ws.close_code == 1006
        assert await asyncio.wait_for(closed, 5) == 1006


async def test_server_close_closes_clients_with_1001(echo_server: wsstream.WebSocketServer, echo_uri: str) -> None:
    ws = await connect(echo_uri)
    assert len(echo_server.clients) == 1
    echo_server.close()
    await echo_server.wait_closed()
    with pytest.raises(ConnectionClosedOK):
        await ws.recv()
    assert ws.close_code == 1001
    assert not echo_server.clients


async def test_ping_measures_latency_and_pong(echo_uri: str) -> None:
    async with connect(echo_uri) as ws:
        rtt = await ws.ping(b"payload")
        assert rtt > 0 and ws.latency == rtt
        results = await asyncio.gather(ws.ping(), ws.ping(), ws.ping())
        assert all(r > 0 for r in results)
        with pytest.raises(ValueError):
            await ws.ping(b"x" * 126)
        await ws.pong(b"unsolicited")
        await ws.send("still fine")
        assert await ws.recv() == "still fine"


async def test_keepalive_fails_a_peer_that_never_pongs() -> None:
    async def silent(ws: wsstream.WebSocket) -> None:
        await ws.wait_closed()

    async with wsstream.serve(silent, "127.0.0.1", 0, ping_interval=None) as server:
        ws = await connect(f"ws://127.0.0.1:{server.port}", ping_interval=0.05, ping_timeout=0.05, auto_pong=True)
        # The server's automatic pong answers: the connection stays up across several keepalive rounds.
        await asyncio.sleep(0.3)
        assert ws.state == State.OPEN
        await ws.close()

    async with wsstream.serve(silent, "127.0.0.1", 0, ping_interval=None, auto_pong=False) as server:
        ws = await connect(f"ws://127.0.0.1:{server.port}", ping_interval=0.05, ping_timeout=0.05)
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.code == 1011


async def test_max_size_fails_the_connection_with_1009() -> None:
    async with wsstream.serve(echo, "127.0.0.1", 0, max_size=1000) as server:
        async with connect(f"ws://127.0.0.1:{server.port}") as ws:
            await ws.send(b"x" * 1000)
            assert await ws.recv() == b"x" * 1000
            await ws.send(b"x" * 1001)
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.code == 1009


async def test_client_max_size() -> None:
    async def big(ws: wsstream.WebSocket) -> None:
        await ws.send(b"y" * 5000)
        await ws.wait_closed()

    async with wsstream.serve(big, "127.0.0.1", 0) as server:
        ws = await connect(f"ws://127.0.0.1:{server.port}", max_size=4096)
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.code == 1009
        await ws.wait_closed()


async def test_unread_messages_pause_reading_and_bound_memory() -> None:
    sent = 0
    blocked = asyncio.Event()

    async def flood(ws: wsstream.WebSocket) -> None:
        nonlocal sent
        for _ in range(2000):
            await ws.send(b"z" * 65536)
            sent += 1
        blocked.set()

    async with wsstream.serve(flood, "127.0.0.1", 0, write_limit=65536) as server:
        ws = await connect(f"ws://127.0.0.1:{server.port}", max_queue=4, max_size=2**20)
        await asyncio.sleep(0.5)
        # The client reads nothing: its queue is capped and the server's sends are held back by TCP.
        assert not blocked.is_set()
        assert len(ws._messages or ()) <= 4 + 256 * 1024 // 65536 + 1
        assert sent < 200  # ~ queue + socket buffers, far from the 2000 it wants to send
        for _ in range(2000):
            assert await ws.recv() == b"z" * 65536
        await asyncio.wait_for(blocked.wait(), 10)
        await ws.close()


async def test_pause_reading_holds_messages_until_resumed(echo_uri: str) -> None:
    async with connect(echo_uri) as ws:
        ws.pause_reading()
        await ws.send("one")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.2)
        ws.resume_reading()
        assert await asyncio.wait_for(ws.recv(), 5) == "one"


async def test_send_waits_above_write_limit() -> None:
    async def sleeper(ws: wsstream.WebSocket) -> None:
        ws.pause_reading()
        await ws.wait_closed()

    async with wsstream.serve(sleeper, "127.0.0.1", 0) as server:
        ws = await connect(f"ws://127.0.0.1:{server.port}", write_limit=2**16)
        sends = 0

        async def writer() -> None:
            nonlocal sends
            for _ in range(10_000):
                await ws.send(b"w" * 65536)
                sends += 1

        task = asyncio.create_task(writer())
        await asyncio.sleep(0.5)
        assert not task.done() and sends < 500
        assert ws.buffered_amount <= 2**16 + 65536 + 14 or ws.buffered_amount > 0
        ws.abort()
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(task, 5)


async def test_cancelled_recv_loses_no_message(echo_uri: str) -> None:
    async with connect(echo_uri) as ws:
        for i in range(50):
            task = asyncio.create_task(ws.recv())
            await asyncio.sleep(0)
            await ws.send(str(i))
            await asyncio.sleep(0)
            task.cancel()
            try:
                got = await task
            except asyncio.CancelledError:
                got = await asyncio.wait_for(ws.recv(), 5)
            assert got == str(i)


async def test_concurrent_recv_is_an_error(echo_uri: str) -> None:
    async with connect(echo_uri) as ws:
        first = asyncio.create_task(ws.recv())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError):
            await ws.recv()
        await ws.send("x")
        assert await first == "x"


async def test_properties(echo_server: wsstream.WebSocketServer, echo_uri: str) -> None:
    async with connect(echo_uri, subprotocols=["chat"]) as ws:
        assert ws.state == State.OPEN
        assert ws.remote_address[1] == echo_server.port
        assert ws.local_address[0] == "127.0.0.1"
        assert ws.request is not None and ws.request.path == "/"
        assert ws.response is not None and ws.response.status == 101
        assert ws.subprotocol is None  # the server supports none
        assert ws.buffered_amount == 0
        assert ws.close_code is None
    assert ws.state == State.CLOSED and ws.close_code == 1000


async def test_messages_sent_before_a_close_are_answered_before_the_close_reply(echo_uri: str) -> None:
    # The client sends three messages and its Close back to back: the echo handler still answers each one,
    # because the server replies to the Close only once the queued messages have been read.
    ws = await connect(echo_uri)
    assert ws.transport is not None and ws._conn is not None
    conn = ws._conn
    burst = conn.send_text(b"one") + conn.send_text(b"two") + conn.send_text(b"three") + conn.send_close(1000)
    ws.transport.write(burst)
    received = []
    with pytest.raises(ConnectionClosedOK):
        while True:
            received.append(await asyncio.wait_for(ws.recv(), 5))
    assert received == ["one", "two", "three"]
    assert ws.close_code == 1000
    await ws.wait_closed()


@pytest.mark.parametrize("count", [1, 2])
async def test_a_message_handed_to_a_waiting_recv_with_the_close_is_still_answered(echo_uri: str, count: int) -> None:
    # The server's handler already waits in recv(): the first message goes to it directly, not to the queue.
    # It is unread all the same, so the Close reply must wait for the handler to answer it.
    ws = await connect(echo_uri)
    assert ws.transport is not None and ws._conn is not None
    await ws.send("warm-up")
    assert await asyncio.wait_for(ws.recv(), 5) == "warm-up"
    conn = ws._conn
    texts = [f"m{i}" for i in range(count)]
    ws.transport.write(b"".join(conn.send_text(t.encode()) for t in texts) + conn.send_close(1000))
    received = []
    with pytest.raises(ConnectionClosedOK):
        while True:
            received.append(await asyncio.wait_for(ws.recv(), 5))
    assert received == texts
    assert ws.close_code == 1000
    await ws.wait_closed()


async def test_handler_that_stops_reading_does_not_delay_the_close() -> None:
    async def waiter(ws: wsstream.WebSocket) -> None:
        await ws.wait_closed()

    async with wsstream.serve(waiter, "127.0.0.1", 0, close_timeout=30) as server:
        ws = await connect(f"ws://127.0.0.1:{server.port}")
        await ws.send("never read")
        # The server's handler reads nothing; our close must not wait for its 30 s close_timeout.
        await asyncio.wait_for(ws.close(), 5)
        assert ws.close_code == 1000
