"""A private redis-server child process: nba's embedded default, and the tests' real Redis."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

from nba.store.keys import REDIS_CONFIG

INSTALL_HINT = (
    "redis-server was not found. Install it (Debian/Ubuntu: apt-get install redis-server; "
    "macOS: brew install redis) or point NBA_REDIS_URL at a running Redis."
)


class RedisNotFound(RuntimeError):
    pass


class DataDirInUse(RuntimeError):
    """Another process owns the data directory: two redis-servers on one append-only file corrupt it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# What nba's own redis-server does when NBA_REDIS_MAXMEMORY is reached: evict only keys that expire anyway
# (decision records, contact counts, the histories of customers without a profile), least recently used
# first; profiles have no expiry and are never evicted. When nothing can be evicted, writes fail (OOM) and
# nba answers 503 storage_full instead of losing a profile silently.
MAXMEMORY_POLICY = "volatile-lru"


class DataDirUnusable(RuntimeError):
    """The data directory holds something nba cannot start from (an emptied password file)."""


def data_dir_password(data_dir: Path) -> str:
    """The password of the embedded Redis: generated once, kept (owner-only) beside its data."""
    path = data_dir / "password"
    if path.exists():
        password = path.read_text(encoding="utf-8").strip()
        if len(password) < 16:  # an emptied file must not start Redis without a password
            raise DataDirUnusable(f"{path} holds no usable password; delete it and a new one is generated")
        return password
    data_dir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(32)
    _write_private(path, password + "\n")
    return password


def _write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable by this user only from its first byte (a secret it holds
    is never in a file others could open, not even between a create and a chmod)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def data_dir_in_use(data_dir: Path) -> bool:
    """Some process (a running `nba serve`, or an admin command) holds the data directory's lock."""
    path = data_dir / "nba.lock"
    if not path.exists():
        return False
    with path.open("a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


class RedisServer:
    """Starts `redis-server` on a free loopback port. `persist=True` keeps an append-only file under
    `data_dir` (the embedded server); tests run without persistence. With a `password` clients must
    authenticate (it goes to Redis in a config file, not on the command line, which `ps` shows)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        persist: bool = True,
        extra: tuple[str, ...] = (),
        password: str | None = None,
        maxmemory: str | None = None,
        fsync_always: bool = False,
    ):
        self.data_dir = data_dir
        self.persist = persist
        self.extra = extra
        self.password = password
        self.maxmemory = maxmemory
        self.fsync_always = fsync_always  # every write on disk before Redis answers (NBA_DURABILITY=fsync)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        """Start on a free port, once this process owns the data directory (DataDirInUse otherwise)."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisNotFound(INSTALL_HINT)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.password:  # its files hold everything Redis does: owner only, like the password
            self.data_dir.chmod(0o700)
        self._own_directory()
        for _attempt in range(5):  # the port may be taken between free_port() and redis binding it
            self.port = free_port()
            if self._launch(binary, timeout):
                # so that `nba rules rollback` and other commands find the embedded server (owner-only:
                # it holds the password)
                _write_private(self.data_dir / "url", self.url + "\n")
                return self.url
            self._end_process()
        self._release_directory()
        raise RuntimeError(f"redis-server did not start; its log ends with:\n{self.log_tail()}")

    def restart(self, timeout: float = 120.0) -> None:
        """Start again on the same port (the servers' URL stays valid) after the process died; the data
        comes back from the append-only file. RuntimeError when it does not answer within `timeout`
        (a big file takes a while to load) or the port was taken meanwhile."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisNotFound(INSTALL_HINT)
        self._end_process()
        if not self._launch(binary, timeout):
            self._end_process()
            raise RuntimeError(
                f"redis-server did not restart on port {self.port}; its log ends with:\n{self.log_tail()}"
            )

    def _config_file(self) -> list[str]:
        """A config file for what must not appear on the command line: [] without a password."""
        if not self.password:
            return []
        path = self.data_dir / "redis.conf"
        _write_private(path, f"requirepass {self.password}\n")
        return [str(path.resolve())]

    def _launch(self, binary: str, timeout: float) -> bool:
        memory = ["--maxmemory", self.maxmemory, "--maxmemory-policy", MAXMEMORY_POLICY] if self.maxmemory else []
        args = [
            binary,
            *self._config_file(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir.resolve()),
            "--save",
            "",
            "--appendonly",
            "yes" if self.persist else "no",
            "--appendfsync",
            "always" if self.fsync_always else "everysec",
            "--daemonize",
            "no",
            "--logfile",
            str((self.data_dir / "redis.log").resolve()),
            *(x for name, value in REDIS_CONFIG.items() for x in (f"--{name}", str(value))),
            *memory,
            *self.extra,
        ]
        # umask: the append-only files and snapshots Redis writes are the owner's only
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, umask=0o077 if self.password else -1
        )
        return self._wait(timeout)

    def log_tail(self, size: int = 2000) -> str:
        log = self.data_dir / "redis.log"
        return log.read_text(errors="replace")[-size:] if log.exists() else ""

    def _own_directory(self) -> None:
        """One data directory, one owner: a second `nba serve` on the same directory would start a second
        redis-server on the same append-only files, and its stop would delete the first one's `url`."""
        lock = (self.data_dir / "nba.lock").open("a+", encoding="utf-8")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            owner = lock.read().strip() or "unknown"
            lock.close()
            raise DataDirInUse(
                f"the data directory {self.data_dir} is in use by another nba serve (pid {owner}); "
                "give this one its own NBA_DATA_DIR, or point NBA_REDIS_URL at that server's "
                "Redis"
            ) from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def _release_directory(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            try:
                if self._answers():
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def _answers(self) -> bool:
        """Our process answers on the port: PING says it has loaded its data (-LOADING before), and the
        process id in INFO that it is ours, not another server that took the port meanwhile."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            auth = f"AUTH {self.password}\r\n".encode() if self.password else b""
            s.sendall(auth + b"PING\r\nINFO server\r\n")
            data = b""
            while not re.search(rb"process_id:\d+\r\n", data):
                chunk = s.recv(65536)
                if not chunk:
                    return False
                data += chunk
        found = re.search(rb"process_id:(\d+)", data)
        if self.password:
            if not data.startswith(b"+OK\r\n"):
                return False
            data = data[5:]
        return (
            data.startswith(b"+PONG")
            and found is not None
            and self.process is not None
            and int(found.group(1)) == self.process.pid
        )

    def stop(self) -> None:
        """SIGTERM makes Redis flush the append-only file and exit cleanly."""
        if self.process is None and self._lock is None:
            return
        (self.data_dir / "url").unlink(missing_ok=True)
        self._end_process()
        self._release_directory()

    def _end_process(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
