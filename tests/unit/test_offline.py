"""`nba evaluate`'s replay: coverage of the candidate's true value in a simulated world
(loadtests/offline_world.py), the records it cannot use, candidates as probability files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from loadtests.offline_world import candidates, logs, make_world, true_value
from nba.evaluation.candidate import Configured, Probabilities
from nba.evaluation.logs import read_logs
from nba.evaluation.replay import render, replay, report

ESTIMATORS = ("ips", "snips", "doubly_robust")


def test_intervals_cover_the_true_value_or_the_evaluation_refuses() -> None:
    """Three candidates that differ from the logging policy, sixteen simulated worlds each: every
    estimator's 95% interval holds the candidate's true value, or the report refuses for lack of overlap.
    loadtests/offline_world.py measures 40 worlds (5-7% missed per candidate). With 48 cases a sound
    estimator misses 8 or more with a chance of about 2%, and one that covers only 80% misses fewer than
    8 with a chance of about 6%: the bound tells a broken interval from bad luck."""
    outcomes: dict[str, list[str]] = {e: [] for e in ESTIMATORS}
    for seed in range(16):
        world = make_world(seed)
        logged, _ = read_logs(logs(world, 2000, seed))
        for name, snap in candidates(world).items():
            truth = true_value(world, snap)
            rep = report(replay(logged, Configured(snap, name)))
            for e in ESTIMATORS:
                if rep["refused"]:
                    outcomes[e].append("refused")
                else:
                    outcomes[e].append("covered" if rep[e]["low_95"] <= truth <= rep[e]["high_95"] else "missed")
    for e, seen in outcomes.items():
        assert seen.count("missed") < 8, (e, seen)
        assert seen.count("covered") >= len(seen) // 2, (e, seen)  # refusing everything is no answer


def test_the_logging_policy_as_candidate_has_weights_of_one() -> None:
    world = make_world(3)
    logged, _ = read_logs(logs(world, 500, 3))
    r = replay(logged, Configured(world.logging, "itself"))
    assert np.allclose(r.slots.weight, 1.0, atol=1e-9)
    rep = report(r)
    assert rep["ips"]["value"] == pytest.approx(rep["logged"]["value"])
    assert rep["refused"] == []


def test_records_it_cannot_use_are_counted_not_guessed() -> None:
    world = make_world(1)
    good = logs(world, 3, 1)
    unusable: list[dict[str, Any]] = [
        {"channel": "web", "actions": []},
        {"channel": "web", "eligible": ["x"], "actions": [{"action_id": "x", "probability": 0}]},
        {"channel": "web", "eligible": ["x"], "actions": ["x"]},
        {**good[0], "decision_id": "fax", "channel": "fax"},
    ]
    logged, skipped = read_logs([*good, *unusable])
    assert dict(skipped) == {"no_action_shown": 1, "probability_missing_or_zero": 1, "malformed": 1}
    r = replay(logged, Configured(world.logging, "itself"))
    assert r.slots.n == 3
    assert dict(r.skipped) == {"unknown_channel": 1}


def test_control_records_count_with_their_exact_uniform_probabilities() -> None:
    world = make_world(2)
    records = logs(world, 2, 2)
    control = dict(records[0], arm="control", decision_id="ctl")
    m = len(control["eligible"])
    control["actions"] = [dict(a, probability=1 / m) for a in control["actions"]]
    control.pop("probability_kind")
    logged, _ = read_logs([*records, control])
    assert not logged[-1].monte_carlo  # a control record's probabilities are exact whatever its age
    assert logged[0].slots[0].probability < 1


def _write(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    return path


def test_a_probabilities_file_is_a_candidate(tmp_path: Path) -> None:
    world = make_world(4)
    records = logs(world, 200, 4)
    logged, _ = read_logs(records)
    first = records[0]
    # "always the first eligible action at rank 1", one line for the first record and "*" for the rest
    lines: list[dict[str, object]] = [
        {"decision_id": first["decision_id"], "probabilities": {first["eligible"][1]: [1.0]}},
        {"decision_id": "*", "probabilities": {a: [1 / len(first["eligible"])] for a in first["eligible"]}},
    ]
    cand = Probabilities(_write(tmp_path / "c.jsonl", lines))
    found = cand.placements(logged[0], 3)
    assert not isinstance(found, str)
    ids, p = found
    assert ids == (first["eligible"][1],)
    assert p.tolist() == [[1.0], [0.0], [0.0]]
    rep = report(replay(logged, cand))
    assert rep["records"] == 200
    assert "candidate: " in render(rep)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{nope", "c.jsonl:2: not JSON"),
        (b'{"probabilities": {"a": [1]}}', "c.jsonl:2: decision_id"),
        (b'{"decision_id": "d", "probabilities": {"a": [1.5]}}', "c.jsonl:2: probabilities.a"),
        (b'{"decision_id": "d", "probabilities": {"a": [0.7], "b": [0.6]}}', "rank 1 adds up to 1.3"),
        (b'{"decision_id": "x", "probabilities": {"a": [1]}}', "c.jsonl:2: decision_id 'x' is given twice"),
    ],
)
def test_a_bad_probabilities_file_names_its_line_and_field(tmp_path: Path, line: bytes, message: str) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"decision_id": "x", "probabilities": {"a": [1]}}\n' + line + b"\n")
    with pytest.raises(ValueError, match=message):
        Probabilities(path)
