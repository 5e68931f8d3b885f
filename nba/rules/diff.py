"""What changed between two published rule sets, file by file, as unified diffs a marketer can read."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any


def diff_sets(before: Mapping[str, str], after: Mapping[str, str], context: int = 3) -> list[dict[str, Any]]:
    """The files that differ, in path order: added, removed or changed, each with its unified diff."""
    out: list[dict[str, Any]] = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        status = "added" if old is None else "removed" if new is None else "changed"
        lines = difflib.unified_diff(
            (old or "").splitlines(keepends=True),
            (new or "").splitlines(keepends=True),
            fromfile=f"a/{path}" if old is not None else "/dev/null",
            tofile=f"b/{path}" if new is not None else "/dev/null",
            n=context,
        )
        text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
        out.append({"path": path, "status": status, "diff": text})
    return out
