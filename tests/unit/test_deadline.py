"""Deadline: a stall of this process does not use up a wait's deadline; a slow wait still ends."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from nba.concurrency import Deadline

DEADLINE = 0.2
FOREVER = 60.0  # a wait that never ends in a test's time
PATIENCE = 10.0  # how long "ends" may take on a CI machine that pauses


def _loops() -> list[Any]:
    loops: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:
        return loops
    return [*loops, pytest.param(uvloop.new_event_loop, id="uvloop")]


def _run(new_loop: Callable[[], asyncio.AbstractEventLoop], coro: Coroutine[Any, Any, Any]) -> Any:
    loop = new_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def _stall() -> None:
    """Block the loop past the deadline, as a paused VM or a long callback would."""
    time.sleep(3 * DEADLINE)


async def _exchange_across_a_stall(limit: Callable[[float], Any]) -> bytes:
    """Two round trips, like a decision's read and write: the first reply comes while the loop is stalled
    (it waits in the socket when the stall ends), the second a moment after it is asked for."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    try:
        async with limit(DEADLINE):
            theirs.sendall(b"first")
            _stall()
            first = await reader.readexactly(5)
            loop.call_later(0.02, theirs.sendall, b"again")
            return first + await reader.readexactly(5)
    finally:
        writer.close()
        theirs.close()


async def _stall_then_wait_forever() -> None:
    async with Deadline(DEADLINE):
        _stall()
        await asyncio.sleep(FOREVER)


@pytest.mark.parametrize("new_loop", _loops())
def test_a_stall_at_the_deadline_does_not_cut_the_exchange(new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    stalls: list[int] = []
    assert (
        _run(new_loop, _exchange_across_a_stall(lambda seconds: Deadline(seconds, on_stall=lambda: stalls.append(1))))
        == b"firstagain"
    )
    assert len(stalls) >= 1  # the grace is reported (decide counts it in nba_decision_stalls_total)
    # what a plain timeout does in the same case: gives up on a reply that is already there
    with pytest.raises(TimeoutError):
        _run(new_loop, _exchange_across_a_stall(asyncio.timeout))


@pytest.mark.parametrize("new_loop", _loops())
def test_a_slow_wait_still_ends(new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def slow() -> None:
        async with Deadline(DEADLINE):
            await asyncio.sleep(FOREVER)

    start = time.perf_counter()
    with pytest.raises(TimeoutError):
        _run(new_loop, slow())
    assert time.perf_counter() - start < PATIENCE
    # a stall at the deadline earns a fresh deadline, and the wait still ends
    start = time.perf_counter()
    with pytest.raises(TimeoutError):
        _run(new_loop, _stall_then_wait_forever())
    assert time.perf_counter() - start < PATIENCE


@pytest.mark.parametrize("new_loop", _loops())
def test_a_deadline_already_due_when_armed_still_ends(
    new_loop: Callable[[], asyncio.AbstractEventLoop], caplog: pytest.LogCaptureFixture
) -> None:
    # A pause between reading the clock and arming the timer makes the due time past when armed. uvloop
    # then schedules a plain Handle; reading the due time back from it failed in the callback, the error
    # was only logged, and the wait had no deadline at all. A deadline under a millisecond is the same
    # case made deterministic: uvloop rounds it to "now".
    async def slow() -> None:
        async with Deadline(0.0001):
            await asyncio.sleep(FOREVER)

    start = time.perf_counter()
    with pytest.raises(TimeoutError):
        _run(new_loop, slow())
    assert time.perf_counter() - start < PATIENCE
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("new_loop", _loops())
def test_a_deadline_that_did_not_expire_changes_nothing(new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def quick() -> str:
        async with Deadline(DEADLINE):
            await asyncio.sleep(0)
            return "done"

    assert _run(new_loop, quick()) == "done"

    async def failing() -> None:
        async with Deadline(DEADLINE):
            raise KeyError("x")

    with pytest.raises(KeyError):
        _run(new_loop, failing())
