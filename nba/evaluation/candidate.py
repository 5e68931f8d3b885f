"""Candidate policies for offline evaluation: what each would have placed where, for a logged decision.

For a record and its ranks 1..R a candidate gives the actions it could place and P[r, j], the chance that
it puts action j at rank r + 1. Two kinds:

- `Configured`: an nba configuration (a rules directory and a model): the beliefs, levers, do-nothing
  thresholds and exploration a live decision of that channel would use, with the placement probabilities
  integrated as a decision integrates them (decision/placement.py). The customer is seen as the decision
  saw them: their segments, and the features when they were logged for the candidate's feature columns.
  Contact policy is not replayed: the logged eligible set already went through it.
- `Probabilities`: any other policy, as probabilities per logged record in a JSON-lines file
  (docs/evaluation.md has the format).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np
import orjson

from nba.decision.arbitration import Situation
from nba.decision.beliefs import beliefs_for
from nba.decision.placement import placements
from nba.domain import FloatArray
from nba.evaluation.logs import Logged
from nba.learning.features import unpack
from nba.learning.snapshot import Snapshot

Placements = tuple[tuple[str, ...], FloatArray]
ANY_RECORD = "*"  # a Probabilities line for every record not listed by its own id


class Candidate(Protocol):
    name: str

    def placements(self, rec: Logged, ranks: int) -> Placements | str:
        """(action ids, P of shape (ranks, len(ids))), or why this record cannot be evaluated."""
        ...


class Configured:
    def __init__(self, snap: Snapshot, name: str) -> None:
        self.snap = snap
        self.name = name
        # the per-segment model's situations repeat across records (same channel, key and eligible set)
        self._seen: dict[Hashable, Placements] = {}

    def placements(self, rec: Logged, ranks: int) -> Placements | str:
        rb = self.snap.rulebook
        if rec.channel not in rb.channel_index:
            return "unknown_channel"
        cl = rb.learning.for_channel(rec.channel)
        space = rb.learning.features
        x = None
        if cl.model == "contextual" and space.features:
            if rec.feature_signature != space.signature:
                return "features_not_logged"
            x = unpack(rec.features, space.dim)
        member = set(rec.segments)
        keys = rb.learning.keys
        key = next((i for i, k in enumerate(keys[:-1]) if k in member), len(keys) - 1)
        if not rec.segments and rec.segment_key in keys:  # records that name only the key
            key = keys.index(rec.segment_key)
        idx = np.array([rb.action_index[a] for a in rec.eligible if a in rb.action_index], np.int64)
        cache_key = (rec.channel, key, ranks, idx.tobytes()) if x is None else None
        if cache_key is not None and cache_key in self._seen:
            return self._seen[cache_key]
        beliefs = beliefs_for(self.snap, cl.model, cl.exploration, idx, key, x)
        s = Situation(idx, beliefs, rb.lever, rb.no_action, ranks)
        p = placements(s.beliefs, s.lever, s.threshold, np.arange(s.contenders.shape[0]), ranks).T
        out = (tuple(rb.action_ids[s.contenders].tolist()), p)
        if cache_key is not None:
            self._seen[cache_key] = out
        return out


class Probabilities:
    """Lines of {"decision_id": ..., "probabilities": {action_id: [P at rank 1, P at rank 2, ...]}}; a line
    with decision_id "*" holds for every record without a line of its own (a policy that ignores context)."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self._by_id: dict[str, Placements] = {}
        with path.open("rb") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    did, placements = _probability_line(line, f"{path}:{n}")
                    if did in self._by_id:
                        raise ValueError(f"{path}:{n}: decision_id {did!r} is given twice")
                    self._by_id[did] = placements
        if not self._by_id:
            raise ValueError(f"{path}: no candidate probabilities in it")

    def placements(self, rec: Logged, ranks: int) -> Placements | str:
        found = self._by_id.get(rec.decision_id) or self._by_id.get(ANY_RECORD)
        if found is None:
            return "not_in_candidate_file"
        ids, p = found
        if p.shape[0] >= ranks:
            return ids, p[:ranks]
        return ids, np.vstack([p, np.zeros((ranks - p.shape[0], p.shape[1]))])


def _probability_line(line: bytes, where: str) -> tuple[str, Placements]:
    """One line of a probabilities file; ValueError naming the line and the field otherwise."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{where}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{where}: must be an object with decision_id and probabilities")
    did = doc.get("decision_id")
    if not isinstance(did, str) or not did:
        raise ValueError(f'{where}: decision_id: must be a non-empty string (or "*" for every record)')
    probs = doc.get("probabilities")
    if not isinstance(probs, Mapping) or not probs:
        raise ValueError(f"{where}: probabilities: must map action ids to lists of probabilities per rank")
    width = 0
    for action, per_rank in probs.items():
        if (
            not isinstance(per_rank, list)
            or not per_rank
            or not all(isinstance(v, int | float) and 0 <= v <= 1 for v in per_rank)
        ):
            raise ValueError(f"{where}: probabilities.{action}: must be a list of numbers in [0, 1], one per rank")
        width = max(width, len(per_rank))
    ids = tuple(probs)
    p = np.zeros((width, len(ids)))
    for j, per_rank in enumerate(probs.values()):
        p[: len(per_rank), j] = per_rank
    over = np.flatnonzero(p.sum(axis=1) > 1 + 1e-6)
    if over.shape[0]:
        total = float(p[over[0]].sum())
        raise ValueError(f"{where}: probabilities: rank {int(over[0]) + 1} adds up to {total:.6g}, more than 1")
    return did, (ids, p)
