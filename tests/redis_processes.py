"""What tests/redis_cluster.py (LocalCluster) and tests/redis_sentinel.py (LocalSentinel) share: redis-server
child processes on free loopback ports, started, watched and killed the same way.

`ServerNode` is what a node of either knows about its process and files, `LocalServers` the life of a set
of them: start on free ports (again on other ones when another process took a port meanwhile), poll until
a condition holds, kill, restart on the same port, stop. A subclass says which nodes there are, how each
is configured and when the started set counts as formed.

Every wait polls with short sleeps up to a generous timeout (a busy machine takes seconds where an idle one
takes milliseconds) and fails with the subclass' error, which tells what it was still waiting for and ends
with the nodes' log tails. The processes are killed by `stop()`, at interpreter exit (atexit) and, on Linux,
also when the Python process dies without running atexit (SIGKILL): `setpriv --pdeathsig KILL` starts
them. That signal comes when the *thread* that started a node ends: start and restart nodes from the main
thread or a thread that lives as long as the nodes should (asyncio.to_thread's workers live until the event
loop closes).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from nba.runtime.embedded_redis import free_port

HOST = "127.0.0.1"
POLL = 0.1  # seconds between two looks at the nodes
PORT_ATTEMPTS = 8  # a node whose port another process took meanwhile starts again on other ports

Settings = list[tuple[str, object]]


class LocalServersError(RuntimeError):
    pass


class ServerNode:
    """The part of a node that is about its redis-server process and its files.

    A plain class, not a dataclass: each node dataclass keeps its own fields in its own order, and with
    them its constructor. The annotations only tell what those dataclasses must have."""

    host: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None  # the latest one started (it may have exited)
    killed_at: float | None  # time.monotonic() of the last kill()
    password: str | None = None  # what a client of this node must give; a node class without the field has none

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def config_file(self) -> Path:
        return self.directory / "redis.conf"

    @property
    def log_file(self) -> Path:
        return self.directory / "redis.log"

    @property
    def output_file(self) -> Path:
        """stdout and stderr: what redis-server says before it opens its log file (a bad config)."""
        return self.directory / "output.log"


N = TypeVar("N", bound=ServerNode)


@contextlib.contextmanager
def connect(node: ServerNode, *, decode: bool = True, timeout: float = 5.0) -> Iterator[redis.Redis]:
    """A plain (not cluster-aware) client of one node, with its password, closed afterwards; no retries: a
    poll retries."""
    client = redis.Redis(
        host=node.host,
        port=node.port,
        password=node.password,
        decode_responses=decode,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 2.0),
        retry=Retry(NoBackoff(), 0),
    )
    try:
        yield client
    finally:
        client.close()


def execute(client: redis.Redis, *args: Any) -> Any:
    """client.execute_command, which redis-py leaves untyped. "SENTINEL" as a command of its own gets no
    response callback: the server's answer as it is."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def command(node: ServerNode, *args: Any, timeout: float = 5.0) -> Any:
    """One command on one node, on a connection of its own."""
    with connect(node, timeout=timeout) as client:
        return execute(client, *args)


def free_port_but(taken: set[int]) -> int:
    """A free port none of our nodes was given yet (those of nodes still starting are not bound yet); it
    joins `taken`."""
    while True:
        port = free_port()
        if port not in taken:
            taken.add(port)
            return port


def server_settings(node: ServerNode) -> Settings:
    """What every node needs: its own port, files and log, in the foreground (a child we can kill)."""
    return [
        ("port", node.port),
        ("bind", node.host),
        ("dir", node.directory.resolve()),
        ("logfile", node.log_file.resolve()),
        ("daemonize", "no"),
        ("protected-mode", "no"),
    ]


def data_settings() -> Settings:
    """What a node holding data needs: durable writes, values as large as the project's, fast replication."""
    return [
        ("appendonly", "yes"),
        ("appendfsync", "everysec"),
        ("save", '""'),
        ("hash-max-listpack-value", 4096),
        ("repl-diskless-sync", "yes"),
        ("repl-diskless-sync-delay", 0),
        # an idle primary's replication offset only moves when it pings its replicas: every 10 s by
        # default; CLUSTER SLOTS hides a replica whose offset is still 0, and the sentinels promote the
        # replica with the highest offset
        ("repl-ping-replica-period", 1),
    ]


