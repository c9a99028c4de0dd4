"""The shared timeout queue (wsstream/deadlines.py) used for open_timeout and the first keepalive timer.

Real event loop, real time (short delays). What must hold: callbacks run once, in arming order, no earlier than
their delay; cancelled entries never run and drop their argument at once; one loop timer serves the queue; an
exception in one callback goes to the loop's exception handler and the others still run; the registry does not
keep a closed loop alive.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

from wsstream.deadlines import deadlines


async def test_callbacks_run_in_order_after_their_delay() -> None:
    loop = asyncio.get_running_loop()
    queue = deadlines(loop, 0.05)
    ran: list[tuple[str, float]] = []
    start = loop.time()
    for name in ("a", "b", "c"):
        queue.add(lambda arg: ran.append((arg, loop.time())), name)
        await asyncio.sleep(0.01)
    assert ran == []
    await asyncio.sleep(0.12)
    assert [name for name, _ in ran] == ["a", "b", "c"]
    assert all(when - start >= 0.05 - loop._clock_resolution for _, when in ran)  # type: ignore[attr-defined]


async def test_cancelled_entries_never_run_and_release_their_argument() -> None:
    loop = asyncio.get_running_loop()
    queue = deadlines(loop, 0.03)

    class Owner:
        pass

    owner = Owner()
    ref = weakref.ref(owner)
    ran: list[object] = []
    entry = queue.add(ran.append, owner)
    kept = queue.add(ran.append, "kept")
    entry.cancel()
    del owner
    gc.collect()
    assert ref() is None  # the queued, cancelled entry holds nothing
    await asyncio.sleep(0.08)
    assert ran == ["kept"]
    kept.cancel()  # cancelling after it ran is harmless


async def test_one_loop_timer_per_queue_and_one_queue_per_delay() -> None:
    loop = asyncio.get_running_loop()
    assert deadlines(loop, 0.2) is deadlines(loop, 0.2)
    assert deadlines(loop, 0.2) is not deadlines(loop, 0.3)
    before = len(loop._scheduled)  # type: ignore[attr-defined]
    queue = deadlines(loop, 0.2)
    entries = [queue.add(lambda _: None, i) for i in range(100)]
    assert len(loop._scheduled) == before + 1  # type: ignore[attr-defined]
    for entry in entries:
        entry.cancel()


async def test_a_failing_callback_is_reported_and_the_rest_still_run() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    queue = deadlines(loop, 0.02)
    ran: list[object] = []

    def boom(_: object) -> None:
        raise RuntimeError("boom")

    queue.add(boom, None)
    queue.add(ran.append, "after")
    await asyncio.sleep(0.06)
    assert ran == ["after"]
    assert len(errors) == 1 and isinstance(errors[0]["exception"], RuntimeError)


def test_the_registry_does_not_keep_a_loop_alive() -> None:
    loop = asyncio.new_event_loop()

    async def arm() -> None:
        deadlines(asyncio.get_running_loop(), 30).add(lambda _: None, None)

    loop.run_until_complete(arm())
    loop.close()
    ref = weakref.ref(loop)
    del loop
    gc.collect()
    assert ref() is None
