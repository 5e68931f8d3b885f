"""The Redis clients of one process, from NBA_REDIS_URL: a single server, a Redis Cluster, or a primary
watched by Redis Sentinel.

`redis://host:port` names one server, or any node of a cluster: the server is asked (`INFO cluster`) once
when the client is made. Several seed nodes, `redis://h1:p1,h2:p2,h3:p3`, always mean a cluster (so that
nba finds the cluster however many of them are down). `redis+sentinel://h1:p1,h2:p2/<service>[/db]` names
sentinels and the service whose primary they watch (store/sentinel.py). redis-py's client serves the
store's occasional commands; the hot path gets its own pipelined connections (store/routing.py).
"""

from __future__ import annotations

import logging
import re
from typing import Any, NamedTuple
from urllib.parse import unquote

import redis
import redis.cluster
import redis.connection
import redis.sentinel
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode, ClusterPipeline
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from nba.store.cluster import ClusterRouter, Topology
from nba.store.multiplex import Endpoint, Multiplexer, tls_context_of
from nba.store.routing import Router, SingleNode
from nba.store.sentinel import Primary, SentinelRouter

log = logging.getLogger(__name__)


class Cluster(RedisCluster):
    """redis-py's cluster client, with its "no node answers" error made the RedisError it means (redis-py
    raises RedisClusterException, which is not one: nba's handlers of an unreachable Redis missed it, and
    /readyz, stats, keys and audit answered 500 while the whole cluster was down)."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            raise RedisConnectionError(f"Redis Cluster unreachable: {exc}") from exc

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        return _Pipeline(self, transaction)  # type: ignore[abstract]


class _Pipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except RedisClusterException as exc:
            raise RedisConnectionError(f"Redis Cluster unreachable: {exc}") from exc


Client = Redis | RedisCluster

_HOSTS = re.compile(r"^(?P<scheme>[a-z][a-z+]*://)(?P<auth>[^@/]*@)?(?P<hosts>[^/?]*)(?P<rest>.*)$", re.IGNORECASE)


def seed_nodes(url: str) -> tuple[str, list[tuple[str, int]]]:
    """The URL with only its first host, and every host:port it lists (port 6379 when none is given;
    IPv6 addresses in brackets); no hosts for unix sockets."""
    m = _HOSTS.match(url)
    if m is None or url.lower().startswith("unix:"):
        return url, []
    seeds = []
    for part in m["hosts"].split(","):
        found = re.fullmatch(r"\s*(\[[^\]]+\]|[^:\[\]]+)(?::(\d+))?\s*", part)
        if found is None:
            raise ValueError(f"{part.strip()!r} is not host:port (several seed nodes are listed as h1:p1,h2:p2)")
        seeds.append((found[1].strip("[]"), int(found[2] or 6379)))
    host = f"[{seeds[0][0]}]" if ":" in seeds[0][0] else seeds[0][0]
    return f"{m['scheme']}{m['auth'] or ''}{host}:{seeds[0][1]}{m['rest']}", seeds


SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")


class SentinelUrl(NamedTuple):
    sentinels: list[tuple[str, int]]
    service: str
    options: dict[str, Any]  # for the data servers: username, password, db, ssl and ssl_* settings
    sentinel_options: dict[str, Any]  # for the sentinels: their password (sentinel_password=) and TLS


def sentinel_url(url: str) -> SentinelUrl | None:
    """The parts of a `redis+sentinel://` URL; None for other URLs. ValueError when it is malformed."""
    if not url.lower().startswith(SENTINEL_SCHEMES):
        return None
    first, sentinels = seed_nodes(url)
    scheme, _, rest = first.partition("+sentinel://")
    head, _, query = rest.partition("?")
    netloc, _, path = head.partition("/")
    service, _, db = path.partition("/")
    if not service:
        raise ValueError(
            "a redis+sentinel:// URL names the service after the hosts: redis+sentinel://h1:p1,h2:p2/mymaster"
        )
    extra = [part for part in query.split("&") if part]
    sentinel_password = next((unquote(p.split("=", 1)[1]) for p in extra if p.startswith("sentinel_password=")), None)
    query = "&".join(p for p in extra if not p.startswith("sentinel_password="))
    options: dict[str, Any] = dict(parse_url(f"{scheme}://{netloc}/{db or 0}" + (f"?{query}" if query else "")))
    options.pop("host", None)
    options.pop("port", None)
    tls = options.pop("connection_class", None) is not None
    tls_options = {k: v for k, v in options.items() if k.startswith("ssl_")}
    sentinel_options: dict[str, Any] = {"password": sentinel_password, **({"ssl": True, **tls_options} if tls else {})}
    if tls:
        options["ssl"] = True
    return SentinelUrl(sentinels, service, options, sentinel_options)


def is_cluster(url: str, timeout: float) -> bool:
    """Whether the server at `url` runs in cluster mode; False when it cannot be asked now (the caller
    then treats it as one server: name several seed nodes to make a cluster certain)."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=min(timeout, 2.0))
    try:
        return bool(client.info("cluster").get("cluster_enabled"))
    except redis.AuthenticationError:
        raise
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def redis_client(url: str, timeout: float) -> Client:
    """redis-py's client for `url` (one pool per process; hiredis parses replies)."""
    common: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "max_connections": 256}
    sentinel = sentinel_url(url)
    if sentinel is not None:
        timeouts = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        manager = Sentinel(  # type: ignore[no-untyped-call]
            sentinel.sentinels, sentinel_kwargs={**timeouts, **sentinel.sentinel_options}, **common
        )
        primary: Redis = manager.master_for(sentinel.service, **sentinel.options)
        return primary
    single, seeds = seed_nodes(url)
    if len(seeds) <= 1 and not is_cluster(single, timeout):
        return Redis.from_url(single, health_check_interval=30, **common)
    options: dict[str, Any] = dict(parse_url(single))
    if int(options.pop("db", 0) or 0):
        raise ValueError("a Redis Cluster has only database 0: remove the /<db> from NBA_REDIS_URL")
    options.pop("host", None)
    options.pop("port", None)
    if options.pop("connection_class", None) is not None:  # rediss://
        options["ssl"] = True
    if options.pop("retry_on_timeout", None) is not None:
        log.warning("NBA_REDIS_URL: retry_on_timeout does not apply to a Redis Cluster (nba retries itself)")
    return Cluster(startup_nodes=[ClusterNode(h, p) for h, p in seeds], **{**common, **options})


