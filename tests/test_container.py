"""The container image (Dockerfile) built and run as an operator would: buildah builds it from the repository,
`nba serve` runs in it as its non-root user with the shipped rules, and the README's tour with curl works
against it. No registry is reachable here: ../shared/tools/container-base.sh builds the base image from
Debian packages, and buildah's chroot isolation runs commands in a working container on this host's network
(its processes are this machine's processes, so they are found, signalled and checked through /proc)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from nba.runtime.embedded_redis import RedisServer, free_port
from tests.conftest import ROOT
from tests.serving import call, wait_for

BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
# builds BASE_IMAGE from Debian packages where no registry is reachable: beside the project's checkout,
# where the development machines keep it, or named by NBA_CONTAINER_BASE_SCRIPT (CI clones elsewhere)
BASE_IMAGE_SCRIPTS = [
    Path(p)
    for p in (
        os.environ.get("NBA_CONTAINER_BASE_SCRIPT", ""),
        str(ROOT.parent / "shared" / "tools" / "container-base.sh"),
        "/work/shared/tools/container-base.sh",
    )
    if p
]
TAG = "nba:test"
BUILD_TIMEOUT = 900  # seconds: from scratch it downloads Debian packages and numpy, scipy and the rest from PyPI
# a chroot-isolated command runs as the image's USER, in its WORKDIR, with its ENV and the --env given
RUN = ("buildah", "run", "--isolation", "chroot")

pytestmark = [
    pytest.mark.slow,
    # the first test also builds the base image and the image (module fixture), each within BUILD_TIMEOUT
    pytest.mark.timeout(2 * BUILD_TIMEOUT + 600),
    pytest.mark.skipif(
        shutil.which("buildah") is None, reason="buildah is not installed (scripts/setup.sh --test installs it)"
    ),
]


@dataclass(frozen=True)
class Image:
    id: str
    config: dict[str, Any]  # the Docker-format configuration: USER, ENTRYPOINT, HEALTHCHECK, labels, ...

    @property
    def entrypoint(self) -> list[str]:
        return list(self.config["Entrypoint"])


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _ok(*args: str, timeout: float = 120) -> str:
    result = _run(*args, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{result.stderr[-5000:]}"
    return result.stdout


def _ca_bundle() -> str | None:
    """The certificate authorities pip trusts on this machine: a network that inspects TLS to PyPI needs
    its own authority in the build too (the Dockerfile takes it as the build secret `ca`)."""
    for candidate in (os.environ.get("PIP_CERT"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    if _run("buildah", "inspect", "--type", "image", BASE_IMAGE).returncode != 0:
        script = next((s for s in BASE_IMAGE_SCRIPTS if s.is_file()), None)
        if script is None:
            pytest.skip(f"no {BASE_IMAGE} in buildah's storage and no script to build it: {BASE_IMAGE_SCRIPTS}")
        _ok("bash", str(script), timeout=BUILD_TIMEOUT)
    iid = tmp_path_factory.mktemp("image") / "iid"
    ca = _ca_bundle()
    secret = ["--secret", f"id=ca,src={ca}"] if ca else []
    # --layers: a rebuild reuses every step whose inputs did not change (seconds when nothing did);
    # --format docker: the OCI format has no HEALTHCHECK, buildah would drop it
    build = ["buildah", "bud", "--isolation", "chroot", "--pull=never", "--layers", "--force-rm", "--format", "docker"]
    result = subprocess.run(
        [*build, *secret, "--iidfile", str(iid), "--tag", TAG, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
    assert result.returncode == 0, f"the image did not build:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
    # by id, not by tag: a concurrent build elsewhere on this machine may move the tag
    image_id = iid.read_text().strip()
    inspected = json.loads(_ok("buildah", "inspect", "--type", "image", image_id))
    return Image(image_id, inspected["Docker"]["config"])


@pytest.fixture
def container(image: Image) -> Iterator[str]:
    """A working container of the image: its own file system and data volume, removed afterwards."""
    name = _ok("buildah", "from", "--pull=never", image.id).strip()
    try:
        yield name
    finally:
        _run("buildah", "rm", name)


def _session_members(session: int) -> dict[int, str]:
    """The processes of a session, with their command names."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        comm, _, rest = stat.partition(" (")[2].rpartition(")")
        fields = rest.split()  # state, ppid, pgrp, session, ...
        if int(fields[3]) == session and fields[0] != "Z":
            found[int(entry)] = comm
    return found