def config_text(settings: Settings) -> str:
    return "".join(f"{name} {value}\n" for name, value in settings)


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable by this user only (it may hold a password)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def launcher() -> list[str]:
    """What starts redis-server so that it dies with us even when atexit does not run (see above)."""
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    return [setpriv, "--pdeathsig", "KILL"] if setpriv else []


def spawn(node: ServerNode, argv: Sequence[str]) -> None:
    with node.output_file.open("ab") as output:
        node.process = subprocess.Popen(
            argv,
            cwd=node.directory,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            umask=0o077,  # the append-only files hold what a password protects
        )


def end(node: ServerNode) -> None:
    """SIGKILL `node` if it runs, and wait until it has exited."""
    if node.process is not None and node.process.poll() is None:
        node.process.kill()
        node.process.wait(timeout=30)


def answers(node: ServerNode) -> bool:
    """PING says the node has loaded its data; the process id in INFO that it is ours, not another server
    that took the port."""
    try:
        with connect(node, timeout=2.0) as client:
            client.ping()
            info = client.info("server")
    except (redis.RedisError, OSError):
        return False
    return node.process is not None and info.get("process_id") == node.process.pid


def wait_answering(node: ServerNode, deadline: float) -> bool:
    """Until our process answers PING on its port (False when it exited or the deadline passed)."""
    while time.monotonic() < deadline:
        if not node.alive():
            return False
        if answers(node):
            return True
        time.sleep(0.05)
    return False


def log_tail(node: ServerNode, size: int = 2000) -> str:
    parts = []
    for path in (node.output_file, node.log_file):
        text = path.read_text(errors="replace")[-size:].strip() if path.exists() else ""
        if text:
            parts.append(text)
    return "\n".join(parts)


def port_was_taken(node: ServerNode, log_offset: int = 0) -> bool:
    """Whether `node` exited because another process holds its port (it says so in its log after
    `log_offset`); then another try may work, other failures would only repeat."""
    if node.alive() or not node.log_file.exists():
        return False
    return "in use" in node.log_file.read_bytes()[log_offset:].decode(errors="replace")


