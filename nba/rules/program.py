"""The eligibility conditions of every action, compiled into one vectorised program.

Each distinct leaf test is evaluated once per request (segment tests by one fancy-index), then every
and/or/none node of every action at the same depth is reduced in one `np.logical_*.reduceat` call, so
the cost grows with the depth of the trees and the number of distinct tests, not with the number of
actions. decision/eligibility.py runs it with the other gates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nba.domain import BoolArray, IntArray
from nba.rules.conditions import Combine, Condition, Facts, InSegment, Leaf, evaluate_leaf

_TRUE = 0  # value slot 0 always holds True
MEMO_SIZE = 4096  # distinct leaf-value combinations remembered per rule set (1,000 actions: 4 MB)


@dataclass(frozen=True)
class _Step:
    op: str  # all | any | none
    children: IntArray  # value slots, concatenated per node
    offsets: IntArray  # start of each node's children in `children`
    out: IntArray  # value slot of each node


@dataclass(frozen=True)
class Program:
    n_slots: int
    segment_slots: IntArray  # value slots of in_segment leaves
    segment_index: IntArray  # ... and the segment each one tests
    other_leaves: tuple[tuple[int, Leaf], ...]  # (slot, leaf) for profile/context/date tests
    steps: tuple[_Step, ...]  # in dependency order
    roots: IntArray  # value slot of each action's condition
    # leaf values -> result: customers share few combinations of leaf values, and with 1,000 actions the
    # and/or reductions cost more than the lookup
    _memo: dict[bytes, BoolArray] = field(default_factory=dict, compare=False, repr=False)

    def run(self, segment_mask: BoolArray, facts: Facts) -> BoolArray:
        v = np.zeros(self.n_slots, dtype=bool)
        v[_TRUE] = True
        v[self.segment_slots] = segment_mask[self.segment_index]
        for slot, leaf in self.other_leaves:
            v[slot] = evaluate_leaf(leaf, facts)
        key = np.packbits(v).tobytes()
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        for step in self.steps:
            gathered = v[step.children]
            if step.op == "all":
                v[step.out] = np.logical_and.reduceat(gathered, step.offsets)
            elif step.op == "any":
                v[step.out] = np.logical_or.reduceat(gathered, step.offsets)
            else:
                v[step.out] = ~np.logical_or.reduceat(gathered, step.offsets)
        result: BoolArray = v[self.roots]
        result.flags.writeable = False  # shared by every later customer with these leaf values
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()
        self._memo[key] = result
        return result


def compile_program(conditions: Sequence[Condition], segment_names: Sequence[str]) -> Program:
    seg_pos = {name: i for i, name in enumerate(segment_names)}
    slots: dict[object, int] = {}
    depth: dict[int, int] = {}
    nodes: dict[int, tuple[str, tuple[int, ...]]] = {}
    leaves: list[tuple[int, Leaf]] = []

    def visit(c: Condition) -> int:
        if isinstance(c, Combine):
            if not c.children:
                return _TRUE if c.op in ("all", "none") else visit(Combine("none", (Combine("all", ()),)))
            kids = tuple(visit(ch) for ch in c.children)
            key = (c.op, kids)
            if key not in slots:
                slot = len(slots) + 1
                slots[key] = slot
                nodes[slot] = (c.op, kids)
                depth[slot] = 1 + max(depth.get(k, 0) for k in kids)
            return slots[key]
        if c not in slots:
            slot = len(slots) + 1
            slots[c] = slot
            leaves.append((slot, c))
        return slots[c]

    roots = np.array([visit(c) for c in conditions], dtype=np.int64)
    steps: list[_Step] = []
    for d in sorted(set(depth.values())):
        for op in ("all", "any", "none"):
            group = [s for s in nodes if depth[s] == d and nodes[s][0] == op]
            if not group:
                continue
            children: list[int] = []
            offsets: list[int] = []
            for s in group:
                offsets.append(len(children))
                children.extend(nodes[s][1])
            steps.append(
                _Step(op, np.array(children, np.int64), np.array(offsets, np.int64), np.array(group, np.int64))
            )
    seg_leaves = [(s, leaf) for s, leaf in leaves if isinstance(leaf, InSegment)]
    return Program(
        n_slots=len(slots) + 1,
        segment_slots=np.array([s for s, _ in seg_leaves], np.int64),
        segment_index=np.array([seg_pos[leaf.segment] for _, leaf in seg_leaves], np.int64),
        other_leaves=tuple((s, leaf) for s, leaf in leaves if not isinstance(leaf, InSegment)),
        steps=tuple(steps),
        roots=roots,
    )
