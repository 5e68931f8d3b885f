"""Running `nba serve` as a user does, for the end-to-end tests: start, wait, call, stop, clean up."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nba.runtime.embedded_redis import free_port
from tests.conftest import RULES


def call(
    url: str,
    body: dict[str, Any] | None = None,
    method: str | None = None,
    timeout: float = 5,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **(headers or {})} | (
        {"Authorization": f"Bearer {key}"} if key else {}
    )
    req = urllib.request.Request(
        url, data=data, method=method or ("POST" if data is not None else "GET"), headers=headers
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


class Serve:
    """One `nba serve` process group with its own data directory and port."""

    def __init__(
        self,
        tmp: Path,
        *args: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
        preexec: Callable[[], object] | None = None,
        name: str = "serve",
    ):
        self._own_port = port is None
        self.data = tmp / "var"
        tmp.mkdir(parents=True, exist_ok=True)
        self.log = tmp / f"{name}.log"
        self._launch = (args, env or {}, preexec)
        self._start(port or free_port())

    def _start(self, port: int) -> None:
        args, env, preexec = self._launch
        self.port = port
        self.base = f"http://127.0.0.1:{self.port}"
        full = {k: v for k, v in os.environ.items() if k != "NBA_REDIS_URL"}
        full |= {"NBA_PORT": str(self.port), "NBA_DATA_DIR": str(self.data), "NBA_RULES_DIR": str(RULES), **env}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nba.cli", "serve", *args],
                env=full,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,
            )

    def _took_a_busy_port(self) -> bool:
        """The free port we chose was taken before the server bound it (another process's outgoing
        connection can get it meanwhile): start again on another. A port the test chose is its business."""
        if not self._own_port or self.proc.poll() != 2 or "is in use" not in self.log.read_text():
            return False
        self._start(free_port())
        return True

    def exit_code(self, timeout: float = 120) -> int:
        """Wait for the server to exit by itself (a refusal to start)."""
        while True:
            code = self.proc.wait(timeout=timeout)
            if not self._took_a_busy_port():
                return code

    def url(self, path: str) -> str:
        return self.base + path

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and self._took_a_busy_port():
                continue
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if call(self.url("/readyz"), timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail(f"the server did not become ready; its log:\n{self.log.read_text()[-5000:]}")

    def stop(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"the server did not stop within {timeout:.0f} s of SIGINT; its log:\n{self.log.read_text()[-5000:]}"
            )

    def kill_all(self) -> None:
        """The server and everything it started (workers, redis-server): a failed test leaves nothing."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def children(self, what: str) -> list[int]:
        out = subprocess.run(
            ["ps", "-o", "pid=,args=", "--ppid", str(self.proc.pid)], capture_output=True, text=True
        ).stdout
        return [int(line.split()[0]) for line in out.splitlines() if what in line]

    def redis_url(self) -> str:
        return (self.data / "redis" / "url").read_text().strip()


def nba(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """An `nba` command as a user runs it (with `env` over this environment, NBA_REDIS_URL removed)."""
    full = {k: v for k, v in os.environ.items() if k != "NBA_REDIS_URL"} | {"NBA_RULES_DIR": str(RULES), **env}
    return subprocess.run(
        [sys.executable, "-m", "nba.cli", *args], env=full, capture_output=True, text=True, timeout=timeout
    )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> float:
    """Poll until `predicate` holds; the seconds it took. Fails after `timeout` (generous: this checks
    that it happens, not how fast)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with contextlib.suppress(OSError):
            if predicate():
                return time.monotonic() - start
        time.sleep(0.1)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s" + (f"; log:\n{log.read_text()[-5000:]}" if log else ""))
