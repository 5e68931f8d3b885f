"""Redis over TLS, against a real TLS redis-server: the URL's TLS settings reach every connection,
the pipelined hot path included (it once verified against the system's CAs whatever the URL said)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nba.app import redis_client
from nba.runtime.embedded_redis import RedisServer, free_port
from nba.store import keys
from tests.api.helpers import CROSSSELL_MOBILE, Client, decide, put_customer, send_events
from tests.conftest import AppFactory

TLS = Path(__file__).resolve().parent.parent / "tls"


@pytest.fixture(scope="module")
def tls_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    server = RedisServer(
        tmp_path_factory.mktemp("redis-tls"),
        persist=False,
        extra=(
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(TLS / "server.crt"),
            "--tls-key-file",
            str(TLS / "server.key"),
            "--tls-ca-cert-file",
            str(TLS / "ca.crt"),
            "--tls-auth-clients",
            "no",
        ),
    )
    server.start()
    yield port
    server.stop()


@pytest.mark.parametrize(
    "query", [f"ssl_ca_certs={TLS / 'ca.crt'}", "ssl_cert_reqs=none"], ids=["private-ca", "unverified"]
)
async def test_decisions_and_events_go_over_tls_with_the_urls_settings(
    make_client: AppFactory, tls_port: int, query: str
) -> None:
    url = f"rediss://127.0.0.1:{tls_port}/0?{query}"
    client: Client = await make_client(url=url)
    await put_customer(client, "c-tls", CROSSSELL_MOBILE)  # redis-py's own connections
    d = await decide(client, "c-tls")  # the pipelined connection: a failure there is a degraded answer
    assert d["degraded"] is False
    assert d["actions"]
    body = await send_events(
        client,
        [
            {
                "event_id": f"tls-{query[:8]}",
                "type": "impression",
                "customer_id": "c-tls",
                "action_id": d["actions"][0]["action_id"],
                "decision_id": d["decision_id"],
                "channel": "web",
            }
        ],
    )
    assert body == {
        "accepted": 1,
        "duplicates": 0,
        "credited": 1,
        "unattributed": 0,
        "erased": 0,
        "unknown_customer": 0,
    }
    direct = redis_client(url, 5.0)
    try:  # what the hot path wrote is there, read back over an ordinary redis-py connection
        assert await direct.exists(keys.decision("c-tls", d["decision_id"])) == 1
        assert await direct.xlen(keys.LEARN_INBOX) >= 1
    finally:
        await direct.aclose()
