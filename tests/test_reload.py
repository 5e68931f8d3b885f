"""Hot reload across two real server processes sharing one Redis: convergence, refusal, rollback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nba.runtime.embedded_redis import free_port

pytestmark = pytest.mark.slow

# Generous on purpose: the design converges in about 1.5 s (WATCH_SECONDS 1 to notice the file,
# RULES_POLL_SECONDS 0.5 to follow), but a shared CI machine can pause a process; speed is for
# benchmarks, the test checks that convergence happens. The measured times are printed (pytest -s).
CONVERGE_SECONDS = 10.0


def _call(url: str, body: dict[str, object] | None = None, method: str | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method=method or ("POST" if data is not None else "GET"),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def two_servers(redis_url: str, rules_copy: Path, tmp_path: Path) -> Iterator[list[str]]:
    subprocess.run(["redis-cli", "-u", redis_url, "flushdb"], check=False, capture_output=True)
    procs: list[subprocess.Popen[bytes]] = []
    bases: list[str] = []
    for i in range(2):
        port = free_port()
        env = {
            **os.environ,
            "NBA_REDIS_URL": redis_url,
            "NBA_PORT": str(port),
            "NBA_RULES_DIR": str(rules_copy),
            "NBA_LOG_LEVEL": "WARNING",
            "NBA_DECIDE_DEADLINE_MS": "10000",
        }  # reloads are tested, not deadlines
        with (tmp_path / f"server{i}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "nba.cli", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
        bases.append(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 120
        for base in bases:
            while True:
                try:
                    if _call(f"{base}/readyz")[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "servers did not start"
                time.sleep(0.1)
        yield bases
    finally:
        for p in procs:
            p.terminate()
        slow = []
        for i, p in enumerate(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:  # kill it rather than leave it running, and say so
                p.kill()
                p.wait()
                slow.append((tmp_path / f"server{i}.log").read_text()[-3000:])
        assert not slow, f"a server did not stop within 30 s of SIGTERM: {slow}"


def _versions(bases: list[str]) -> list[str]:
    return [str(_call(f"{b}/v1/rules")[1]["version"]) for b in bases]


def _converge(bases: list[str], predicate: object, timeout: float = CONVERGE_SECONDS) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        versions = _versions(bases)
        if callable(predicate) and predicate(versions):
            return time.monotonic() - start
        time.sleep(0.05)
    pytest.fail(f"not converged within {timeout} s: {_versions(bases)}")


def _learned(base: str, action: str, timeout: float) -> float:
    """The rewards the learner has committed for `action`, once non-zero or after `timeout`."""
    start = time.monotonic()
    while True:
        _, stats = _call(f"{base}/v1/actions/stats")
        rewards = float(
            sum(c["rewards"] for c in next(x for x in stats["actions"] if x["action_id"] == action)["segments"])
        )
        if rewards or time.monotonic() - start >= timeout:
            return rewards
        time.sleep(0.05)


def test_edit_converges_invalid_is_refused_rollback_returns(
    two_servers: list[str], rules_copy: Path, redis_url: str
) -> None:
    a, b = two_servers
    v1 = _versions(two_servers)
    assert v1[0] == v1[1]
    # some learning before the reload: it must survive
    attrs = {"products": ["mobile"], "monthly_spend": 45.0, "tenure_months": 40, "consents": {"crosssell": True}}
    assert _call(f"{a}/v1/customers/c-1", {"attributes": attrs}, "PUT")[0] == 200
    # a Thompson draw may let the do-nothing threshold win (a few percent of cold decisions), and an
    # empty decision reserves nothing: ask again until an action is shown
    for _ in range(20):
        status, d = _call(f"{a}/v1/decide", {"customer_id": "c-1", "channel": "web"})
        assert status == 200
        if d["actions"]:
            break
    action = d["actions"][0]["action_id"]
    status, _ = _call(
        f"{a}/v1/events",
        {
            "events": [
                {
                    "event_id": "e1",
                    "type": "accept",
                    "customer_id": "c-1",
                    "action_id": action,
                    "decision_id": d["decision_id"],
                    "channel": "web",
                }
            ]
        },
    )
    assert status == 202
    # the learner commits it in the background: wait for that, so that what is checked after the edit is
    # that the learning survived the reload, not how fast the learner was
    assert _learned(a, action, CONVERGE_SECONDS) == 1.0

    tv = rules_copy / "actions" / "tv-addon.yaml"
    original = tv.read_text()
    tv.write_text(original.replace("value: 15", "value: 16"))
    took = _converge(two_servers, lambda vs: vs[0] == vs[1] != v1[0])
    print(f"edit converged on both servers in {took:.2f} s")
    v2 = _versions(two_servers)[0]
    _, rules = _call(f"{b}/v1/rules")
    assert next(x for x in rules["actions"] if x["id"] == "tv-addon")["value"] == 16
    assert _learned(b, action, 0.0) == 1.0

    tv.write_text(original.replace("value: 15", "value: lots"))
    time.sleep(2.0)  # four polls: an invalid set would have been published by now
    assert _versions(two_servers) == [v2, v2]
    status, problem = _call(f"{a}/v1/rules/reload", {})
    assert status == 422
    assert problem["code"] == "rules_invalid"
    assert any("actions/tv-addon.yaml:" in e["field"] for e in problem["errors"])

    tv.write_text(original.replace("value: 15", "value: 16"))
    status, reloaded = _call(f"{a}/v1/rules/reload", {})
    assert status == 200
    assert reloaded["version"] == v2

    env = {**os.environ, "NBA_REDIS_URL": redis_url}
    result = subprocess.run(
        [sys.executable, "-m", "nba.cli", "rules", "rollback"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert v1[0] in result.stdout
    assert f"still holds version {v2}" in result.stderr  # says how to make the rollback stick
    took = _converge(two_servers, lambda vs: vs == v1)
    print(f"rollback converged on both servers in {took:.2f} s")
    # the files still hold v2 and were saved again: no watcher publishes them (one raced the rollback
    # and undid it about one run in four, before the watchers compared content with the last published)
    os.utime(tv)
    time.sleep(2.5)  # more than two scans of each server (a slower machine only makes this weaker)
    assert _versions(two_servers) == v1
