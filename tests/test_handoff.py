"""wsstream.handoff (settle/wake on plain Futures), the hand-off behind ``WebSocket.recv()``, and recv() over it.

Covered here:

* ``settle()`` completes a Future without scheduling its waiters; ``wake()`` from a plain loop callback then
  runs the waiting task's next step before it returns, as that task (``current_task()``, its own context), runs
  other callbacks in the contexts they were added in, and leaves the caller's context alone; from inside a
  running task it falls back to scheduling. Checked on the C Future and on the pure-Python one.
* The settled Future still behaves as a Future (state, InvalidStateError, late callbacks), and a task cancelled
  between settle() and wake(), or before settle(), sees CancelledError with asyncio's cancel message.
* recv() on real loopback connections: timeouts (``wait_for``, ``asyncio.timeout``) leave the connection usable,
  1000 echoes and pipelined bursts arrive in order (resumed inside data_received), a message that comes with the
  Close is returned before ConnectionClosedOK, and a recv() cancelled as its message arrives does not lose it.
* The synchronous wake path on uvloop.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

import wsstream
from wsstream import ConnectionClosedOK
from wsstream.handoff import settle, settle_exception, wake

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

OP_TEXT, OP_CLOSE = 0x1, 0x8


def connect(uri: str, **kwargs: object) -> wsstream.connect:
    kwargs.setdefault("proxy", None)
    return wsstream.connect(uri, **kwargs)  # type: ignore[arg-type]


def server_frame(opcode: int, payload: bytes) -> bytes:
    """A small unmasked frame, as a server sends it (to feed a client's ``data_received``)."""
    assert len(payload) < 126
    return bytes((0x80 | opcode, len(payload))) + payload


def text(message: str) -> bytes:
    return server_frame(OP_TEXT, message.encode())


def close_frame(code: int, reason: str = "") -> bytes:
    return server_frame(OP_CLOSE, code.to_bytes(2, "big") + reason.encode())


def resumed_by_wake() -> bool:
    """Whether the calling coroutine's current step was run by ``wake()`` (no trip through the event loop)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is wake.__code__:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


async def waiting(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Start ``coro`` in a task and let it run up to its first await."""
    task = asyncio.create_task(coro)
    await asyncio.sleep(0)
    assert not task.done()
    return task


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def settle_and_wake_soon(
    future: asyncio.Future[Any], result: Any, probe: Callable[[], object] = lambda: None
) -> asyncio.Future[dict[str, Any]]:
    """From a plain loop callback: settle ``future``, wake it, and report what was true right after wake()."""
    loop = future.get_loop()
    report: asyncio.Future[dict[str, Any]] = loop.create_future()

    def callback() -> None:
        var.set("callback")
        before = asyncio.current_task()
        wake(future, settle(future, result))
        report.set_result({"before": before, "probe": probe(), "after": asyncio.current_task(), "var": var.get()})

    loop.call_soon(callback)
    return report


#: The C Future (what loop.create_future() returns) and the pure-Python one, whose callback list settle() copies.
FUTURES: dict[str, Callable[[asyncio.AbstractEventLoop], asyncio.Future[Any]]] = {
    "c-future": lambda loop: loop.create_future(),
    "py-future": lambda loop: asyncio.futures._PyFuture(loop=loop),  # type: ignore[attr-defined]
}


@pytest.fixture(params=list(FUTURES))
def make(request: pytest.FixtureRequest) -> Callable[[], asyncio.Future[Any]]:
    factory = FUTURES[request.param]
    return lambda: factory(asyncio.get_running_loop())


# --------------------------------------------------------------------------------------- settle / wake


async def test_wake_from_a_loop_callback_runs_the_task_before_returning(make: Callable[[], Any]) -> None:
    future = make()
    log: list[tuple[str, bool, str]] = []

    async def waiter() -> str:
        var.set("task")
        me = asyncio.current_task()
        value = await future
        log.append((value, asyncio.current_task() is me, var.get()))
        return value

    task = await waiting(waiter())
    seen_in_callback: list[object] = []
    future.add_done_callback(lambda _: seen_in_callback.append((list(log), task.done())))
    report = await settle_and_wake_soon(future, "hello", probe=lambda: (list(log), task.done()))
    assert report["before"] is None
    assert report["probe"] == ([("hello", True, "task")], True)  # all done by the time wake() returned
    # The task ran inside wake(), as itself, in its own context; the callback added after it ran after it.
    assert log == [("hello", True, "task")]
    assert seen_in_callback == [([("hello", True, "task")], True)]
    assert task.result() == "hello"
    assert report["after"] is None  # the task was left again
    assert report["var"] == "callback"  # the caller's context is untouched...
    assert var.get() == "unset"  # ...and so is the test's


async def test_wake_runs_only_the_next_step(make: Callable[[], Any]) -> None:
    loop = asyncio.get_running_loop()
    first, second = make(), make()
    log: list[object] = []

    async def waiter() -> None:
        log.append(await first)
        log.append(await second)
        raise ValueError("after both")

    task = await waiting(waiter())
    done: asyncio.Future[list[object]] = loop.create_future()

    def deliver() -> None:
        wake(first, settle(first, 1))
        snapshot = list(log)
        wake(second, settle(second, 2))  # the task's exception ends the task; it does not come out of wake()
        done.set_result([snapshot, list(log), task.done()])

    loop.call_soon(deliver)
    assert await done == [[1], [1, 2], True]
    with pytest.raises(ValueError, match="after both"):
        task.result()


async def test_settle_alone_schedules_nothing_and_the_future_stays_a_future(make: Callable[[], Any]) -> None:
    future = make()
    task = await waiting(_await(future))
    calls: list[str] = []

    def extra(_: object) -> None:
        calls.append("extra")

    future.add_done_callback(extra)
    future.add_done_callback(extra)
    held = settle(future, "value")
    assert held is not None and len(held) == 3  # the task's wake-up and both registrations of extra
    for _ in range(3):
        await asyncio.sleep(0)
    assert not task.done() and calls == []  # nobody runs before wake()
    assert future.done() and not future.cancelled()
    assert future.result() == "value" and future.exception() is None
    assert future.remove_done_callback(extra) == 0  # settle() took them
    with pytest.raises(asyncio.InvalidStateError):
        future.set_result("again")
    with pytest.raises(asyncio.InvalidStateError):
        settle(future, "again")
    assert future.cancel() is False
    late: list[object] = []
    future.add_done_callback(late.append)  # added once done: scheduled, as for any Future
    assert late == []
    wake(future, held)  # inside this (running) test task: scheduled
    assert not task.done()
    assert await task == "value"
    assert calls == ["extra", "extra"] and late == [future]


async def test_wake_inside_a_running_task_schedules_the_step(make: Callable[[], Any]) -> None:
    future = make()
    log: list[str] = []

    async def waiter() -> None:
        log.append(await future)

    task = await waiting(waiter())
    wake(future, settle(future, "later"))  # the test's own task is running: no nesting another inside it
    assert log == [] and not task.done()
    await asyncio.sleep(0)
    assert log == ["later"] and task.done()


async def test_settle_with_nobody_waiting(make: Callable[[], Any]) -> None:
    future = make()
    held = settle(future, 7)
    assert not held
    wake(future, held)
    assert await future == 7


async def test_settle_exception_is_raised_in_the_woken_task(make: Callable[[], Any]) -> None:
    loop = asyncio.get_running_loop()
    future = make()
    task = await waiting(_await(future))
    error = ValueError("boom")
    ran: asyncio.Future[bool] = loop.create_future()

    def deliver() -> None:
        wake(future, settle_exception(future, error))
        ran.set_result(task.done())

    loop.call_soon(deliver)
    assert await ran is True
    assert future.exception() is error
    with pytest.raises(ValueError, match="boom") as info:
        task.result()
    assert info.value is error


async def test_callbacks_run_in_the_contexts_they_were_added_in(make: Callable[[], Any]) -> None:
    future = make()
    seen: list[tuple[str, str]] = []

    def add() -> None:
        var.set("adder")
        future.add_done_callback(lambda _: seen.append(("implicit", var.get())))

    contextvars.copy_context().run(add)
    given = contextvars.copy_context()
    given.run(var.set, "given")
    future.add_done_callback(lambda _: seen.append(("explicit", var.get())), context=given)
    report = await settle_and_wake_soon(future, None, probe=lambda: list(seen))
    assert report["probe"] == seen
    assert seen == [("implicit", "adder"), ("explicit", "given")]  # in order, in place, each in its own context


async def test_task_cancelled_between_settle_and_wake_gets_cancelled_error(make: Callable[[], Any]) -> None:
    loop = asyncio.get_running_loop()
    future = make()
    inside: list[tuple[object, ...]] = []

    async def waiter() -> None:
        try:
            await future
        except asyncio.CancelledError as exc:
            inside.append(exc.args)
            raise

    task = await waiting(waiter())
    held = settle(future, "kept")
    assert task.cancel("stop") is True  # the Future is done: the task is told to cancel at its next step
    ran: asyncio.Future[bool] = loop.create_future()

    def deliver() -> None:
        wake(future, held)
        ran.set_result(task.done())

    loop.call_soon(deliver)
    assert await ran is True and task.cancelled()
    assert future.result() == "kept"  # what recv() puts back for the next call
    assert inside == [("stop",)]


async def test_task_cancelled_before_settle(make: Callable[[], Any]) -> None:
    future = make()
    inside: list[tuple[object, ...]] = []

    async def waiter() -> None:
        try:
            await future
        except asyncio.CancelledError as exc:
            inside.append(exc.args)
            raise

    task = await waiting(waiter())
    assert task.cancel("stop") is True
    assert future.cancelled()  # cancelling the task cancelled what it waited for: it is not settled again
    with pytest.raises(asyncio.InvalidStateError):
        settle(future, "too late")
    with pytest.raises(asyncio.CancelledError) as info:
        await task
    assert inside == [("stop",)]
    if sys.version_info >= (3, 11):
        assert info.value.args == ("stop",)
    with pytest.raises(asyncio.CancelledError):
        future.exception()


# ------------------------------------------------------------------------- recv() on real connections


async def test_recv_timeout_with_wait_for_leaves_the_connection_usable(echo_uri: str) -> None:
    async with connect(echo_uri) as ws:
        for i in range(3):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.02)
            await ws.send(f"after timeout {i}")
            assert await asyncio.wait_for(ws.recv(), 5) == f"after timeout {i}"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout() is new in Python 3.11")
