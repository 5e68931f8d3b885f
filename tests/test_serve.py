"""`nba serve` end to end as a user runs it: embedded redis-server started, used, stopped cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from nba.redis_server import free_port
from tests.conftest import RULES


def _get(url: str) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status, json.loads(resp.read())


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if _get(url)[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail("server did not become ready")


def _kill_all(proc: subprocess.Popen[bytes]) -> None:
    """The server and everything it started (workers, redis-server): a failed test leaves nothing running."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _stopped(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not stop within {timeout:.0f} s of SIGINT; its log:\n{log.read_text()[-5000:]}")


def _redis_children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "redis-server" in line]


def test_serve_with_embedded_redis_and_demo_customers(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "NBA_REDIS_URL"}
    env |= {"NBA_PORT": str(port), "NBA_DATA_DIR": str(tmp_path / "var"), "NBA_RULES_DIR": str(RULES)}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "nba.cli", "serve", "--demo-customers", "20"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz", proc, log)
        children = _redis_children(proc.pid)
        assert len(children) == 1
        status, customer = _get(f"http://127.0.0.1:{port}/v1/customers/c-1000")
        assert status == 200
        assert customer["attributes"]
        proc.send_signal(signal.SIGINT)
        assert _stopped(proc, log) == 0, log.read_text()
        time.sleep(0.2)
        assert not Path(f"/proc/{children[0]}").exists(), "embedded redis-server still running"
        assert list((tmp_path / "var" / "redis").rglob("*.aof")), "no append-only file written"
    finally:
        _kill_all(proc)


def _nba_serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`nba serve` that is expected to refuse to start: its exit code and messages."""
    return subprocess.run([sys.executable, "-m", "nba.cli", "serve"], env=env, capture_output=True, text=True,
                          timeout=120)


def test_serve_without_redis_server_says_how_to_get_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NBA_REDIS_URL"}
    env |= {"PATH": str(tmp_path), "NBA_DATA_DIR": str(tmp_path / "var"), "NBA_RULES_DIR": str(RULES)}
    result = _nba_serve(env)
    assert result.returncode == 3
    assert "apt-get install redis-server" in result.stderr
    assert "NBA_REDIS_URL" in result.stderr


def test_serve_refuses_invalid_rules(rules_copy: Path) -> None:
    (rules_copy / "actions" / "tv-addon.yaml").write_text("id: tv-addon\ngroup: sales\n", encoding="utf-8")
    env = {**os.environ, "NBA_RULES_DIR": str(rules_copy), "NBA_REDIS_URL": "redis://127.0.0.1:1/0"}
    result = _nba_serve(env)
    assert result.returncode == 2
    assert "actions/tv-addon.yaml" in result.stderr
    assert "channels: is required" in result.stderr


def test_workers_share_one_port_and_stop_together(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "NBA_REDIS_URL"}
    env |= {"NBA_PORT": str(port), "NBA_DATA_DIR": str(tmp_path / "var"), "NBA_RULES_DIR": str(RULES)}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        # started as a shell starts a background job, with SIGINT ignored: it must stop on SIGINT all the same
        proc = subprocess.Popen([sys.executable, "-m", "nba.cli", "serve", "--workers", "2"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz", proc, log)
        pids: set[object] = set()
        deadline = time.monotonic() + 60
        while len(pids) < 2 and time.monotonic() < deadline:  # each urlopen is a new connection
            pids.add(_get(f"http://127.0.0.1:{port}/healthz")[1]["pid"])
        assert len(pids) == 2, log.read_text()
        listing = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(proc.pid)], capture_output=True,
                                 text=True).stdout.splitlines()
        children = [line.split()[0] for line in listing if "redis-server" in line or "multiprocessing.spawn" in line]
        assert len(children) == 3, listing  # two workers and the embedded redis-server
        proc.send_signal(signal.SIGINT)
        assert _stopped(proc, log) == 0, log.read_text()
        time.sleep(0.5)
        survivors = [c for c in children if Path(f"/proc/{c}").exists()]
        assert not survivors, [line for line in listing if line.split()[0] in survivors]
    finally:
        _kill_all(proc)
