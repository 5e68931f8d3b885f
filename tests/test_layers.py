"""The import contract: dependencies point one way, from the transport down to the rules and the store.

A module may import from its own layer and the layers below it, never from a layer above. Within the
lowest layers, the rules and the store do not know each other. Checked over the source with `ast`
(imports inside functions and under TYPE_CHECKING count too), so a violation fails `make test`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

NBA = Path(__file__).resolve().parent.parent / "nba"

# lowest first; a module's layer is that of its longest matching prefix
LAYERS: list[tuple[str, ...]] = [
    ("nba.domain", "nba.errors", "nba.settings", "nba.metrics", "nba.concurrency", "nba"),
    ("nba.rules",),
    ("nba.store",),
    ("nba.learning",),
    ("nba.live",),
    ("nba.decision",),
    ("nba.evaluation", "nba.customers", "nba.access", "nba.outbound"),
    ("nba.runtime",),
    ("nba.http", "nba.board"),
    ("nba.app", "nba.cli"),
]
# packages of one layer that must not import each other
INDEPENDENT = [
    ("nba.evaluation", "nba.customers"),
    ("nba.access", "nba.customers"),
    ("nba.access", "nba.evaluation"),
    ("nba.outbound", "nba.customers"),
    ("nba.outbound", "nba.access"),
    ("nba.outbound", "nba.evaluation"),
]
# the rules and the store are separate layers only to keep them apart: neither imports the other
APART = [("nba.rules", "nba.store"), ("nba.store", "nba.rules")]


def _module(path: Path) -> str:
    parts = path.relative_to(NBA.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _prefix(name: str, prefixes: tuple[str, ...]) -> str | None:
    found = [p for p in prefixes if name == p or name.startswith(p + ".")]
    return max(found, key=len) if found else None


def layer(name: str) -> int:
    best = max(
        ((len(p), i) for i, group in enumerate(LAYERS) for p in group if name == p or name.startswith(p + ".")),
        default=(0, -1),
    )
    return best[1]


def _target(base: str, name: str) -> str:
    """`from nba.decision import segments` imports the module nba.decision.segments; `from nba.store.redis
    import Store` imports nba.store.redis."""
    candidate = NBA.parent / f"{base}.{name}".replace(".", "/")
    return f"{base}.{name}" if candidate.with_suffix(".py").exists() or candidate.is_dir() else base


def imports() -> list[tuple[str, str]]:
    """(importing module, imported nba module) for every import in nba/ (nba uses no relative imports)."""
    out = []
    for path in sorted(NBA.rglob("*.py")):
        mod = _module(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                out += [(mod, a.name) for a in node.names if a.name.startswith("nba")]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}: a relative import"
                if (node.module or "").startswith("nba"):
                    out += [(mod, _target(node.module or "", a.name)) for a in node.names]
    return out


def test_every_module_has_a_layer() -> None:
    assert [m for m, _ in imports() if layer(m) < 0] == []


def test_dependencies_point_down() -> None:
    upward = [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})" for m, t in imports() if layer(t) > layer(m)]
    assert upward == []


@pytest.mark.parametrize(("a", "b"), INDEPENDENT + APART)
def test_separate_packages_do_not_import_each_other(a: str, b: str) -> None:
    crossing = [f"{m} imports {t}" for m, t in imports() if _prefix(m, (a,)) and _prefix(t, (b,))]
    assert crossing == []
