"""The pure parts of access control: key creation and checking, origins, rate buckets, masking."""

from __future__ import annotations

import pytest

from nba.access import apikeys, cors, customer_token
from nba.access.apikeys import KeyRequest, Keyring
from nba.access.audit import subject_hash
from nba.access.ratelimit import RateLimits, TokenBucket
from nba.access.service import is_loopback_name
from nba.errors import Forbidden, InvalidRequest, Unauthorized
from nba.settings import mask_url

NOW_MS = 1_795_435_200_000
CHANNELS = ["web", "call_center"]


def test_a_key_is_shown_once_and_kept_as_a_hash() -> None:
    record, secret = apikeys.create(KeyRequest("shop", "channel", ("web",)), CHANNELS, NOW_MS)
    assert secret.startswith(f"nba_{record.id}_")
    assert secret not in record.to_json().decode()
    assert record.hash == apikeys.digest(secret)
    assert apikeys.ApiKey.from_json(record.to_json()) == record
    other, second = apikeys.create(KeyRequest("shop", "channel", ("web",)), CHANNELS, NOW_MS)
    assert (other.id, second) != (record.id, secret)


def test_the_keyring_refuses_all_but_the_exact_key() -> None:
    record, secret = apikeys.create(KeyRequest("crm", "crm", expires="1d"), CHANNELS, NOW_MS)
    ring = Keyring({record.id: record})
    assert ring.authenticate(f"Bearer {secret}", NOW_MS) == record
    assert ring.authenticate(f"bearer  {secret} ", NOW_MS) == record
    for header in (
        None,
        "",
        "Bearer",
        f"Basic {secret}",
        f"Bearer {secret}x",
        f"Bearer {secret[:-1]}",
        "Bearer nba_x_y",
    ):
        with pytest.raises(Unauthorized):
            ring.authenticate(header, NOW_MS)
    with pytest.raises(Unauthorized, match="expired"):
        ring.authenticate(f"Bearer {secret}", NOW_MS + 86_400_000)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (KeyRequest("x", "channel"), "channels"),  # a channel key names its channels
        (KeyRequest("x", "crm", ("web",)), "channels"),
        (KeyRequest("x", "channel", ("tv",)), "channels"),
        (KeyRequest("x", "god"), "role"),
        (KeyRequest(" x", "crm"), "name"),
        (KeyRequest("x", "crm", origins=("https://a.example/x",)), "origins"),
        (KeyRequest("x", "crm", expires="-1d"), "expires"),
        (KeyRequest("x", "crm", rate=-1), "rate"),
    ],
)
def test_bad_key_requests_name_the_field(request_: KeyRequest, field: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        apikeys.create(request_, CHANNELS, NOW_MS)
    assert field in [e.field for e in err.value.errors]


@pytest.mark.parametrize(
    ("text", "origin"),
    [
        ("https://Shop.Example.com", "https://shop.example.com"),
        ("https://shop.example.com:443/", "https://shop.example.com"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("*", None),
        ("https://*.example.com", None),
        ("ftp://shop.example.com", None),
        ("https://shop.example.com/page", None),
        ("https://user@shop.example.com", None),
        ("null", None),
    ],
)
def test_origins_are_exact(text: str, origin: str | None) -> None:
    assert cors.normalise_origin(text) == origin


def test_a_bucket_admits_its_rate_and_says_when_to_come_back() -> None:
    bucket = TokenBucket(rate=2.0, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert bucket.take(100.5) == 0.0  # half a second: one more
    assert bucket.take(99.0) > 0  # a clock set back gives nothing
    limits = RateLimits(workers=4)  # each process takes its share: 8 / 4
    assert [limits.check("k", 8.0, 0.0) for _ in range(3)] == [0, 0, 1]
    assert limits.check("k", 0.0, 0.0) == 0  # 0: unlimited
    limits.forget_except(set())
    assert limits.check("k", 8.0, 0.0) == 0


def test_erasure_hashes_are_keyed() -> None:
    assert subject_hash(b"a" * 32, "c-1") == subject_hash(b"a" * 32, "c-1")
    assert subject_hash(b"a" * 32, "c-1") != subject_hash(b"b" * 32, "c-1")
    assert "c-1" not in subject_hash(b"a" * 32, "c-1")


@pytest.mark.parametrize(
    "url",
    ["redis://:s3cret@h:6379/0", "redis://user:s3cret@h", "rediss://u:p@s3cret@h/1", "redis:/:s3cret@h", "h:s3cret@x"],
)
def test_passwords_are_masked(url: str) -> None:
    assert "s3cret" not in mask_url(url)
    assert "***" in mask_url(url)


def test_urls_without_secrets_are_kept() -> None:
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert mask_url("unix:///run/redis.sock?password=s3cret&db=2") == "unix:///run/redis.sock?password=***&db=2"


def test_customer_tokens_name_one_customer_of_one_key_for_a_while() -> None:
    token = customer_token.sign("s3cret", "0123456789ab", "c.1@x", 2_000)
    customer_token.verify(token, "s3cret", "0123456789ab", {"c.1@x"}, 1_000)  # dots in ids are fine
    refusals = [
        (token, "other", "0123456789ab", {"c.1@x"}, 1_000),  # another key's secret
        (token, "s3cret", "ba9876543210", {"c.1@x"}, 1_000),  # another key
        (token, "s3cret", "0123456789ab", {"c.1@x", "c-2"}, 1_000),  # and someone else
        (token, "s3cret", "0123456789ab", {"c.1@x"}, 2_000),  # expired
        (token, "s3cret", "0123456789ab", {"c.1@x"}, 2_000 - customer_token.MAX_LIFETIME - 1),  # too long
        ("c.1@x.2000", "s3cret", "0123456789ab", {"c.1@x"}, 1_000),
        (None, "s3cret", "0123456789ab", {"c.1@x"}, 1_000),
    ]
    for args in refusals:
        with pytest.raises(Forbidden):
            customer_token.verify(*args)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:8080", True),
        ("localhost", True),
        ("LOCALHOST:80", True),
        ("[::1]:8080", True),
        ("127.5.5.5", True),
        ("app.localhost:3000", True),
        ("attacker.example", False),
        ("10.0.0.1:8080", False),
        ("127.0.0.1.attacker.example", False),
        ("", False),
    ],
)
def test_loopback_names(host: str, loopback: bool) -> None:
    assert is_loopback_name(host) is loopback
