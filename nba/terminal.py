"""A progress line for long commands (an import, an outbound run) on standard error: rewritten in place
on a terminal, one line each when the output goes to a file or a scheduler's log."""

from __future__ import annotations

import sys
from typing import IO


class StatusLine:
    def __init__(self, out: IO[str] | None = None):
        self.out = out if out is not None else sys.stderr
        self.tty = self.out.isatty()
        self.written = False

    def show(self, text: str) -> None:
        self.out.write(("\r" + text.ljust(79)) if self.tty else text + "\n")
        self.out.flush()
        self.written = True

    def end(self) -> None:
        if self.tty and self.written:  # what follows starts a line of its own
            self.out.write("\n")
