"""The server's one-time set-up on a thread (skyhop_core.requests.warmup)."""

from __future__ import annotations

import threading

import trio
import trio.testing

from skyhop_core.requests.warmup import WarmUp


def _recording() -> tuple[list[str], WarmUp]:
    ran: list[str] = []
    return ran, WarmUp(lambda: ran.append(threading.current_thread().name))


def test_it_waits_for_a_quiet_moment_then_runs_once_on_a_thread():
    ran, warm = _recording()
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main() -> None:
        last = [trio.current_time()]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(warm.when_quiet, lambda: last[0], 0.25, 10.0)
            for _ in range(8):  # a request every 0.1 s: never quiet for 0.25 s
                await trio.sleep(0.1)
                last[0] = trio.current_time()
                assert not warm.started
            await trio.sleep(0.3)
            assert warm.started
            await warm.ensure()  # under way: waits for it, runs nothing again

    trio.run(main, clock=clock)
    assert len(ran) == 1 and ran[0] != threading.main_thread().name


def test_a_busy_server_runs_it_by_the_deadline():
    ran, warm = _recording()

    async def main() -> None:
        with trio.fail_after(5):
            await warm.when_quiet(trio.current_time, 0.25, 0.3)  # always "just now"
        assert ran

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_request_that_needs_it_first_waits_for_it_and_a_failure_is_not_raised():
    calls: list[int] = []

    def fail() -> None:
        calls.append(1)
        raise RuntimeError("jsonschema is broken")

    warm = WarmUp(fail)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(warm.ensure)
        assert warm.done

    trio.run(main)
    assert calls == [1]