class InContainer:
    """A command started in a working container by `buildah run`, in a session of its own. Everything it
    starts stays in that session (tini gives the server a process group of its own, so the group would not
    do), which is how it is signalled, checked and, whatever happens, ended."""

    def __init__(self, container: str, command: list[str], env: dict[str, str], log: Path):
        self.log = log
        flags = [x for name, value in env.items() for x in ("--env", f"{name}={value}")]
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*RUN, *flags, container, "--", *command],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def members(self) -> dict[int, str]:
        return _session_members(self.proc.pid)

    def pid_of(self, comm: str) -> int:
        pids = [pid for pid, name in self.members().items() if name == comm]
        assert len(pids) == 1, f"{comm} processes: {self.members()}"
        return pids[0]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {timeout:.0f} s; its output:\n{self.output()[-5000:]}")

    def kill_all(self) -> None:
        for pid in self.members():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=60)


def _start(container: str, command: list[str], env: dict[str, str], log: Path) -> tuple[InContainer, int]:
    """Start `command` with NBA_PORT set to a free loopback port, and return once it holds the port (or has
    exited); again on another port should that one be taken before nba bound it (it exits 2, saying so)."""
    for _attempt in range(3):
        port = free_port()
        started = InContainer(container, command, env | {"NBA_PORT": str(port)}, log)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if started.proc.poll() is not None:
                if started.proc.returncode == 2 and "is in use" in started.output():
                    break
                return started, port
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
                return started, port
            time.sleep(0.1)
        else:
            started.kill_all()
            pytest.fail(f"nba did not listen within 180 s:\n{started.output()[-5000:]}")
    pytest.fail(f"no free port in three attempts:\n{started.output()[-5000:]}")


def _wait_ready(server: InContainer, base: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.proc.poll() is None, f"nba serve exited {server.proc.returncode}:\n{server.output()[-5000:]}"
        with contextlib.suppress(OSError):
            if call(base + "/readyz", timeout=5)[0] == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"nba serve did not become ready within {timeout:.0f} s:\n{server.output()[-5000:]}")


def _uids(pid: int) -> list[int]:
    """Real, effective, saved and file-system user id of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no Uid line for {pid}")


def test_the_image_is_configured_for_operators(image: Image, container: str) -> None:
    config = image.config
    assert image.entrypoint[-1] == "nba"
    assert config["Cmd"] == ["serve"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["NBA_HOST"] == "0.0.0.0"
    assert env["NBA_PORT"] == "8080"
    assert "8080/tcp" in config["ExposedPorts"]
    assert env["NBA_DATA_DIR"] in config["Volumes"]
    assert config["Healthcheck"]["Test"][0] == "CMD"
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])
    user = config["User"].split(":")[0]
    assert user.isdigit(), "a numeric USER (Kubernetes' runAsNonRoot cannot verify a name)"
    assert int(user) != 0
    assert _ok(*RUN, container, "--", "id", "-u").strip() == user

    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert _ok(*RUN, container, "--", "nba", "--version").strip() == f"nba {version}"
    assert config["Labels"]["org.opencontainers.image.version"] == version
    assert config["Labels"]["org.opencontainers.image.licenses"] == "MIT"

    # the shipped rules are valid where the image keeps them
    assert "ok, version" in _ok(*RUN, container, "--", "nba", "rules", "check")
    # a runtime image: no compiler, no installer, no headers to build against
    probe = (
        "import importlib.util, json, os, shutil; print(json.dumps({"
        "'tools': [t for t in ('gcc', 'cc', 'c++', 'make', 'pip', 'pip3', 'python3-config') if shutil.which(t)],"
        "'pip': importlib.util.find_spec('pip') is not None,"
        "'headers': os.path.exists('/usr/include/python3.11')}))"
    )
    assert json.loads(_ok(*RUN, container, "--", "python3", "-c", probe)) == {
        "tools": [],
        "pip": False,
        "headers": False,
    }
    # byte-compiled in the build: nothing nba imports at start-up is compiled from source (its user could not
    # write the .pyc files, so every process would compile them again)
    imports = _run(*RUN, container, "--", "python3", "-v", "-c", "import nba.cli, nba.app, scipy.special")
    assert imports.returncode == 0, imports.stderr[-5000:]
    compiled = re.findall(r"^# code object from (/\S+\.py)$", imports.stderr, re.MULTILINE)
    assert compiled == []
    assert len(re.findall(r"^# code object from '\S+\.pyc'$", imports.stderr, re.MULTILINE)) > 100


def test_beyond_loopback_it_refuses_to_serve_without_a_key(image: Image, container: str, tmp_path: Path) -> None:
    """The image's own defaults (NBA_HOST=0.0.0.0, no key yet): `nba serve` says how to start and exits."""
    server, _port = _start(container, [*image.entrypoint, *image.config["Cmd"]], {}, tmp_path / "serve.log")
    try:
        assert server.wait(timeout=180) == 2, server.output()
        assert "not starting on 0.0.0.0: no API keys exist" in server.output()
        assert "nba keys create --name NAME --role admin" in server.output()
    finally:
        server.kill_all()


