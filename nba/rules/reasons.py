"""Agent-facing reasons: rule text with `{attribute}` placeholders, checked at load, filled per decision.

    reason: "Betaalt {monthly_spend} euro per maand maar gebruikt maar {usage_gb} GB."

Only declared profile attributes may be named (a flag as `{consents.email}`); `{{` and `}}` are literal
braces. A value the customer does not have renders as `?`, so a reason never fails a decision.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from nba.rules.conditions import AttributeType, lookup
from nba.rules.files import Reader, suggest

Template = tuple[tuple[str, tuple[str, ...] | None], ...]


def compile_reason(
    text: str, attributes: Mapping[str, AttributeType], reader: Reader, path: str, line: int | None
) -> Template | None:
    parts: list[tuple[str, tuple[str, ...] | None]] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        reader.problem(path, f"unbalanced braces ({exc}); write {{{{ and }}}} for literal braces", line)
        return None
    for literal, field, spec, conversion in parsed:
        if field is None:
            parts.append((literal, None))
            continue
        if spec or conversion or not field:
            reader.problem(path, f"placeholder {{{field}}} must be a plain attribute name", line)
            return None
        keys = tuple(field.split("."))
        if keys[0] not in attributes:
            reader.problem(path, f"unknown attribute {keys[0]!r} in {{{field}}}" + suggest(keys[0], attributes), line)
            return None
        parts.append((literal, keys))
    return tuple(parts)


def render(template: Template, profile: Mapping[str, Any]) -> str:
    out: list[str] = []
    for literal, keys in template:
        out.append(literal)
        if keys is not None:
            out.append(_text(lookup(profile, keys)))
    return "".join(out)


def _text(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, bool):
        return "ja" if value else "nee"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
