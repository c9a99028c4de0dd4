"""Hand a received message to the task waiting in ``recv()`` within the same event-loop iteration.

``Future.set_result()`` only *schedules* the waiting task: it runs in the next iteration of the event loop,
which first polls the selector again (``epoll_wait`` with a zero timeout). For request/response traffic that
is one more system call and one more loop iteration per message (docs/performance.md).

:func:`settle` completes a plain ``asyncio.Future`` after taking its done-callbacks off it (normally just the
waiting task's wake-up), so nothing is scheduled; :func:`wake` then runs those callbacks, and so the task's next
step, at once. The task runs inside the protocol callback that called ``wake()``, exactly as if that callback
were its own code: the same thread, the task's own context and ``current_task()``. ``wake()`` schedules the
callbacks the usual way instead when a task is already running (asyncio forbids running one task inside
another). The Future stays a plain one, so awaiting it and the Task's wake-up keep their fast C paths.

Taking the callbacks reads ``Future._callbacks``, which both the C and the pure-Python Future have had since
Python 3.7; where it is missing, :func:`settle` completes the Future normally and :func:`wake` has nothing to do.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Held", "settle", "settle_exception", "wake"]

T = TypeVar("T")

#: The done-callbacks taken off a Future by settle(), with their contexts, for wake() to run.
Held = list[tuple[Callable[[Any], object], contextvars.Context]]

_current_task: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]
try:  # C since Python 3.12
    from _asyncio import current_task as _current_task  # type: ignore[attr-defined,no-redef]
except ImportError:
    # 3.10/3.11: asyncio.current_task() is a Python function around this dictionary lookup.
    _tasks_by_loop = getattr(asyncio.tasks, "_current_tasks", None)
    _current_task = _tasks_by_loop.get if isinstance(_tasks_by_loop, dict) else asyncio.current_task


def settle(future: asyncio.Future[T], result: T, exception: BaseException | None = None) -> Held | None:
    """Set ``result`` (or ``exception``) on a pending ``future`` without waking anyone yet; pass what it
    returns to :func:`wake`.

    An ``exception`` must be one ``set_exception`` accepts (not StopIteration): the callbacks are already taken
    off when it is set, and would be lost if it were refused.
    """
    callbacks: Held | None = getattr(future, "_callbacks", None)
    if callbacks:
        callbacks = list(callbacks)  # the pure-Python Future empties its own list in place
        for fn, _ in callbacks:
            future.remove_done_callback(fn)
    if exception is None:
        future.set_result(result)
    else:
        future.set_exception(exception)
    return callbacks


def settle_exception(future: asyncio.Future[Any], exception: BaseException) -> Held | None:
    """:func:`settle` with an exception."""
    return settle(future, None, exception)


def wake(future: asyncio.Future[Any], callbacks: Held | None) -> None:
    """Run the callbacks :func:`settle` took, now (scheduled instead when called inside a running task)."""
    if not callbacks:
        return
    loop = future.get_loop()
    if _current_task(loop) is not None:
        for fn, context in callbacks:
            loop.call_soon(fn, future, context=context)
        return
    for fn, context in callbacks:
        context.run(fn, future)
