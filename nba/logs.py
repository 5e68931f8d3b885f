"""Log output: plain text for a terminal, or one JSON object per line (NBA_LOG_FORMAT=json) for a log
pipeline; either way every line written while a request is handled names that request.

The ids travel in context variables: aiohttp handles each request in a task of its own, so what the
middleware and the handlers set is seen by every log call made for that request and by no other.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
from contextvars import ContextVar
from typing import Any

import orjson

from nba.domain import iso_utc

FORMATS = ("text", "json")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
decision_id: ContextVar[str | None] = ContextVar("decision_id", default=None)
key_id: ContextVar[str | None] = ContextVar("key_id", default=None)
_CONTEXT = (("request_id", request_id), ("decision_id", decision_id), ("key_id", key_id))

# a caller's id is echoed in headers and logs: short, and nothing that could forge a log line or header
_CALLER_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

ACCESS_LOGGER = "nba.access_log"

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # all but tab and newline


def take_request_id(given: str | None) -> str:
    """The caller's X-Request-Id when it is a usable one, otherwise a new one."""
    if given is not None and _CALLER_ID.fullmatch(given):
        return given
    return secrets.token_hex(8)


class ContextFilter(logging.Filter):
    """Puts the current request's ids on every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _CONTEXT:
            if not hasattr(record, name):  # an access line carries its own
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": iso_utc(record.created, "milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, _ in _CONTEXT:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(out, default=str).decode()
        except orjson.JSONEncodeError:  # a lone surrogate (an undecodable file name): escaped, not lost
            return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        # a message's further lines are indented
        safe = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", message).replace("\n", "\n    ")
        if safe != message:  # what a caller sent cannot start a line of its own that looks like ours
            record = logging.makeLogRecord({**record.__dict__, "msg": safe, "args": ()})
        line = super().format(record)
        ids = " ".join(f"{name}={v}" for name, _ in _CONTEXT if (v := getattr(record, name, None)) is not None)
        if not ids:
            return line
        head, newline, rest = line.partition("\n")  # after the message, before any traceback
        return f"{head} [{ids}]{newline}{rest}"


def configure(level: str, fmt: str = "text", access_log: bool = True) -> None:
    """The root logger's one handler, on standard error (what containers and systemd collect)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # at INFO: on with the default level, off below it or when switched off (one check per request)
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.NOTSET if access_log else logging.WARNING)
