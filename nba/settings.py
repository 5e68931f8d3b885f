"""Process settings from the environment: read and validated once at start-up, then frozen."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nba.logs import FORMATS


class SettingsError(ValueError):
    pass


DURABILITY = ("memory", "fsync", "replica")


# days of simulated traffic `nba serve --demo-customers` seeds (customers/demo_traffic.py)
DEFAULT_DAYS = 3
MOST_DAYS = 28  # decision records live 30 days, events older than 30 days are refused: stay inside both


@dataclass(frozen=True)
class Settings:
    redis_url: str | None  # None: start an embedded redis-server under data_dir
    rules_dir: Path
    data_dir: Path
    host: str
    port: int
    log_level: str
    redis_timeout: float  # seconds a Redis call may take before the request fails
    decide_deadline: float = 0.25  # seconds before decide answers degraded (rules only) instead of waiting
    workers: int = 1  # server processes sharing the port
    erase_rewrite: float = 300.0  # seconds within which an erasure leaves Redis's files on disk
    max_connections: int = 4096  # open HTTP connections per process (idle ones are closed to make room)
    keepalive: float = 75.0  # seconds an idle keep-alive connection stays open
    redis_maxmemory: str | None = None  # the embedded redis-server's memory limit (runtime/embedded_redis.py)
    insecure_open: bool = False  # serve without keys on a non-loopback address (access/service.py)
    # what an acknowledgement means: memory (in Redis's memory; on its own server also in the append-only
    # file within about a second), fsync (on disk before Redis answers: appendfsync always) or replica
    # (events: also on a replica of their primary, WAIT, before nba answers)
    durability: str = "memory"
    log_format: str = "text"  # text | json (nba/logs.py)
    access_log: bool = True  # a line per request at INFO (logger nba.access_log)
    demo_days: int = DEFAULT_DAYS  # with --demo-customers: days of simulated traffic (customers/demo_traffic.py)

    @staticmethod
    def from_env(env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        port = _int(e, "NBA_PORT", 8080, 1, 65535)
        timeout_ms = _int(e, "NBA_REDIS_TIMEOUT_MS", 1000, 1, 60000)
        deadline_ms = _int(e, "NBA_DECIDE_DEADLINE_MS", 250, 1, 60000)
        workers = _int(e, "NBA_WORKERS", 1, 1, 64)
        erase_rewrite = _int(e, "NBA_ERASE_REWRITE_SECONDS", 300, 10, 7 * 86400)
        max_connections = _int(e, "NBA_MAX_CONNECTIONS", 4096, 16, 1_000_000)
        keepalive = _int(e, "NBA_KEEPALIVE_SECONDS", 75, 1, 3600)
        demo_days = _int(e, "NBA_DEMO_DAYS", DEFAULT_DAYS, 0, MOST_DAYS)
        level = e.get("NBA_LOG_LEVEL", "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(f"NBA_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
        url = e.get("NBA_REDIS_URL") or None
        schemes = ("redis://", "rediss://", "unix://", "redis+sentinel://", "rediss+sentinel://")
        if url is not None and not url.startswith(schemes):
            raise SettingsError(f"NBA_REDIS_URL must start with {', '.join(schemes)}; got {mask_url(url)!r}")
        maxmemory = e.get("NBA_REDIS_MAXMEMORY") or None
        if maxmemory is not None and not re.fullmatch(r"\d+(kb|mb|gb)?", maxmemory.lower()):
            raise SettingsError(f"NBA_REDIS_MAXMEMORY must be a size like 512mb or 2gb, got {maxmemory!r}")
        durability = e.get("NBA_DURABILITY", "memory") or "memory"
        if durability not in DURABILITY:
            raise SettingsError(f"NBA_DURABILITY must be one of {', '.join(DURABILITY)}, got {durability!r}")
        log_format = e.get("NBA_LOG_FORMAT", "text") or "text"
        if log_format not in FORMATS:
            raise SettingsError(f"NBA_LOG_FORMAT must be one of {', '.join(FORMATS)}, got {log_format!r}")
        return Settings(
            redis_url=url,
            rules_dir=Path(e.get("NBA_RULES_DIR", "rules")),
            data_dir=Path(e.get("NBA_DATA_DIR", "var")),
            host=e.get("NBA_HOST", "127.0.0.1"),
            port=port,
            log_level=level,
            redis_timeout=timeout_ms / 1000.0,
            decide_deadline=deadline_ms / 1000.0,
            workers=workers,
            erase_rewrite=float(erase_rewrite),
            max_connections=max_connections,
            keepalive=float(keepalive),
            redis_maxmemory=maxmemory.lower() if maxmemory else None,
            insecure_open=_flag(e, "NBA_INSECURE_OPEN", False),
            durability=durability,
            log_format=log_format,
            access_log=_flag(e, "NBA_ACCESS_LOG", True),
            demo_days=demo_days,
        )


def mask_url(url: str) -> str:
    """A Redis URL fit for logs and messages: its password (and any query secrets) replaced by ***."""
    # everything before the last @ may be a password (also in a URL too malformed to parse)
    head, at, tail = url.rpartition("@")
    if at:
        scheme = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:/*", head)
        url = f"{scheme.group(0) if scheme else ''}***@{tail}"
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", url)


def _flag(e: Mapping[str, str], name: str, default: bool) -> bool:
    raw = e.get(name, "")
    if raw not in ("", "0", "1"):
        raise SettingsError(f"{name} must be 0 or 1, got {raw!r}")
    return default if raw == "" else raw == "1"


def _int(e: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = e.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value