async def test_recv_timeout_with_asyncio_timeout_leaves_the_connection_usable(echo_uri: str) -> None:
    async with connect(echo_uri) as ws:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):
                await ws.recv()
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        # A recv resumed inside data_received leaves the timeout block in time: its deadline must not fire later.
        async with asyncio.timeout(0.1):
            await ws.send("in time")
            assert await ws.recv() == "in time"
        await asyncio.sleep(0.2)
        await ws.send("still open")
        async with asyncio.timeout(5):
            assert await ws.recv() == "still open"


async def test_echo_1000_messages_in_order(echo_uri: str) -> None:
    async with connect(echo_uri) as ws:
        received = []
        woken = 0
        for i in range(1000):
            message: str | bytes = f"message {i}" if i % 2 else os.urandom(i % 300)
            await ws.send(message)
            received.append(await ws.recv())
            woken += resumed_by_wake()
            assert received[-1] == message
        assert len(received) == 1000
        assert woken == 1000  # every reply reached recv() inside data_received, not through the loop


async def test_pipelined_burst_arrives_complete_and_in_order(echo_uri: str) -> None:
    async with connect(echo_uri) as ws:
        burst: list[str | bytes] = [
            f"{i}:" + "x" * (i * 97 % 5000) if i % 3 else os.urandom(i * 131) for i in range(200)
        ]
        for message in burst:
            await ws.send(message)
        received = [await asyncio.wait_for(ws.recv(), 5) for _ in burst]
        assert received == burst


