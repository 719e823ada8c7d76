"""Controller logs written in batches (skyhop_core.jobs.output.LogFlusher): every line
arrives, in order, followers are woken, flush() means on disk, and nothing queued is
lost when the service stops."""

from __future__ import annotations

from pathlib import Path

import trio

from skyhop_core.jobs.output import ControllerLogWriter, LogFlusher
from skyhop_core.requests.logs import LogHub


def test_lines_of_many_logs_arrive_in_order_and_flush_means_written(tmp_path: Path) -> None:
    hub = LogHub(tmp_path / "logs")

    async def main() -> None:
        flusher = LogFlusher(interval=0.05)
        async with trio.open_nursery() as nursery:
            await nursery.start(flusher.run)
            writers = [ControllerLogWriter(hub, f"{i}.controller", flusher) for i in range(50)]
            woken = hub.growth_event("7.controller")
            for n in range(20):
                for w in writers:
                    w.line(f"line {n}")
                if n == 10:
                    await trio.sleep(0.06)  # a batch goes out between lines
            await writers[7].flush()
            assert woken.is_set()
            for i in range(50):
                text = hub.path(f"{i}.controller").read_text()
                assert text == "".join(f"line {n}\n" for n in range(20))
            writers[3].line("queued when the service stops")
            nursery.cancel_scope.cancel()
        assert hub.path("3.controller").read_text().endswith("queued when the service stops\n")
        # After the service stopped, writes are synchronous again.
        writers[3].line("after")
        assert hub.path("3.controller").read_text().endswith("after\n")

    trio.run(main)