def test_compose_key_service_keeps_a_known_key_and_replaces_a_lost_one(
    image: Image, container: str, tmp_path: Path
) -> None:
    """compose.yaml's nba-keys one-shot, run in the image as compose runs it: it creates Prometheus's key
    once, keeps it while Redis knows it, and creates another when Redis lost it (a restore, a revocation),
    so that nba never starts without a key and Prometheus never scrapes with a dead one."""
    spec = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["nba-keys"]
    script = tmp_path / "nba-keys.sh"
    script.write_text(spec["command"][0].replace("$$", "$"))  # compose's escape of a literal $
    # a new named volume takes the owner of the image's directory
    assert _ok(*RUN, container, "--", "stat", "-c", "%u", "/run/nba-keys").strip() == "10001"
    keys = tmp_path / "keys"
    keys.mkdir()
    os.chown(keys, 10001, 10001)
    server = RedisServer(tmp_path / "redis", persist=False)
    url = server.start()

    def one_shot() -> str:
        mounts = ["-v", f"{keys}:/run/nba-keys", "-v", f"{script}:/nba-keys.sh:ro"]
        done = _run(
            *RUN, *mounts, "--env", f"NBA_REDIS_URL={url}", container, "--", *spec["entrypoint"][:1], "/nba-keys.sh"
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return (keys / "prometheus.key").read_text().strip()

    try:
        first = one_shot()
        assert re.fullmatch(r"nba_[0-9a-f]+_\S+", first), first
        assert oct((keys / "prometheus.key").stat().st_mode & 0o777) == "0o644"  # Prometheus runs as another user
        assert one_shot() == first
        with redis.Redis.from_url(url) as client:
            client.flushall()
        second = one_shot()
        assert second != first
    finally:
        server.stop()


def test_the_readme_tour_against_the_container(image: Image, container: str, tmp_path: Path) -> None:
    command = [*image.entrypoint, "serve", "--demo-customers", "50"]
    # on 127.0.0.1 with no key nba runs open, as the README's tour assumes
    server, port = _start(container, command, {"NBA_HOST": "127.0.0.1"}, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(server, base)
        user = int(image.config["User"].split(":")[0])
        status, health = call(base + "/healthz", timeout=30)
        assert status == 200
        assert health["status"] == "ok"
        # the process that answers is the container's, and runs as its user, as does its redis-server
        assert server.pid_of("nba") == health["pid"]
        assert _uids(health["pid"]) == [user] * 4
        assert _uids(server.pid_of("redis-server")) == [user] * 4
        _tour(base)
        _health_check_of_the_image(image, container, port)
        _first_key_closes_it(container, base, server)

        # docker stop: SIGTERM to the container's first process, which passes it to nba
        os.kill(server.pid_of("tini"), signal.SIGTERM)
        assert server.wait(timeout=90) == 0, server.output()[-5000:]
        wait_for(lambda: not server.members(), 30, "every process of the container ended", server.log)
    finally:
        server.kill_all()


def _tour(base: str) -> None:
    """README.md, "A tour with curl", request by request."""
    status, rules = call(base + "/v1/rules", timeout=30)
    assert status == 200
    assert {"web", "call_center"} <= {c["name"] for c in rules["channels"]}

    body = {"customer_id": "c-1003", "channel": "web", "context": {"reason": "billing"}, "limit": 3}
    # a new model's Thompson draws all fall below the no-action threshold now and then (8 of 400 such decisions
    # here): a valid answer, but the events below need an action. An empty decision reserves nothing.
    for _attempt in range(20):
        status, decision = call(base + "/v1/decide", body, timeout=30)
        assert status == 200, decision
        assert decision["decision_id"]
        if decision["actions"]:
            break
    assert 1 <= len(decision["actions"]) <= 3
    assert [a["rank"] for a in decision["actions"]] == list(range(1, len(decision["actions"]) + 1))
    assert all(0 < a["probability"] <= 1 for a in decision["actions"])
    assert decision["rules_version"] == rules["version"]
    assert decision["degraded"] is False
    action = decision["actions"][0]["action_id"]

    status, explained = call(
        base + "/v1/decide", {"customer_id": "c-1003", "channel": "call_center", "explain": True}, timeout=30
    )
    assert status == 200, explained
    assert explained["explain"]
    assert all({"action_id", "rule", "eligible", "stage"} <= set(item) for item in explained["explain"])

    events = {
        "events": [
            {
                "event_id": "e-1",
                "type": "impression",
                "customer_id": "c-1003",
                "action_id": action,
                "decision_id": decision["decision_id"],
                "channel": "web",
            },
            {
                "event_id": "e-2",
                "type": "accept",
                "customer_id": "c-1003",
                "action_id": action,
                "decision_id": decision["decision_id"],
                "channel": "call_center",
            },
        ]
    }
    expected = {"accepted": 2, "duplicates": 0, "credited": 2, "unattributed": 0, "erased": 0, "unknown_customer": 0}
    status, accepted = call(base + "/v1/events", events, timeout=30)
    assert status == 202, accepted
    assert {k: accepted.get(k) for k in expected} == expected
    status, again = call(base + "/v1/events", events, timeout=30)  # idempotent on event_id
    assert status == 202, again
    assert again["duplicates"] == 2

    attributes = {
        "products": ["mobile"],
        "plan": "large",
        "usage_gb": 2.5,
        "monthly_spend": 35,
        "tenure_months": 48,
        "consents": {"crosssell": True},
    }
    customer = base + "/v1/customers/c-42"
    status, written = call(customer, {"attributes": attributes}, method="PUT", timeout=30)
    assert status == 200, written
    assert written["attributes"] == attributes
    assert "mobile_customer" in written["segments"]
    status, read = call(customer, timeout=30)
    assert status == 200
    assert read["attributes"] == attributes
    assert call(customer, method="DELETE", timeout=30)[0] == 204
    status, gone = call(customer, timeout=30)
    assert status == 404
    assert gone["code"] == "customer_not_found"

    status, reloaded = call(base + "/v1/rules/reload", method="POST", timeout=30)
    assert status == 200, reloaded
    assert (reloaded["version"], reloaded["changed"]) == (rules["version"], False)
    status, stats = call(base + "/v1/actions/stats", timeout=30)
    assert status == 200
    assert action in {a["action_id"] for a in stats["actions"]}
    with urllib.request.urlopen(base + "/metrics", timeout=30) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert 'nba_decisions_total{channel="web",outcome="actions"}' in resp.read().decode()
    status, ready = call(base + "/readyz", timeout=30)
    assert status == 200
    assert ready["status"] == "ready"
    status, contract = call(base + "/openapi.json", timeout=30)
    assert status == 200
    assert contract["openapi"].startswith("3.1")
    assert "/v1/decide" in contract["paths"]


def _health_check_of_the_image(image: Image, container: str, port: int) -> None:
    """The image's HEALTHCHECK command, run as the container runtime would, against the running server."""
    test = image.config["Healthcheck"]["Test"]
    assert test[0] == "CMD"
    check = _run(*RUN, "--env", "NBA_HOST=127.0.0.1", "--env", f"NBA_PORT={port}", container, "--", *test[1:])
    assert check.returncode == 0, check.stderr[-5000:]
    # and it fails where nothing answers
    unused = free_port()
    failing = _run(*RUN, "--env", "NBA_HOST=127.0.0.1", "--env", f"NBA_PORT={unused}", container, "--", *test[1:])
    assert failing.returncode != 0


def _first_key_closes_it(container: str, base: str, server: InContainer) -> None:
    """How the Dockerfile says to start: `nba keys create` next to the server (docker exec) finds its
    Redis in the data volume; from that key on every request needs one."""
    created = _run(*RUN, container, "--", "nba", "keys", "create", "--name", "admin", "--role", "admin")
    assert created.returncode == 0, created.stderr[-5000:]
    key = created.stdout.splitlines()[0].strip()
    assert key.startswith("nba_")
    wait_for(lambda: call(base + "/v1/rules", timeout=30)[0] == 401, 30, "the server closed", server.log)
    assert call(base + "/v1/rules", key=key, timeout=30)[0] == 200
    assert call(base + "/healthz", timeout=30)[0] == 200  # the health check needs no key