async def _read_until_closed(ws: wsstream.WebSocket) -> tuple[list[str | bytes], ConnectionClosedOK]:
    messages = []
    while True:
        try:
            messages.append(await ws.recv())
        except ConnectionClosedOK as exc:
            return messages, exc


async def test_message_sent_with_the_close_is_received_before_it() -> None:
    async def handler(ws: wsstream.WebSocket) -> None:
        await ws.recv()
        conn = ws._conn
        assert conn is not None and ws.transport is not None
        ws.transport.write(conn.send_text(b"last") + conn.send_close(1000, "bye"))  # one write, one segment
        await ws.wait_closed()

    async with wsstream.serve(handler, "127.0.0.1", 0) as server:
        ws = await connect(f"ws://127.0.0.1:{server.port}/")
        await ws.send("go")
        messages, closed = await asyncio.wait_for(_read_until_closed(ws), 5)
        assert messages == ["last"]
        assert (closed.code, closed.reason) == (1000, "bye")
        await asyncio.wait_for(ws.wait_closed(), 5)


@pytest.mark.parametrize("from_task", [False, True], ids=["from-loop-callback", "from-task"])
async def test_message_in_the_same_data_received_as_the_close(echo_uri: str, from_task: bool) -> None:
    # Fed straight to the client's protocol so that both frames surely arrive in one data_received call.
    loop = asyncio.get_running_loop()
    ws = await connect(echo_uri)
    reader = await waiting(_read_until_closed(ws))
    data = text("first") + text("second") + close_frame(1000, "done")
    if from_task:
        ws.data_received(data)  # wake() falls back to scheduling
    else:
        loop.call_soon(ws.data_received, data)  # wake() runs the reader in place
    messages, closed = await asyncio.wait_for(reader, 5)
    assert messages == ["first", "second"]
    assert closed.code == 1000
    with pytest.raises(ConnectionClosedOK):
        await ws.recv()
    await asyncio.wait_for(ws.wait_closed(), 5)


