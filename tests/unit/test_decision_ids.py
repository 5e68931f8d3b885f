"""Decision ids: time-ordered, unique, and not shared with a forked child's."""

from __future__ import annotations

import os

from nba.decision.ids import new_decision_id


def test_ids_sort_by_time_and_do_not_repeat() -> None:
    ids = [new_decision_id(1_700_000_000.0 + i / 1000) for i in range(5000)]  # more than one entropy block
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert len({i[12:] for i in ids}) == len(ids)  # the random part alone is unique too


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    new_decision_id(0.0)  # the parent has a block of entropy in hand
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id goes to the parent
        try:
            os.write(write, new_decision_id(0.0).encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32
    assert child != new_decision_id(0.0)