class LocalServers(Generic[N]):
    """A set of redis-server nodes that work together. A subclass sets `error` and `noun` and fills in the methods
    that raise NotImplementedError."""

    error: ClassVar[type[LocalServersError]]
    noun: ClassVar[str]  # what error messages call the set: "cluster", "deployment"

    def __init__(self, directory: Path):
        self.directory = directory
        self.start_seconds = 0.0  # how long start() took
        self._server = ""

    # -- what a subclass says -------------------------------------------------------------------------

    def _every_node(self) -> list[N]:
        """In the order they start."""
        raise NotImplementedError

    def _make_nodes(self) -> None:
        """Create the nodes (not started, port 0) under `self.directory`."""
        raise NotImplementedError

    def _form(self, deadline: float) -> None:
        """Start the nodes made and wait until they work together as the subclass promises."""
        raise NotImplementedError

    def _config(self, node: N) -> str:
        raise NotImplementedError

    def _server_args(self, node: N) -> list[str]:
        """What redis-server takes after its config file."""
        return []

    def _pick_ports(self, node: N, taken: set[int]) -> None:
        node.port = free_port_but(taken)

    def _before_kill(self, node: N) -> None:
        """Note on `node` what a wait for the failover that follows needs to know."""

    # -- addresses ------------------------------------------------------------------------------------

    def node_at(self, port: int) -> N:
        for node in self._every_node():
            if node.port == port:
                return node
        raise LookupError(f"no node of this {self.noun} listens on port {port}")

    # -- start and stop -------------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Start the nodes and wait until they are formed (see the subclass' `_form`); on any failure
        nothing keeps running."""
        if self._every_node():
            raise self.error(f"this {self.noun} was started already")
        began = time.monotonic()
        server = shutil.which("redis-server")
        if server is None:
            raise self.error("redis-server must be installed (apt-get install redis-server)")
        self._server = server
        self.directory.mkdir(parents=True, exist_ok=True)
        self._make_nodes()
        atexit.register(self.stop)
        try:
            self._form(began + timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """SIGKILL every node still running, the last started first (idempotent; also runs at interpreter
        exit)."""
        # all killed before any is waited for: no node sees the others go one by one and acts on it
        # (a sentinel starting a failover)
        for node in reversed(self._every_node()):
            if node.process is not None and node.process.poll() is None:
                node.process.kill()
        for node in self._every_node():
            if node.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.process.wait(timeout=30)
        atexit.unregister(self.stop)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _launch(self, *nodes: N, deadline: float) -> None:
        """Start `nodes` on fresh free ports; those whose port another process took start again."""
        taken = {node.port for node in self._every_node() if node.port}
        pending = list(nodes)
        for _attempt in range(PORT_ATTEMPTS):
            for node in pending:
                self._pick_ports(node, taken)
                shutil.rmtree(node.directory, ignore_errors=True)  # a failed attempt's files name its ports
                node.directory.mkdir(parents=True)
                write_private(node.config_file, self._config(node))
                self._spawn(node)
            failed = [node for node in pending if not wait_answering(node, deadline)]
            for node in failed:
                if not port_was_taken(node):
                    end(node)
                    raise self.error(f"{node!r} did not start; its log ends with:\n{log_tail(node)}")
            pending = failed
            if not pending:
                return
        raise self.error(f"no free ports for {pending} after {PORT_ATTEMPTS} attempts")

    def _spawn(self, node: N) -> None:
        spawn(node, [*launcher(), self._server, str(node.config_file.resolve()), *self._server_args(node)])

    def _respawn(self, node: N, deadline: float) -> None:
        """Start `node` again on its port and directory, until it answers."""
        if node.alive():
            raise self.error(f"{node!r} is running")
        while True:
            logged = node.log_file.stat().st_size if node.log_file.exists() else 0
            self._spawn(node)
            if wait_answering(node, deadline):
                return
            if not port_was_taken(node, logged) or time.monotonic() + 1 > deadline:
                end(node)
                raise self.error(f"{node!r} did not restart; its log ends with:\n{log_tail(node)}")
            time.sleep(0.5)  # its port is in use: maybe only for a moment

    # -- looking at the nodes -------------------------------------------------------------------------

    def role(self, node: N) -> dict[str, Any]:
        """INFO replication of a data node (role, master_port, master_link_status, connected_slaves, ...)."""
        with connect(node) as client:
            return dict(client.info("replication"))

    def log_tail(self, node: N, size: int = 2000) -> str:
        return log_tail(node, size)

    def _log_tails(self) -> str:
        return "\n".join(f"--- {node!r} log:\n{log_tail(node)}" for node in self._every_node())

    # -- waiting --------------------------------------------------------------------------------------

    def _poll(self, problem: Callable[[], str | None], deadline: float, what: str) -> None:
        """Until `problem()` says None; `error` with the last problem and the logs at the deadline."""
        began = time.monotonic()
        last = "not looked at yet"
        while True:
            try:
                found = problem()
            except (redis.RedisError, OSError, ValueError, LookupError, self.error) as e:
                # a node that is down, restarting or not told yet: what the wait is for
                found = f"{type(e).__name__}: {e}"
            if found is None:
                return
            last = found
            if time.monotonic() >= deadline:
                raise self.error(f"{what} within {time.monotonic() - began:.1f} s; still: {last}\n{self._log_tails()}")
            time.sleep(POLL)

    # -- faults and data ------------------------------------------------------------------------------

    def kill(self, node: N) -> None:
        """SIGKILL `node` and wait until it has exited."""
        if not node.alive():
            raise self.error(f"{node!r} is not running")
        self._before_kill(node)
        end(node)
        node.killed_at = time.monotonic()

    def _flush(self, primary: N, deadline: float) -> None:
        """FLUSHALL on `primary`, then WAIT until its connected replicas have it too."""
        with connect(primary) as client:
            wanted = int(client.info("replication").get("connected_slaves", 0))
            client.flushall()
            while wanted and int(execute(client, "WAIT", wanted, 500)) < wanted:
                if time.monotonic() > deadline:
                    raise self.error(f"the replicas of {primary!r} did not acknowledge FLUSHALL in time")
