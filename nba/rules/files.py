"""Reading rule files: safe YAML with line numbers, duplicate-key detection and typed field readers.

Marketers edit these files by hand, so every reader reports `file:line: key.path: message` and keeps
going, collecting every problem of a rule set in one pass instead of stopping at the first.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from nba.errors import RuleProblem

T = TypeVar("T")
D = TypeVar("D")

_DURATION = re.compile(r"(\d+)(s|m|h|d|w)")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_\-]{0,63}")  # fullmatch: `$` would let a final newline in
# libyaml's parser keeps the same marks (lines) and is several times faster than PyYAML's pure-Python
# one: 1,000 action files loaded in 5 s instead of 30-60 s on the benchmark VM
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Node:
    """A YAML value plus where it came from; mappings keep the line of every key."""

    __slots__ = ("line", "lines", "value")

    def __init__(self, value: Any, line: int, lines: dict[str, int] | None = None):
        self.value = value
        self.line = line
        self.lines = lines or {}


def _build(loader: Any, node: yaml.Node, file: str, path: str, problems: list[RuleProblem]) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            key_path = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str):
                problems.append(RuleProblem(file, key_path, f"keys must be text, got {key!r}", line))
                key = str(key)
            if key in out:
                problems.append(RuleProblem(file, key_path, "duplicate key (the later one would win)", line))
            out[key] = _build(loader, value_node, file, key_path, problems)
            lines[key] = line
        return Node(out, node.start_mark.line + 1, lines)
    if isinstance(node, yaml.SequenceNode):
        items = [_build(loader, n, file, f"{path}[{i}]", problems) for i, n in enumerate(node.value)]
        return Node(items, node.start_mark.line + 1)
    return Node(loader.construct_object(node, deep=True), node.start_mark.line + 1)


def load_yaml(path: Path, display: str, problems: list[RuleProblem]) -> Node | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(RuleProblem(display, "", f"cannot read: {exc}"))
        return None
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            problems.append(RuleProblem(display, "", "file is empty"))
            return None
        return _build(loader, root, display, "", problems)  # type: ignore[no-any-return]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problems.append(RuleProblem(display, "", f"not valid YAML: {getattr(exc, 'problem', exc)}", line))
        return None
    finally:
        loader.dispose()


def plain(node: Node) -> Any:
    """The value without line information (for content blocks passed through to channels)."""
    v = node.value
    if isinstance(v, dict):
        return {k: plain(n) for k, n in v.items()}
    if isinstance(v, list):
        return [plain(n) for n in v]
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    return v


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass
class Reader:
    """Typed access to one file's nodes, recording problems with file, line and key path."""

    file: str
    problems: list[RuleProblem] = field(default_factory=list)

    def problem(self, path: str, message: str, line: int | None) -> None:
        self.problems.append(RuleProblem(self.file, path, message, line))

    def mapping(
        self, node: Node, path: str, *, allowed: Iterable[str] | None = None, required: Iterable[str] = ()
    ) -> dict[str, Node] | None:
        if not isinstance(node.value, dict):
            self.problem(path, f"must be a mapping, got {_kind(node.value)}", node.line)
            return None
        m: dict[str, Node] = node.value
        if allowed is not None:
            allowed = list(allowed)
            for key in m:
                if key not in allowed:
                    self.problem(_join(path, key), "unknown key" + suggest(key, allowed), node.lines.get(key))
        for key in required:
            if key not in m:
                self.problem(_join(path, key), "is required", node.line)
        return m

    def optional(
        self,
        m: Mapping[str, Node],
        key: str,
        read: Callable[..., T | None],
        default: D,
        *,
        at: str = "",
        **options: Any,
    ) -> T | D | None:
        """`read` of the key's node (its path `at.key`, or `key` at the top), or `default` when the mapping
        has no such key: the one way an optional key is read."""
        if key not in m:
            return default
        return read(m[key], _join(at, key), **options)

    def sequence(self, node: Node, path: str) -> list[Node] | None:
        if not isinstance(node.value, list):
            self.problem(path, f"must be a list, got {_kind(node.value)}", node.line)
            return None
        return node.value

    def text(self, node: Node, path: str, *, max_len: int = 2000) -> str | None:
        if not isinstance(node.value, str):
            hint = " (quote it: YAML reads yes/no/on/off as true/false)" if isinstance(node.value, bool) else ""
            self.problem(path, f"must be text, got {_kind(node.value)}{hint}", node.line)
            return None
        if len(node.value) > max_len:
            self.problem(path, f"is longer than {max_len} characters", node.line)
            return None
        return node.value

    def ident(self, node: Node, path: str) -> str | None:
        s = self.text(node, path)
        if s is not None and not ID_PATTERN.fullmatch(s):
            self.problem(
                path, f"{s!r} is not a valid id: use 1-64 of a-z 0-9 _ -, starting with a letter or digit", node.line
            )
            return None
        return s

    def number(
        self, node: Node, path: str, *, min_value: float | None = None, max_value: float | None = None
    ) -> float | None:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, int | float):
            self.problem(path, f"must be a number, got {_kind(v)}", node.line)
            return None
        if min_value is not None and v < min_value:
            self.problem(path, f"must be >= {min_value}, got {v}", node.line)
            return None
        if max_value is not None and v > max_value:
            self.problem(path, f"must be <= {max_value}, got {v}", node.line)
            return None
        return float(v)

    def integer(self, node: Node, path: str, *, min_value: int = 0, max_value: int | None = None) -> int | None:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, int):
            self.problem(path, f"must be a whole number, got {_kind(v)}", node.line)
            return None
        if v < min_value:
            self.problem(path, f"must be >= {min_value}, got {v}", node.line)
            return None
        if max_value is not None and v > max_value:
            self.problem(path, f"must be <= {max_value}, got {v}", node.line)
            return None
        return v

    def boolean(self, node: Node, path: str) -> bool | None:
        if not isinstance(node.value, bool):
            self.problem(path, f"must be true or false, got {_kind(node.value)}", node.line)
            return None
        return node.value

    def duration(self, node: Node, path: str) -> float | None:
        """`30d`, `12h`, `2w`: seconds. Bare numbers are refused because their unit is a guess."""
        v = node.value
        m = _DURATION.fullmatch(v) if isinstance(v, str) else None
        if m is None or int(m.group(1)) == 0:
            self.problem(path, f"must be a duration like 30m, 12h, 7d or 2w, got {v!r}", node.line)
            return None
        return float(int(m.group(1)) * _DURATION_SECONDS[m.group(2)])

    def date(self, node: Node, path: str) -> dt.datetime | None:
        v = node.value
        if isinstance(v, dt.datetime):
            return v if v.tzinfo else v.replace(tzinfo=dt.UTC)
        if isinstance(v, dt.date):
            return dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC)
        if isinstance(v, str):
            try:
                parsed = dt.datetime.fromisoformat(v)
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
            except ValueError:
                pass
        self.problem(path, f"must be a date like 2026-11-01, got {v!r}", node.line)
        return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(v: Any) -> str:
    if v is None:
        return "nothing"
    if isinstance(v, bool):
        return f"{str(v).lower()} (a boolean)"
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, str):
        return f"text {v!r}"
    return f"{type(v).__name__} {v!r}"