def sync_client(url: str, timeout: float) -> redis.Redis | redis.RedisCluster:
    """A blocking client for the command line's checks before serving (same rules as redis_client)."""
    common: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": min(timeout, 5.0)}
    sentinel = sentinel_url(url)
    if sentinel is not None:
        manager = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            sentinel.sentinels, sentinel_kwargs={**common, **sentinel.sentinel_options}, **common
        )
        primary: redis.Redis = manager.master_for(sentinel.service, **sentinel.options)  # type: ignore[no-untyped-call]
        return primary
    single, seeds = seed_nodes(url)
    if len(seeds) <= 1 and not is_cluster(single, timeout):
        return redis.Redis.from_url(single, **common)
    options: dict[str, Any] = dict(redis.connection.parse_url(single))  # type: ignore[no-untyped-call]
    options.pop("db", None)
    options.pop("host", None)
    options.pop("port", None)
    if options.pop("connection_class", None) is not None:
        options["ssl"] = True
    nodes = [redis.cluster.ClusterNode(h, p) for h, p in seeds]  # type: ignore[no-untyped-call]
    return redis.RedisCluster(startup_nodes=nodes, **options, **common)


def router_for(client: Client) -> Router:
    """The pipelined path to the same server(s), with the same credentials and TLS settings."""
    if isinstance(client, Redis):
        pool = client.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            return _sentinel_router(pool)
        return SingleNode(Multiplexer.like(pool))
    kw = dict(client.connection_kwargs)
    connection_class = kw.pop("connection_class")
    tls = tls_context_of(connection_class, {k: v for k, v in kw.items() if k.startswith("ssl_")})
    password = kw.get("password")
    seeds = [
        Endpoint(host=n.host, port=int(n.port), username=kw.get("username"), password=password, tls=tls)
        for n in client.startup_nodes
    ]
    timeout = float(kw.get("socket_timeout") or 5.0)
    return ClusterRouter(Topology(seeds, timeout), timeout)


def _sentinel_router(pool: SentinelConnectionPool) -> Router:
    kw = pool.connection_kwargs
    tls_settings = {k: v for k, v in kw.items() if k.startswith("ssl_")}
    tls = tls_context_of(SSLConnection, tls_settings) if issubclass(pool.connection_class, SSLConnection) else None
    timeout = float(kw.get("socket_timeout") or 5.0)
    sentinels = []
    for s in pool.sentinel_manager.sentinels:
        skw = s.connection_pool.connection_kwargs
        sentinel_tls = tls_context_of(SSLConnection, {k: v for k, v in skw.items() if k.startswith("ssl_")})
        sentinels.append(
            Endpoint(
                host=skw.get("host", "127.0.0.1"),
                port=int(skw.get("port", 26379)),
                username=skw.get("username"),
                password=skw.get("password"),
                tls=sentinel_tls if issubclass(s.connection_pool.connection_class, SSLConnection) else None,
            )
        )
    data = Endpoint(db=int(kw.get("db", 0) or 0), username=kw.get("username"), password=kw.get("password"), tls=tls)
    return SentinelRouter(Primary(sentinels, pool.service_name, data, timeout), timeout)
