"""A program on a pseudo-terminal the test holds, as a user's terminal runs it: the test
types into it, reads what it shows, resizes it (the program gets SIGWINCH, the terminal
being its controlling one) and reads its exit code."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Sequence


def _make_controlling() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    def __init__(self, argv: Sequence[str], env: dict[str, str], rows: int = 24, cols: int = 80):
        self.master, slave = os.openpty()
        self.resize(rows, cols)
        self.proc = subprocess.Popen(
            list(argv), stdin=slave, stdout=slave, stderr=slave, env=env,
            start_new_session=True, preexec_fn=_make_controlling,
        )  # fmt: skip
        os.close(slave)
        self.seen = b""  #: everything the terminal showed
        self._read_to = 0  #: where the next expect starts

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _read(self, timeout: float) -> bool | None:
        """True: read something; None: nothing within ``timeout``; False: closed."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return None
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the program has closed the terminal
            return False
        self.seen += data
        return bool(data)

    def expect(self, pattern: bytes, timeout: float = 30) -> re.Match[bytes]:
        """Wait until the output after the last match matches ``pattern`` (a regex)."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.seen, self._read_to)
            if match:
                self._read_to = match.end()
                return match
            if time.monotonic() > deadline or self._read(0.1) is False:
                raise AssertionError(
                    f"{pattern!r} not shown within {timeout} s; the terminal showed:\n"
                    + self.seen[self._read_to:].decode(errors="replace")
                )

    def wait(self, timeout: float = 30) -> int:
        """The exit code, reading what is left meanwhile."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        while self._read(0.05):
            pass
        return self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        os.close(self.master)
