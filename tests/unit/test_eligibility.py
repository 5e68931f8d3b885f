"""The vectorised eligibility program agrees with the plain evaluator on random condition trees."""

from __future__ import annotations

import numpy as np
import pytest

from nba.decision.eligibility import eligible
from nba.rules.conditions import Combine, Condition, Facts, FieldTest, InSegment, check_value, evaluate
from nba.rules.program import compile_program

SEGMENTS = [f"s{i}" for i in range(8)]


def _tree(rng: np.random.Generator, depth: int) -> Condition:
    if depth == 0 or rng.random() < 0.3:
        if rng.random() < 0.7:
            return InSegment(SEGMENTS[int(rng.integers(len(SEGMENTS)))])
        return FieldTest("profile", ("x",), "gt", float(rng.integers(0, 10)))
    op = ("all", "any", "none")[int(rng.integers(3))]
    return Combine(op, tuple(_tree(rng, depth - 1) for _ in range(int(rng.integers(1, 4)))))  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(20))
def test_program_matches_plain_evaluation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    conditions = [_tree(rng, 4) for _ in range(60)] + [Combine("all", ())]
    program = compile_program(conditions, SEGMENTS)
    for _ in range(20):
        member = {s for s in SEGMENTS if rng.random() < 0.5}
        facts = Facts({"x": float(rng.integers(0, 10))}, {}, member, 0.0)
        mask = np.array([s in member for s in SEGMENTS])
        expected = [evaluate(c, facts) for c in conditions]
        assert program.run(mask, facts).tolist() == expected


def test_channel_dates_and_weight_filter() -> None:
    program = compile_program([Combine("all", ())] * 4, [])
    facts = Facts({}, {}, set(), now=100.0)
    result = eligible(
        program,
        np.zeros(0, bool),
        facts,
        channel_ok=np.array([True, False, True, True]),
        active_from=np.array([0.0, 0.0, 100.0, 0.0]),
        active_until=np.array([1e9, 1e9, 1e9, 100.0]),
        weight=np.array([1.0, 1.0, 1.0, 1.0]),
    )
    assert result.tolist() == [True, False, True, False]  # from is inclusive, until exclusive
    paused = eligible(
        program,
        np.zeros(0, bool),
        facts,
        np.ones(4, bool),
        np.zeros(4),
        np.full(4, 1e9),
        np.array([1.0, 0.0, 1.0, 1.0]),
    )
    assert paused.tolist() == [True, False, True, True]


@pytest.mark.parametrize(
    ("op", "value", "operand", "expected"),
    [
        ("eq", 1, 1, True),
        ("eq", None, 1, False),
        ("ne", None, 1, True),
        ("ne", 2, 1, True),
        ("gt", 5, 4.0, True),
        ("gt", 4, 4.0, False),
        ("gte", 4, 4.0, True),
        ("lt", "3", 4.0, False),
        ("lte", True, 4.0, False),
        ("in", "a", ("a", "b"), True),
        ("not_in", None, ("a",), True),
        ("contains", ["mobile"], "mobile", True),
        ("contains", "mobile", "mobile", False),
        ("exists", None, False, True),
        ("exists", 0, True, True),
        ("exists", None, True, False),
    ],
)
def test_operator_semantics(op: str, value: object, operand: object, expected: bool) -> None:
    assert check_value(op, value, operand) is expected  # type: ignore[arg-type]


def test_results_are_remembered_per_leaf_values_and_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    conditions: list[Condition] = [
        InSegment("s0"),
        FieldTest("profile", ("x",), "gt", 5.0),
        Combine("any", (InSegment("s1"), FieldTest("profile", ("x",), "gt", 5.0))),
    ]
    program = compile_program(conditions, SEGMENTS)
    seg = np.array([True] + [False] * 7)
    first = program.run(seg, Facts({"x": 9}, {}, {"s0"}, 0.0))
    assert first.tolist() == [True, True, True]
    assert program.run(seg, Facts({"x": 9}, {}, {"s0"}, 0.0)) is first  # same leaf values: remembered
    assert not first.flags.writeable  # shared, so nobody may change it
    assert program.run(seg, Facts({"x": 1}, {}, {"s0"}, 0.0)).tolist() == [True, False, False]
    monkeypatch.setattr("nba.rules.program.MEMO_SIZE", 2)
    program.run(seg, Facts({"x": 7}, {}, {"s0"}, 0.0))
    assert len(program._memo) <= 2
