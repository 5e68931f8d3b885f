"""The progress line of long commands (nba/terminal.py): in place on a terminal, a line each in a log."""

from __future__ import annotations

import io

from nba.terminal import StatusLine


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_one_line_rewritten_then_ended() -> None:
    out = _Terminal()
    line = StatusLine(out)
    line.show("1 read")
    line.show("2 read")
    line.end()
    assert out.getvalue() == "\r" + "1 read".ljust(79) + "\r" + "2 read".ljust(79) + "\n"


def test_a_log_gets_a_line_each_and_nothing_at_the_end() -> None:
    out = io.StringIO()
    line = StatusLine(out)
    line.end()  # nothing shown: nothing to end
    line.show("1 read")
    line.show("2 read")
    line.end()
    assert out.getvalue() == "1 read\n2 read\n"
    silent = _Terminal()
    StatusLine(silent).end()
    assert silent.getvalue() == ""
