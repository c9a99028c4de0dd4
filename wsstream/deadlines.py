"""Many timeouts of one fixed length behind a single event-loop timer.

Every connection arms an ``open_timeout`` when it is accepted and a keepalive timer when it opens, and nearly
all of them are cancelled long before they expire. With ``loop.call_later`` each costs a ``TimerHandle``, a push
onto the loop's heap (ordered by Python-level comparisons) and a cancellation the loop must later sweep out.
Timeouts of one length expire in the order they were armed, so a FIFO queue with one loop timer for its head
serves them all (Node.js keeps one such list per duration): arming is an append, cancelling clears a field.
A cancelled entry stays queued, holding nothing, until its time comes: at most rate x delay small entries.
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["Deadline", "deadlines"]


class Deadline:
    """One armed timeout; :meth:`cancel` it like a ``TimerHandle``."""

    __slots__ = ("arg", "callback", "when")

    def __init__(self, when: float, callback: Callable[[Any], object], arg: object) -> None:
        self.when = when
        self.callback: Callable[[Any], object] | None = callback
        self.arg = arg

    def cancel(self) -> None:
        self.callback = None
        self.arg = None  # drop the reference now: the entry may stay queued until its time


class _Deadlines:
    """The queue of one loop and one delay."""

    __slots__ = ("_armed", "_delay", "_entries", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        # Weakly: the registry below is keyed weakly by the loop, and a strong reference here would keep it alive.
        self._loop = weakref.ref(loop)
        self._delay = delay
        self._entries: collections.deque[Deadline] = collections.deque()
        # Whether the loop timer is armed; not the TimerHandle itself, which refers to the loop strongly.
        self._armed = False

    def add(self, callback: Callable[[Any], object], arg: object) -> Deadline:
        loop = self._loop()
        assert loop is not None  # the caller runs on it
        entry = Deadline(loop.time() + self._delay, callback, arg)
        self._entries.append(entry)
        if not self._armed:
            self._armed = True
            loop.call_at(entry.when, self._expire)
        return entry

    def _expire(self) -> None:
        self._armed = False
        loop = self._loop()
        if loop is None:
            return
        entries = self._entries
        now = loop.time()
        while entries:
            entry = entries[0]
            if entry.callback is None:
                entries.popleft()
                continue
            if entry.when > now:
                self._armed = True
                loop.call_at(entry.when, self._expire)
                return
            entries.popleft()
            callback, arg = entry.callback, entry.arg
            entry.cancel()
            try:
                callback(arg)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                loop.call_exception_handler(
                    {"message": "exception in a wsstream timeout callback", "exception": exc}
                )


_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, _Deadlines]] = (
    weakref.WeakKeyDictionary()
)


def deadlines(loop: asyncio.AbstractEventLoop, delay: float) -> _Deadlines:
    """The queue for timeouts of ``delay`` seconds on ``loop`` (one per distinct delay)."""
    per_loop = _queues.get(loop)
    if per_loop is None:
        per_loop = _queues[loop] = {}
    queue = per_loop.get(delay)
    if queue is None:
        queue = per_loop[delay] = _Deadlines(loop, delay)
    return queue
