"""Publishing rules through Redis: a rollback stays in force while the files still hold the newer set,
and a published set whose file names leave the rules directory is refused before anything is written."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from redis.asyncio import Redis

from nba.live import Live
from nba.rules.directory import read_rules, safe_rule_path
from nba.store import keys
from tests.api.helpers import Client
from tests.conftest import RULES, AppFactory, live


async def _current(redis: Redis) -> str:
    raw: bytes = await redis.get(keys.RULES_CURRENT) or b""  # type: ignore[assignment]
    return raw.decode()


async def _settle(lv: Live, rules: Path) -> None:
    """Two scans of the directory: a change is published once two scans agree on it."""
    await lv.watch_once(rules, scan=True)
    await lv.watch_once(rules, scan=True)


def _edit(rules: Path, value: int) -> None:
    tv = rules / "actions" / "tv-addon.yaml"
    tv.write_text(re.sub(r"(?m)^value: \d+$", f"value: {value}", tv.read_text()))


async def test_a_rollback_is_not_undone_by_the_watcher_or_a_restart(
    make_client: AppFactory, rules_copy: Path, redis: Redis
) -> None:
    first: Client = await make_client(rules_dir=rules_copy)
    lv: Live = live(first)
    v1 = await _current(redis)
    assert v1 == lv.snapshot.rulebook.version

    _edit(rules_copy, 16)
    await _settle(lv, rules_copy)
    v2 = await _current(redis)
    assert v2 != v1
    assert lv.snapshot.rulebook.version == v2

    assert await lv.store.rollback_rules() == v1
    await _settle(lv, rules_copy)
    assert lv.snapshot.rulebook.version == v1
    # the files are touched (saved again unchanged): a changed fingerprint, the same content
    tv = rules_copy / "actions" / "tv-addon.yaml"
    os.utime(tv, ns=(tv.stat().st_atime_ns, tv.stat().st_mtime_ns + 10**9))
    await _settle(lv, rules_copy)
    assert await _current(redis) == v1
    assert lv.snapshot.rulebook.version == v1

    restarted: Client = await make_client(rules_dir=rules_copy)  # start-up publishes only a changed directory
    assert await _current(redis) == v1
    assert live(restarted).snapshot.rulebook.version == v1
    assert await lv.store.rules_source_version() == v2

    _edit(rules_copy, 17)  # a real change of the files is published again
    await _settle(lv, rules_copy)
    v3 = await _current(redis)
    assert v3 not in (v1, v2)
    assert lv.snapshot.rulebook.version == v3
    # what the directory published by itself is in the audit trail, as such (the restart published nothing)
    trail = (await (await first.get("/v1/audit?action=rules.reload")).json())["entries"]
    assert [e["target"] for e in trail if e["actor_id"] == "rules-directory"] == [v1, v2, v3]
    assert all(e["actor"] == f"rules directory {rules_copy}" for e in trail if e["actor_id"] == "rules-directory")


async def test_a_set_still_being_written_is_not_published(
    make_client: AppFactory, rules_copy: Path, redis: Redis
) -> None:
    client: Client = await make_client(rules_dir=rules_copy)
    lv: Live = live(client)
    v1 = await _current(redis)
    _edit(rules_copy, 16)  # the first of several files a checkout writes
    await lv.watch_once(rules_copy, scan=True)
    assert await _current(redis) == v1  # seen once: perhaps half-written, not published yet
    _edit(rules_copy, 17)  # the checkout goes on
    await lv.watch_once(rules_copy, scan=True)
    assert await _current(redis) == v1
    await lv.watch_once(rules_copy, scan=True)  # the same at two scans: done
    assert await _current(redis) not in ("", v1)
    assert lv.snapshot.rulebook.actions[lv.snapshot.rulebook.action_index["tv-addon"]].value == 17


async def test_an_explicit_reload_publishes_the_files_after_a_rollback(
    make_client: AppFactory, rules_copy: Path, redis: Redis
) -> None:
    client: Client = await make_client(rules_dir=rules_copy)
    v1 = await _current(redis)
    _edit(rules_copy, 16)
    v2 = (await (await client.post("/v1/rules/reload")).json())["version"]
    assert await live(client).store.rollback_rules() == v1
    resp = await client.post("/v1/rules/reload")
    assert resp.status == 200
    assert (await resp.json()) == {"version": v2, "changed": True}
    assert await _current(redis) == v2


async def test_published_file_names_that_leave_the_directory_are_refused(
    client: Client, redis: Redis, tmp_path: Path
) -> None:
    lv = live(client)
    _, files = read_rules(RULES)
    tag = uuid.uuid4().hex
    escapes = {f"../nba-escape-{tag}.yaml", f"actions/../../nba-escape2-{tag}.yaml", str(tmp_path / f"abs-{tag}.yaml")}
    for name in escapes:
        assert not safe_rule_path(name)
    await lv.store.publish_rules("evil", {**files, **{n: "id: x\n" for n in escapes}})
    for _ in range(3):
        assert not await lv.sync_rules()
    assert lv.snapshot.rulebook.version != "evil"
    leaked = [
        p
        for p in (
            Path("/tmp") / f"nba-escape-{tag}.yaml",
            Path("/tmp") / f"nba-escape2-{tag}.yaml",
            tmp_path / f"abs-{tag}.yaml",
        )
        if p.exists()
    ]
    assert not leaked
    assert lv.metrics.rules_reloads.labels("invalid")._value.get() == 1  # refused once, not every poll


def test_safe_rule_paths() -> None:
    for ok in ("policy.yaml", "actions/tv-addon.yaml", "actions/sub/x y.yaml"):
        assert safe_rule_path(ok), ok
    for bad in (
        "",
        "/etc/x.yaml",
        "../x.yaml",
        "a/../../x.yaml",
        "a//x.yaml",
        "./x.yaml",
        "x.yml",
        "a\\..\\x.yaml",
        "x\x00.yaml",
        "x\n.yaml",
        "a/./x.yaml",
    ):
        assert not safe_rule_path(bad), bad
