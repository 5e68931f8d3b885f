"""The Redis clients of one process, from NBA_REDIS_URL: a single server or a Redis Cluster.

`redis://host:port` names one server, or any node of a cluster: the server is asked (`INFO cluster`) once
when the client is made. Several seed nodes, `redis://h1:p1,h2:p2,h3:p3`, always mean a cluster (so that
nba finds the cluster however many of them are down). redis-py's client serves the store's occasional
commands; the hot path gets its own pipelined connections (store/routing.py, store/cluster.py).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import redis
import redis.cluster
import redis.connection
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import parse_url

from nba.store.cluster import ClusterRouter, Topology
from nba.store.multiplex import Endpoint, Multiplexer, tls_context_of
from nba.store.routing import Router, SingleNode

log = logging.getLogger(__name__)

Client = Redis | RedisCluster

_HOSTS = re.compile(r"^(?P<scheme>[a-z]+://)(?P<auth>[^@/]*@)?(?P<hosts>[^/?]*)(?P<rest>.*)$", re.IGNORECASE)


def seed_nodes(url: str) -> tuple[str, list[tuple[str, int]]]:
    """The URL with only its first host, and every host:port it lists (empty for unix sockets)."""
    m = _HOSTS.match(url)
    if m is None or url.lower().startswith("unix:"):
        return url, []
    seeds = []
    for part in m["hosts"].split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{part.strip()!r} is not host:port (several seed nodes are listed as h1:p1,h2:p2)")
        seeds.append((host.strip("[]"), int(port)))
    first = f"{seeds[0][0]}:{seeds[0][1]}"
    return f"{m['scheme']}{m['auth'] or ''}{first}{m['rest']}", seeds


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
    single, seeds = seed_nodes(url)
    common: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "max_connections": 256}
    if len(seeds) <= 1 and not is_cluster(single, timeout):
        return Redis.from_url(single, health_check_interval=30, **common)
    options: dict[str, Any] = dict(parse_url(single))
    if int(options.pop("db", 0) or 0):
        raise ValueError("a Redis Cluster has only database 0: remove the /<db> from NBA_REDIS_URL")
    options.pop("host", None)
    options.pop("port", None)
    if options.pop("connection_class", None) is not None:  # rediss://
        options["ssl"] = True
    return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in seeds], **options, **common)


def sync_client(url: str, timeout: float) -> redis.Redis | redis.RedisCluster:
    """A blocking client for the command line's checks before serving (same rules as redis_client)."""
    single, seeds = seed_nodes(url)
    common: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": min(timeout, 5.0)}
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
        return SingleNode(Multiplexer.like(client.connection_pool))
    kw = dict(client.connection_kwargs)
    kw.pop("max_connections", None)
    connection_class = kw.pop("connection_class")
    tls = tls_context_of(connection_class, kw)
    password = kw.get("password")
    seeds = [
        Endpoint(host=n.host, port=int(n.port), username=kw.get("username"), password=password, tls=tls)
        for n in client.startup_nodes
    ]
    timeout = float(kw.get("socket_timeout") or 5.0)
    return ClusterRouter(Topology(seeds, timeout), timeout)
