"""Decision ids: time-ordered (they sort by creation) and unguessable."""

from __future__ import annotations

import os


class _Entropy:
    """os.urandom in blocks: one system call per 400 decision ids instead of one each (a system call is
    what costs most on a virtual machine). Reset in a forked child, which must not repeat its parent's."""

    BLOCK = 4000

    def __init__(self) -> None:
        self._buf = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._buf, self._at = b"", 0

    def hex(self, n: int) -> str:
        if self._at + n > len(self._buf):
            self._buf, self._at = os.urandom(self.BLOCK), 0
        self._at += n
        return self._buf[self._at - n : self._at].hex()


_entropy = _Entropy()


def new_decision_id(now: float) -> str:
    """Time-ordered (sorts by creation) and unguessable."""
    return f"{int(now * 1000):012x}{_entropy.hex(10)}"
