"""Customer profile attributes: typed by rules/profile.yaml, checked on every write, merged on PATCH."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from nba.errors import FieldError
from nba.rules.rulebook import Rulebook

MAX_STRING = 1000
MAX_LIST = 100
MAX_FLAGS = 50
MAX_INTEGER = 2**53  # exact in every JSON client (a larger one arrives as a float)


def check_attributes(
    rulebook: Rulebook, attributes: Mapping[str, Any], prefix: str = "attributes", allow_null: bool = False
) -> list[FieldError]:
    """Every problem of a set of attributes; `allow_null` for merge patches, where null deletes."""
    errors: list[FieldError] = []
    types, allowed = rulebook.attributes, rulebook.list_values
    for name, value in attributes.items():
        t = types.get(name)
        if t is None:
            errors.append(
                FieldError(
                    f"{prefix}.{name}",
                    "unknown attribute (declared attributes are in rules/profile.yaml: "
                    + ", ".join(sorted(rulebook.attributes))
                    + ")",
                )
            )
            continue
        if value is None:
            if not allow_null:
                errors.append(FieldError(f"{prefix}.{name}", "must not be null (leave the attribute out instead)"))
            continue
        message = _check(t, value, allowed.get(name))
        if message:
            errors.append(FieldError(f"{prefix}.{name}", message))
    return errors


def _check(t: str, v: Any, allowed: tuple[str, ...] | None) -> str | None:
    if t == "string":
        ok = isinstance(v, str) and len(v) <= MAX_STRING
        return None if ok else f"must be text of at most {MAX_STRING} characters"
    if t == "number":
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        return None if ok else "must be a number"
    if t == "integer":
        whole = isinstance(v, int) or (isinstance(v, float) and v.is_integer())
        ok = whole and not isinstance(v, bool) and abs(v) <= MAX_INTEGER
        return None if ok else f"must be a whole number of at most {MAX_INTEGER} in size"
    if t == "boolean":
        return None if isinstance(v, bool) else "must be true or false"
    if t == "date":
        if isinstance(v, str) and len(v) <= 40:
            try:
                dt.datetime.fromisoformat(v)
                return None
            except ValueError:
                pass
        return "must be an ISO 8601 date such as 2026-11-23"
    if t == "list":
        if not isinstance(v, list) or len(v) > MAX_LIST or not all(isinstance(x, str) and len(x) <= 200 for x in v):
            return f"must be a list of at most {MAX_LIST} texts"
        bad = [x for x in v if allowed and x not in allowed]
        return f"unknown value {bad[0]!r}; allowed: {', '.join(allowed or ())}" if bad else None
    if t == "flags":
        if not isinstance(v, dict) or len(v) > MAX_FLAGS:
            return f"must be an object of at most {MAX_FLAGS} true/false flags"
        bad = [k for k, x in v.items() if not isinstance(x, bool) or len(k) > 64]
        return f"flag {bad[0]!r} must be true or false" if bad else None
    return f"unsupported type {t}"  # pragma: no cover - types are validated at rules load


def normalise(rulebook: Rulebook, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Checked attributes as stored: a whole number sent as 48.0 is kept as 48."""
    types = rulebook.attributes
    out = dict(attributes)
    for name, v in attributes.items():
        if isinstance(v, float) and types.get(name) == "integer":  # a float is rare: look at types only then
            out[name] = int(v)
    return out


def merge(attributes: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7396) one level deep: null removes an attribute, flags merge per flag."""
    out = dict(attributes)
    for name, value in patch.items():
        if value is None:
            out.pop(name, None)
        elif isinstance(value, dict) and isinstance(out.get(name), dict):
            flags = {**out[name], **value}
            out[name] = {k: x for k, x in flags.items() if x is not None}
        else:
            out[name] = value
    return out
