"""Faults under load: the embedded Redis killed (kill -9) while events arrive. With NBA_DURABILITY=fsync
every event answered 202 is in Redis afterwards, and the server serves normally again soon after Redis
is back. (With the default, memory, Redis may hold acknowledged writes back from its file for up to 2 s
while a background fsync lags on a busy disk, and a kill -9 then loses them: one run of this test on a
quiet machine lost one batch of 20 that way.)"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import redis

from nba.store import history, keys
from tests.serving import Serve, call, wait_for

pytestmark = pytest.mark.slow

SEND_SECONDS = 8.0
KILL_AFTER = 2.0
BATCH = 20


def test_events_answered_202_survive_a_killed_redis(tmp_path: Path) -> None:
    # no simulated past seeding in the background while Redis is killed under it
    server = Serve(tmp_path, "--demo-customers", "50", env={"NBA_DURABILITY": "fsync", "NBA_DEMO_DAYS": "0"})
    accepted: list[tuple[str, str]] = []  # (customer, event id) of every batch answered 202
    refused: list[int] = []
    first_after_kill: list[float] = []
    killed_at: list[float] = []
    try:
        server.wait_ready()

        def send() -> None:
            start = time.monotonic()
            n = 0
            while time.monotonic() - start < SEND_SECONDS:
                # many customers: a history keeps the newest 1,000 events of each
                events = [
                    {
                        "event_id": f"f-{n}-{k}",
                        "type": "impression",
                        "customer_id": f"c-f{(n * BATCH + k) % 3000}",
                        "action_id": "tv-addon",
                        "channel": "web",
                    }
                    for k in range(BATCH)
                ]
                n += 1
                try:
                    status, _ = call(server.url("/v1/events"), {"events": events}, timeout=10)
                except OSError:
                    status = 0
                if status == 202:
                    accepted.extend((e["customer_id"], e["event_id"]) for e in events)
                    if killed_at and not first_after_kill:
                        first_after_kill.append(time.monotonic() - killed_at[0])
                else:
                    refused.append(status)
                    time.sleep(0.05)  # a client backing off, as Retry-After asks

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(KILL_AFTER)
        os.kill(server.children("redis-server")[0], signal.SIGKILL)
        killed_at.append(time.monotonic())
        sender.join()

        assert first_after_kill, f"no event accepted after the kill; refused: {refused[-5:]}"
        assert first_after_kill[0] < 30.0
        assert set(refused) <= {503}, refused  # refused while Redis was away, never a 5xx of another kind
        wait_for(lambda: call(server.url("/readyz"))[0] == 200, 60, "ready again", server.log)

        def decided_from_redis() -> bool:
            # the first decisions after a restart may miss the 250 ms deadline on a loaded machine (new
            # connections, scripts loaded again): answered degraded, which is the designed behaviour
            status, decision = call(server.url("/v1/decide"), {"customer_id": "c-1001", "channel": "web"})
            assert status == 200, decision
            return decision["degraded"] is False

        recovered = wait_for(decided_from_redis, 30, "a decision answered from Redis", server.log)

        client = redis.Redis.from_url(server.redis_url())
        try:
            customers = sorted({cid for cid, _ in accepted})
            pipe = client.pipeline(transaction=False)
            for cid in customers:
                pipe.hget(keys.customer(cid), "h")
            stored = {cid: h or b"" for cid, h in zip(customers, pipe.execute(), strict=True)}
            missing = [eid for cid, eid in accepted if f"|{history.event_key(eid)}\n".encode() not in stored[cid]]
        finally:
            client.close()
        print(
            f"{len(accepted)} events answered 202, {len(refused)} batches refused (503) while Redis was "
            f"away, first 202 {first_after_kill[0]:.2f} s after the kill, a decision from Redis {recovered:.2f} s "
            "after ready"
        )
        assert missing == []
        assert len(accepted) > BATCH * 10
        assert server.stop() == 0
    finally:
        server.kill_all()