async def test_recv_cancelled_before_its_message_arrives_leaves_it_queued(echo_uri: str) -> None:
    loop = asyncio.get_running_loop()
    async with connect(echo_uri) as ws:
        task = await waiting(ws.recv())
        delivered = loop.create_future()

        def cancel_then_deliver() -> None:
            task.cancel()
            ws.data_received(text("a") + text("b"))
            delivered.set_result(None)

        loop.call_soon(cancel_then_deliver)
        await delivered
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [await ws.recv(), await ws.recv()] == ["a", "b"]


async def test_recv_cancelled_as_its_message_arrives_puts_it_back(echo_uri: str) -> None:
    async with connect(echo_uri) as ws:
        task = await waiting(ws.recv())
        ws.data_received(text("a") + text("b"))  # "a" settles the waiter; the task's step is only scheduled
        assert not task.done()
        task.cancel()  # before that step runs: recv() sees the cancellation with "a" already in hand
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [await ws.recv(), await ws.recv()] == ["a", "b"]  # "a" went back to the front of the queue
        await ws.send("echo")
        assert await asyncio.wait_for(ws.recv(), 5) == "echo"


async def test_recv_cancelled_right_after_wake_keeps_its_result(echo_uri: str) -> None:
    loop = asyncio.get_running_loop()
    async with connect(echo_uri) as ws:
        task = await waiting(ws.recv())
        cancelled: asyncio.Future[bool] = loop.create_future()

        def deliver_then_cancel() -> None:
            ws.data_received(text("a") + text("b"))  # recv() returns "a" inside this call
            cancelled.set_result(task.cancel())

        loop.call_soon(deliver_then_cancel)
        assert await cancelled is False  # too late: the task had already finished
        assert task.result() == "a"
        assert await ws.recv() == "b"


# ----------------------------------------------------------------------------------------------- uvloop


def test_synchronous_wake_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert type(loop).__module__.startswith("uvloop")
        future: asyncio.Future[str] = loop.create_future()
        task = await waiting(_await(future))
        ran: asyncio.Future[bool] = loop.create_future()

        def deliver() -> None:
            wake(future, settle(future, "uv"))
            ran.set_result(task.done())

        loop.call_soon(deliver)
        assert await ran is True and task.result() == "uv"

        async with wsstream.serve(_echo_checking_wake, "127.0.0.1", 0) as server:
            async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
                for i in range(20):
                    await ws.send(f"uv {i}")
                    assert await ws.recv() == f"uv {i}"
                    assert resumed_by_wake()
                await ws.send("server woken?")
                assert await ws.recv() == "True"

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


async def _echo_checking_wake(ws: wsstream.WebSocket) -> None:
    woken = True
    async for message in ws:
        if message == "server woken?":
            await ws.send(str(woken))
        else:
            woken = woken and resumed_by_wake()
            await ws.send(message)
