"""A rules directory as files: read and validated, fingerprinted to notice changes, and a published set
(file names and texts from Redis) written back to a temporary directory to be validated there.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from nba.errors import RuleProblem, RulesInvalid
from nba.rules.load import load_rulebook, rules_files
from nba.rules.rulebook import Rulebook


def read_rules(directory: Path) -> tuple[Rulebook, dict[str, str]]:
    """Validate a rules directory and return it with its files' text (what gets published)."""
    rulebook = load_rulebook(directory)
    files = {p.relative_to(directory).as_posix(): p.read_text(encoding="utf-8") for p in rules_files(directory)}
    return rulebook, files


def rulebook_from_files(files: Mapping[str, str]) -> Rulebook:
    """Validate a published set. Its file names come from Redis, which anyone who can write to it
    controls: a name that is not a plain relative path to a .yaml file is refused before anything is
    written, so nothing is ever written outside the temporary directory."""
    bad = [
        RuleProblem(rel, "", "not a relative path to a .yaml file inside the rules directory")
        for rel in files
        if not safe_rule_path(rel)
    ]
    if bad:
        raise RulesInvalid(bad)
    with tempfile.TemporaryDirectory(prefix="nba-rules-") as tmp:
        root = Path(tmp).resolve()
        for rel, text in files.items():
            path = (root / rel).resolve()
            if not path.is_relative_to(root):  # cannot happen after safe_rule_path; kept as the last guard
                raise RulesInvalid([RuleProblem(rel, "", "outside the rules directory")])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return load_rulebook(root)


def safe_rule_path(rel: str) -> bool:
    parts = rel.split("/")
    return (
        rel.endswith(".yaml")
        and len(rel) <= 255
        and not rel.startswith("/")
        and all(p not in ("", ".", "..") for p in parts)
        and not any(c in rel for c in "\\\0")
        and rel.isprintable()
    )


def directory_fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Cheap change detection: relative names, sizes and modification times of the files rules_files
    lists. os.scandir rather than pathlib's rglob, which cost an idle server here more CPU than all of
    its Redis polling."""
    found: list[tuple[str, int, int]] = []
    try:
        _scan(os.fspath(directory), "", found)
    except OSError:
        return ()
    return tuple(sorted(found))


def _scan(path: str, prefix: str, found: list[tuple[str, int, int]]) -> None:
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):  # as rglob, which does not follow linked directories
                if prefix or entry.name != "tests":  # rule tests do not change decisions (rules_files)
                    _scan(entry.path, f"{prefix}{entry.name}/", found)
            elif entry.name.endswith(".yaml") and entry.is_file():
                st = entry.stat()
                found.append((prefix + entry.name, st.st_size, st.st_mtime_ns))
