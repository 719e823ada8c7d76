"""The live log of a relaying request: bounded memory, every byte to a reader that keeps
up, resumable within what it keeps, and a clear error when nobody reads."""

from __future__ import annotations

import pytest
import trio

from skyhop_core.requests import livelog
from skyhop_core.requests.livelog import KEEP, WINDOW, LiveLog, NoReaderError

DATA = b"".join(b"%09d\n" % i for i in range(600_000))  # 6 MB, several windows


def test_a_reader_gets_every_byte_while_memory_stays_bounded() -> None:
    async def main() -> bytes:
        live = LiveLog()
        received = bytearray()
        peak = 0

        async def writer() -> None:
            nonlocal peak
            for start in range(0, len(DATA), 65536):
                await live.send(DATA[start : start + 65536])
                peak = max(peak, live.end - live.base)
            live.close()

        async def reader() -> None:
            async for chunk in live.follow(0, follow=True, heartbeat=5, chunk=100_000):
                received.extend(chunk)
                await trio.sleep(0)  # a slow client

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            nursery.start_soon(reader)
        assert peak <= WINDOW + KEEP + 65536
        return bytes(received)

    assert trio.run(main) == DATA


def test_a_reconnecting_reader_resumes_at_its_offset() -> None:
    async def main() -> None:
        live = LiveLog()
        live.put(b"a" * 100 + b"b" * 100)
        offset, first = live.read(0, 150)
        assert (offset, first) == (0, b"a" * 100 + b"b" * 50)
        live.close()
        rest = b"".join([c async for c in live.follow(150, follow=True, heartbeat=1, chunk=10)])
        assert rest == b"b" * 50

    trio.run(main)


def test_nobody_reading_fails_the_writer_instead_of_waiting_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(livelog, "READER_TIMEOUT", 0.2)

    async def main() -> None:
        live = LiveLog()
        with pytest.raises(NoReaderError, match="No client read"):
            for start in range(0, len(DATA), 65536):
                await live.send(DATA[start : start + 65536])

    trio.run(main)
