"""Hand a received message to the task waiting in ``recv()`` within the same event-loop iteration.

With an ``asyncio.Future``, ``set_result()`` only *schedules* the waiting task: it runs in the next iteration
of the event loop, which first polls the selector again (``epoll_wait`` with a zero timeout). For a
request/response exchange that is one extra system call and one extra loop iteration per message, about a
third of the CPU a round trip costs a Python server (docs/performance.md).

:class:`Handoff` is a Future-compatible awaitable (the protocol ``asyncio.Task`` accepts: the
``_asyncio_future_blocking`` attribute, ``get_loop``, ``add_done_callback``, ``result``, ``cancel``) whose
:meth:`Handoff.deliver` runs the done callbacks, and so the waiting task's next step, at once. The task then
runs inside the protocol's ``data_received`` callback, exactly as if that callback were its own code: the
same thread, the task's own context and ``current_task()``. ``deliver`` falls back to the usual scheduling
when a task is already running (the data was fed from inside a task, which asyncio forbids nesting), and
cancellation, exceptions and late callbacks are always scheduled the usual way.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

__all__ = ["Handoff"]

T = TypeVar("T")

_PENDING, _DONE, _CANCELLED = 0, 1, 2
_current_task = asyncio.current_task

Callback = Callable[["Handoff[Any]"], object]


class Handoff(Generic[T]):
    """A one-shot result for one waiting task, delivered without a trip through the event loop."""

    __slots__ = (
        "_asyncio_future_blocking",
        "_callbacks",
        "_cancel_message",
        "_exception",
        "_loop",
        "_result",
        "_state",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._state = _PENDING
        self._result: T | None = None
        self._exception: BaseException | None = None
        self._cancel_message: Any = None
        self._callbacks: list[tuple[Callback, contextvars.Context | None]] = []
        self._asyncio_future_blocking = False

    # -- what asyncio.Task and asyncio.wait()/gather() use

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def done(self) -> bool:
        return self._state != _PENDING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def result(self) -> T:
        if self._state == _CANCELLED:
            raise asyncio.CancelledError(*(() if self._cancel_message is None else (self._cancel_message,)))
        if self._state == _PENDING:
            raise asyncio.InvalidStateError("result is not set")
        if self._exception is not None:
            raise self._exception
        return self._result  # type: ignore[return-value]

    def exception(self) -> BaseException | None:
        if self._state == _CANCELLED:
            raise asyncio.CancelledError
        if self._state == _PENDING:
            raise asyncio.InvalidStateError("exception is not set")
        return self._exception

    def add_done_callback(self, fn: Callback, *, context: contextvars.Context | None = None) -> None:
        if self._state != _PENDING:
            self._loop.call_soon(fn, self, context=context)
        else:
            self._callbacks.append((fn, context))

    def remove_done_callback(self, fn: Callback) -> int:
        before = len(self._callbacks)
        self._callbacks = [(f, c) for f, c in self._callbacks if f != fn]
        return before - len(self._callbacks)

    def cancel(self, msg: Any = None) -> bool:
        if self._state != _PENDING:
            return False
        self._state = _CANCELLED
        self._cancel_message = msg
        self._schedule_callbacks()
        return True

    def set_result(self, result: T) -> None:
        self._settle(result, None)
        self._schedule_callbacks()

    def set_exception(self, exception: BaseException) -> None:
        self._settle(None, exception)
        self._schedule_callbacks()

    def __await__(self) -> Generator[Any, None, T]:
        if self._state == _PENDING:
            self._asyncio_future_blocking = True
            yield self
        if self._state == _PENDING:
            raise RuntimeError("await wasn't used with future")
        return self.result()

    __iter__ = __await__

    # -- the point of the class

    def settle(self, result: T) -> None:
        """Set ``result`` without waking the waiting task yet: :meth:`wake` does that."""
        self._settle(result, None)

    def wake(self) -> None:
        """Run the waiting task's next step now (scheduled instead when called inside a running task)."""
        if _current_task(self._loop) is not None:
            self._schedule_callbacks()
            return
        callbacks, self._callbacks = self._callbacks, []
        for fn, context in callbacks:
            if context is None:
                fn(self)
            else:
                context.run(fn, self)

    def _settle(self, result: T | None, exception: BaseException | None) -> None:
        if self._state != _PENDING:
            raise asyncio.InvalidStateError("invalid state")
        self._state = _DONE
        self._result = result
        self._exception = exception

    def _schedule_callbacks(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        call_soon = self._loop.call_soon
        for fn, context in callbacks:
            call_soon(fn, self, context=context)
