"""A private redis-server child process: nba's embedded default, and the tests' real Redis."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from nba.store.keys import REDIS_CONFIG

INSTALL_HINT = ("redis-server was not found. Install it (Debian/Ubuntu: apt-get install redis-server; "
                "macOS: brew install redis) or point NBA_REDIS_URL at a running Redis.")


class RedisNotFound(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """Starts `redis-server` on a free loopback port. `persist=True` keeps an append-only file under
    `data_dir` (the embedded server); tests run without persistence."""

    def __init__(self, data_dir: Path, *, persist: bool = True, extra: tuple[str, ...] = ()):
        self.data_dir = data_dir
        self.persist = persist
        self.extra = extra
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisNotFound(INSTALL_HINT)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _attempt in range(5):  # the port may be taken between free_port() and redis binding it
            self.port = free_port()
            args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir.resolve()),
                    "--save", "", "--appendonly", "yes" if self.persist else "no", "--daemonize", "no",
                    "--logfile", str((self.data_dir / "redis.log").resolve()),
                    *(x for name, value in REDIS_CONFIG.items() for x in (f"--{name}", str(value))), *self.extra]
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait(timeout):
                # so that `nba rules rollback` and other commands find the embedded server
                (self.data_dir / "url").write_text(self.url + "\n", encoding="utf-8")
                return self.url
            self.stop()
        log = self.data_dir / "redis.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"redis-server did not start; its log ends with:\n{tail}")

    def _wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        """SIGTERM makes Redis flush the append-only file and exit cleanly."""
        if self.process is None:
            return
        (self.data_dir / "url").unlink(missing_ok=True)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
