"""Access control as operators meet it: `nba serve` on a non-loopback address, keys made and revoked with
`nba keys` while servers run, the embedded Redis's password and memory policy, secrets kept out of logs,
and `nba audit`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis as redis_sync

from nba.runtime.embedded_redis import RedisServer, free_port
from tests.serving import Serve, call, nba, wait_for

pytestmark = pytest.mark.slow


def test_a_server_on_a_non_loopback_address_needs_a_key_or_insecure_open(tmp_path: Path) -> None:
    refused = Serve(tmp_path / "a", "--host", "0.0.0.0")
    try:
        assert refused.exit_code() == 2
        log = refused.log.read_text()
        assert "no API keys exist" in log
        assert "nba keys create" in log
    finally:
        refused.kill_all()
    # --insecure-open: it starts, and says so
    insecure = Serve(tmp_path / "b", "--host", "0.0.0.0", "--insecure-open")
    try:
        insecure.wait_ready()
        assert call(insecure.url("/v1/actions/stats"))[0] == 200
        assert "--insecure-open" in insecure.log.read_text()
    finally:
        insecure.kill_all()
    # with a key made before the first start (the data directory's Redis is started for the command)
    env = {"NBA_DATA_DIR": str(tmp_path / "c" / "var")}
    made = nba("keys", "create", "--name", "ops", "--role", "admin", env=env)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("nba_")
    assert "cannot be shown again" in made.stderr
    keyed = Serve(tmp_path / "c", "--host", "0.0.0.0")
    try:
        keyed.wait_ready()
        assert call(keyed.url("/v1/actions/stats"))[0] == 401
        assert call(keyed.url("/v1/actions/stats"), key=key)[0] == 200
        assert call(keyed.url("/readyz")) == (200, {"status": "ready"})  # open, without details
        listed = nba("keys", "list", env=env)  # next to the running server: its Redis
        assert "ops" in listed.stdout
        assert key not in listed.stdout
        # an erasure, read back with nba audit: by the key's name, the id only as a hash
        customer = {"attributes": {"plan": "small"}}
        assert call(keyed.url("/v1/customers/c-77"), customer, method="PUT", key=key)[0] == 200
        assert call(keyed.url("/v1/customers/c-77"), method="DELETE", key=key)[0] == 204
        trail = nba("audit", env=env)
        assert "customer.erase" in trail.stdout
        assert "by ops (admin" in trail.stdout
        assert "c-77" not in trail.stdout
        confirmed = nba("audit", "--customer", "c-77", env=env)
        assert "customer.erase" in confirmed.stdout
        assert "c-77: erased" in confirmed.stderr
        assert "no erasure recorded" in nba("audit", "--customer", "c-78", env=env).stderr
    finally:
        keyed.kill_all()
    # killed with -9: its var/redis/url stays behind, naming a port that is no one's (or someone else's)
    assert (tmp_path / "c" / "var" / "redis" / "url").exists()
    after = nba("keys", "list", env=env)
    assert after.returncode == 0, after.stderr
    assert "ops" in after.stdout


def test_a_key_revoked_through_one_server_is_refused_by_another(tmp_path: Path) -> None:
    shared = RedisServer(tmp_path / "redis", persist=False)
    url = shared.start()
    env = {"NBA_REDIS_URL": url}
    servers: list[Serve] = []
    try:
        a = Serve(tmp_path / "a", env=env, name="a")
        servers.append(a)
        b = Serve(tmp_path / "b", env=env, name="b")
        servers.append(b)
        a.wait_ready()
        b.wait_ready()
        made = nba("keys", "create", "--name", "web shop", "--role", "channel", "--channel", "web", env=env)
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip()
        decide = {"customer_id": "c-1", "channel": "web"}
        # the new key closes both open servers within about a second
        wait_for(lambda: call(b.url("/v1/decide"), decide)[0] == 401, 30, "server b requiring keys", b.log)
        assert call(a.url("/v1/decide"), decide, key=key)[0] == 200
        assert call(b.url("/v1/decide"), decide, key=key)[0] == 200
        key_id = key.split("_")[1]
        admin = nba("keys", "create", "--name", "admin", "--role", "admin", env=env).stdout.strip()
        wait_for(lambda: call(a.url("/v1/keys"), key=admin)[0] == 200, 30, "the admin key on a", a.log)
        revoked = time.monotonic()
        status, _ = call(a.url(f"/v1/keys/{key_id}"), method="DELETE", key=admin)
        assert status == 204
        assert call(a.url("/v1/decide"), decide, key=key)[0] == 401  # at once where it was revoked
        took = wait_for(lambda: call(b.url("/v1/decide"), decide, key=key)[0] == 401, 30, "revocation on b", b.log)
        print(f"revoked on a, refused by b after {time.monotonic() - revoked:.2f} s (polled {took:.2f} s)")
        assert "never" not in nba("keys", "list", env=env).stdout.split("admin")[0]  # the web key was used
        # a browser key: its signing secret on the second line; `nba keys token` signs as a shop's server would
        browser = nba(
            "keys",
            "create",
            "--name",
            "shop",
            "--role",
            "channel",
            "--channel",
            "web",
            "--origin",
            "https://shop.example",
            env=env,
        )
        browser_key, signing = browser.stdout.split()
        assert signing not in nba("keys", "list", env=env).stdout
        token = nba("keys", "token", browser_key.split("_")[1], "c-1", "--ttl", "600", env=env).stdout.strip()
        assert token.startswith("c-1.")
        wait_for(
            lambda: call(a.url("/v1/decide"), decide, key=browser_key, headers={"Nba-Customer-Token": token})[0] == 200,
            30,
            "the browser key with a token",
            a.log,
        )
        assert (
            call(
                a.url("/v1/decide"),
                {**decide, "customer_id": "c-2"},
                key=browser_key,
                headers={"Nba-Customer-Token": token},
            )[0]
            == 403
        )
    finally:
        for server in servers:
            server.kill_all()
        shared.stop()


def test_the_embedded_redis_has_a_password_and_a_memory_policy_and_logs_mask_it(tmp_path: Path) -> None:
    server = Serve(tmp_path, env={"NBA_REDIS_MAXMEMORY": "256mb"})
    try:
        server.wait_ready()
        url = server.redis_url()
        password = (tmp_path / "var" / "redis" / "password").read_text().strip()
        assert len(password) >= 32
        assert f":{password}@" in url
        assert (tmp_path / "var" / "redis" / "password").stat().st_mode & 0o077 == 0
        assert (tmp_path / "var" / "redis" / "url").stat().st_mode & 0o077 == 0
        without = redis_sync.Redis.from_url(url.replace(f":{password}@", ""))
        with pytest.raises(redis_sync.AuthenticationError):
            without.ping()
        with redis_sync.Redis.from_url(url) as client:
            assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}
            assert client.config_get("maxmemory") == {"maxmemory": str(256 * 1024 * 1024)}
        assert password not in server.log.read_text()
        assert "cmdline" not in password  # the password is not on redis-server's command line:
        ps = Path("/proc").glob("[0-9]*/cmdline")
        assert not any(password.encode() in p.read_bytes() for p in ps if p.exists())
    finally:
        server.kill_all()
    bad = nba("serve", env={"NBA_REDIS_URL": "redis:/:hunter2-secret@somewhere", "NBA_DATA_DIR": str(tmp_path / "x")})
    assert bad.returncode == 2
    assert "hunter2" not in bad.stderr + bad.stdout
    assert "***" in bad.stderr


def test_fsync_durability_puts_every_write_on_disk_before_the_answer(tmp_path: Path) -> None:
    server = Serve(tmp_path / "own", env={"NBA_DURABILITY": "fsync"})
    try:
        server.wait_ready()
        with redis_sync.Redis.from_url(server.redis_url()) as client:
            assert client.config_get("appendfsync") == {"appendfsync": "always"}
    finally:
        server.kill_all()
    # someone else's Redis must be configured so: refused with the reason, not silently weaker
    other = RedisServer(tmp_path / "other", persist=False)
    url = other.start()
    try:
        refused = nba("serve", env={"NBA_REDIS_URL": url, "NBA_DURABILITY": "fsync", "NBA_PORT": str(free_port())})
        assert refused.returncode == 2
        assert "appendonly no, appendfsync everysec" in refused.stderr
    finally:
        other.stop()
