"""The reward model of the doubly robust estimate, fitted on the logs themselves by cross-fitting.

Records fall into FOLDS folds by a hash of their decision id; the predictions for a record come from a
model fitted on the other folds, so no record's own answer (and not the candidate's beliefs either)
grades it. Per action: ridge regression of the reward on [1, rank indicators, segment-key indicators,
the logged features], shrunk towards a model pooled over all actions, which is itself shrunk towards
zero except for its intercept. An action with few slots so predicts about what every action earns at
that rank for that customer; one with many, its own. Predictions are clipped to [0, 1].
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from nba.domain import FloatArray, IntArray
from nba.evaluation.logs import Logged
from nba.learning.features import unpack

FOLDS = 5
POOLED_RIDGE = 1.0  # in slots: how strongly the pooled weights are drawn to 0
ACTION_RIDGE = 20.0  # in slots: how strongly an action's weights are drawn to the pooled ones


class RewardModel:
    def __init__(self, logs: Sequence[Logged], folds: int = FOLDS) -> None:
        self.folds = folds
        self.ranks = max((r.ranks for r in logs), default=1)
        self.keys = sorted({r.segment_key for r in logs})
        signatures = [r.feature_signature for r in logs if r.features]
        # the logged features are used when every record that has some has the same columns
        self.signature = signatures[0] if signatures and len(set(signatures)) == 1 else ""
        widths = [_width(r.features) for r in logs if r.features and r.feature_signature == self.signature]
        self.dim = max(widths, default=0) if self.signature else 0
        self.fold = np.array([_fold(r.decision_id, folds) for r in logs], np.int64)
        self.actions = sorted({s.action for r in logs for s in r.slots})
        self.action_index = {a: i for i, a in enumerate(self.actions)}
        self._key_index = {k: i for i, k in enumerate(self.keys)}
        self._z = [self._design(r) for r in logs]  # per record: (ranks, p)
        self.weights, self.pooled = self._fit(logs)  # (folds, actions, p), (folds, p)

    @property
    def width(self) -> int:
        return 1 + (self.ranks - 1) + len(self.keys) + self.dim

    def _design(self, rec: Logged) -> FloatArray:
        z = np.zeros((self.ranks, self.width))
        z[:, 0] = 1.0
        for r in range(1, self.ranks):
            z[r, r] = 1.0
        at = self.ranks
        z[:, at + self._key_index[rec.segment_key]] = 1.0
        at += len(self.keys)
        if self.dim and rec.feature_signature == self.signature:
            z[:, at : at + self.dim] = unpack(rec.features, self.dim)
        return z

    def _fit(self, logs: Sequence[Logged]) -> tuple[FloatArray, FloatArray]:
        p = self.width
        rows: list[FloatArray] = []
        action: list[int] = []
        fold: list[int] = []
        reward: list[float] = []
        for i, rec in enumerate(logs):
            for s in rec.slots:
                rows.append(self._z[i][s.rank - 1])
                action.append(self.action_index[s.action])
                fold.append(int(self.fold[i]))
                reward.append(s.reward)
        z, a, f, y = np.array(rows).reshape(-1, p), np.array(action, np.int64), np.array(fold), np.array(reward)
        weights = np.zeros((self.folds, len(self.actions), p))
        pooled = np.zeros((self.folds, p))
        penalty = np.eye(p) * POOLED_RIDGE
        penalty[0, 0] = 0.0  # the intercept: the mean reward, not drawn to 0
        for k in range(self.folds):
            train = f != k
            zt, yt, at = z[train], y[train], a[train]
            pooled[k] = _solve(zt.T @ zt + penalty + 1e-9 * np.eye(p), zt.T @ yt)
            order = np.argsort(at, kind="stable")
            bounds = np.searchsorted(at[order], np.arange(len(self.actions) + 1))
            for j in range(len(self.actions)):
                take = order[bounds[j] : bounds[j + 1]]
                za, ya = zt[take], yt[take]
                weights[k, j] = _solve(za.T @ za + ACTION_RIDGE * np.eye(p), za.T @ ya + ACTION_RIDGE * pooled[k])
        return weights, pooled

    def predict(self, record: int, actions: Sequence[str], rank: int) -> FloatArray:
        """q for each of `actions` at `rank` (1-based) of logged record `record`, from its held-out fold."""
        k = int(self.fold[record])
        z = self._z[record][rank - 1]
        idx: IntArray = np.array([self.action_index.get(a, -1) for a in actions], np.int64)
        w = np.where((idx >= 0)[:, None], self.weights[k][np.maximum(idx, 0)], self.pooled[k])
        out: FloatArray = np.clip(w @ z, 0.0, 1.0).astype(np.float64)
        return out


def _solve(a: FloatArray, b: FloatArray) -> FloatArray:
    out: FloatArray = np.asarray(np.linalg.solve(a, b), np.float64)
    return out


def _width(packed: str) -> int:
    """The highest column index named in a packed feature vector, plus one."""
    return max((int(item.partition(":")[0]) for item in packed.split(",") if item), default=-1) + 1


def _fold(decision_id: str, folds: int) -> int:
    digest = hashlib.blake2b(decision_id.encode(), digest_size=8, person=b"nba-fold").digest()
    return int.from_bytes(digest, "big") % folds
