"""`nba evaluate` from the command line: a published result reproduced, refusals and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from loadtests.offline_world import logs, make_world

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def nba(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBA_")}
    return subprocess.run(
        [sys.executable, "-m", "nba.cli", *map(str, args)], env=env, capture_output=True, text=True, timeout=300
    )


def test_the_open_bandit_dataset_result_of_obp_is_reproduced(tmp_path: Path) -> None:
    """obp's quickstart: Bernoulli Thompson sampling's placements as the candidate on the random policy's
    log of the 'all' campaign; IPS relative to the logged reward 1.198126."""
    subprocess.run([sys.executable, ROOT / "tests/fixtures/obd/obd.py", tmp_path], check=True, timeout=300)
    out = nba("evaluate", tmp_path / "log.jsonl", "--candidate", tmp_path / "bts.jsonl", "--json")
    assert out.returncode == 0, out.stderr
    report = orjson.loads(out.stdout)
    assert report["records"] == 10_000
    assert round(report["relative_to_logged"]["ips"], 4) == 1.1981
    assert report["relative_to_logged"]["ips"] == pytest.approx(1.198126, abs=1e-6)
    table = nba("evaluate", tmp_path / "log.jsonl", "--candidate", tmp_path / "bts.jsonl")
    assert "1.1981x" in table.stdout


def test_poor_overlap_is_refused_unless_forced(tmp_path: Path) -> None:
    world = make_world(5)
    records = logs(world, 400, 5)
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    rarest = world.rb.action_ids[world.pool[0]]
    cand = tmp_path / "one.jsonl"  # always one action at rank 1, whatever the customer
    cand.write_bytes(orjson.dumps({"decision_id": "*", "probabilities": {rarest: [1.0]}}) + b"\n")
    out = nba("evaluate", log, "--candidate", cand)
    assert out.returncode == 3
    assert "effective sample size" in out.stdout
    assert "not judged" in out.stderr
    forced = nba("evaluate", log, "--candidate", cand, "--force", "--json")
    assert forced.returncode == 0
    assert orjson.loads(forced.stdout)["refused"]


def test_bad_input_is_named(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"actions": []}\nnot json\n')
    cand = tmp_path / "c.jsonl"
    cand.write_text('{"decision_id": "*", "probabilities": {"a": [2]}}\n')
    out = nba("evaluate", log, "--candidate", cand)
    assert out.returncode == 2
    assert "c.jsonl:1: probabilities.a" in out.stderr
    cand.write_text('{"decision_id": "*", "probabilities": {"a": [1]}}\n')
    out = nba("evaluate", log, "--candidate", cand)
    assert out.returncode == 2
    assert "log.jsonl:2: not a JSON record" in out.stderr
