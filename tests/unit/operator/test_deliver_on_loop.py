"""handlers._deliver_on_loop: what a watch thread delivers is handled on the event loop's thread;
the thread waits for a listed page (a listing is never held whole) but not for a watch event."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from ringleader.handlers import _deliver_on_loop


class Handled:
    """Each delivery handled: the thread it ran on, the event type and the objects."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, list[Any]]] = []

    def handle(self, event_type: str | None, objs: list[Any]) -> None:
        self.calls.append((threading.current_thread().name, event_type, objs))


def test_a_listed_page_is_handled_on_the_loop_before_the_watch_thread_reads_on() -> None:
    handled = Handled()
    seen_after_deliver: list[int] = []

    async def main() -> None:
        deliver = _deliver_on_loop(handled.handle)

        def watch_thread() -> None:
            deliver(None, [{"a": 1}])
            seen_after_deliver.append(len(handled.calls))

        thread = threading.Thread(target=watch_thread, name="watch pods")
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert seen_after_deliver == [1]
    assert handled.calls == [(threading.main_thread().name, None, [{"a": 1}])]


def test_a_watch_event_is_handed_to_the_loop_without_waiting_for_it() -> None:
    handled = Handled()
    calls_when_deliver_returned: list[int] = []

    async def main() -> None:
        deliver = _deliver_on_loop(handled.handle)

        def watch_thread() -> None:
            deliver("DELETED", [{"b": 2}])
            calls_when_deliver_returned.append(len(handled.calls))

        thread = threading.Thread(target=watch_thread, name="watch pods", daemon=True)
        thread.start()
        thread.join(timeout=10)  # blocks the loop: a delivery that waited for it would not return
        assert not thread.is_alive(), "the watch thread waited for a watch event's handling"
        await asyncio.sleep(0)

    asyncio.run(main())
    assert calls_when_deliver_returned == [0]
    assert handled.calls == [(threading.main_thread().name, "DELETED", [{"b": 2}])]


def test_after_the_loop_closed_a_delivery_is_dropped_without_an_error() -> None:
    handled = Handled()

    async def make() -> Any:
        return _deliver_on_loop(handled.handle)

    deliver = asyncio.run(make())  # asyncio.run closes the loop on return
    deliver(None, [{"c": 3}])
    deliver("ADDED", [{"c": 3}])
    assert handled.calls == []
