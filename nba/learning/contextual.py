"""The contextual model: Bayesian linear regression of the reward on the decision's features, one
weight vector per action, each drawn towards its group's (pure numpy, no I/O).

Sufficient statistics are sums (n, b = sum x*y, G = sum x x^T per action), so the learner adds to them
and any process rebuilds the same posterior from them. Cold start is hierarchical: an action's prior
is the posterior of the *other* actions of its group (leave-one-out, so its own data is not counted
twice) widened by `prior_variance`; a new offer starts from what its group learned about which
customers accept, and its own answers take over as they come. Thompson sampling needs only the
1-D score distribution of each candidate, N(x.mu_a, x^T Sigma_a x), which costs O(k^2) per action
for the k non-zero features of the decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nba.domain import FloatArray, IntArray

# Variance of every weight of a group with no data: a feature moves acceptance by about +-0.5 at most.
GROUP_PRIOR_VARIANCE = 0.25


@dataclass(frozen=True)
class ContextualStats:
    """Per action (rulebook order): examples n, b = sum x*reward, G = sum x x^T."""

    n: FloatArray  # (A,)
    b: FloatArray  # (A, d)
    gram: FloatArray  # (A, d, d)

    @staticmethod
    def zeros(actions: int, dim: int) -> ContextualStats:
        return ContextualStats(np.zeros(actions), np.zeros((actions, dim)), np.zeros((actions, dim, dim)))

    @staticmethod
    def from_rows(action_ids: Sequence[str], dim: int, rows: Mapping[str, FloatArray]) -> ContextualStats:
        """`rows[action_id]` = flat [n, b..., G...] as stored; rows of actions no longer in the rules, or
        of another width (the features changed), are ignored."""
        stats = ContextualStats.zeros(len(action_ids), dim)
        width = 1 + dim + dim * dim
        for i, a in enumerate(action_ids):
            row = rows.get(a)
            if row is not None and row.shape[0] == width:
                stats.n[i] = row[0]
                stats.b[i] = row[1 : 1 + dim]
                stats.gram[i] = row[1 + dim :].reshape(dim, dim)
        return stats

    def row(self, i: int) -> FloatArray:
        out: FloatArray = np.concatenate([[self.n[i]], self.b[i], self.gram[i].ravel()])
        return out


def accumulate(
    dim: int, actions: IntArray, x: FloatArray, trials: FloatArray, rewards: FloatArray, n_actions: int
) -> ContextualStats:
    """The statistics of a batch of examples: row j is action actions[j] shown with features x[j],
    counting trials[j] (0 or 1) new trials and rewards[j] more reward."""
    out = ContextualStats.zeros(n_actions, dim)
    np.add.at(out.n, actions, trials)
    np.add.at(out.b, actions, x * rewards[:, None])
    np.add.at(out.gram, actions, np.einsum("ni,nj->nij", x, x) * trials[:, None, None])
    return out


@dataclass(frozen=True)
class ContextualModel:
    mean: FloatArray  # (A, d) posterior mean weights
    cov: FloatArray  # (A, d, d) posterior covariance
    link: str = "linear"

    @staticmethod
    def build(
        stats: ContextualStats,
        group_of: IntArray,
        n_groups: int,
        prior_mean: FloatArray,
        prior_variance: float,
        noise_variance: float,
    ) -> ContextualModel:
        """`prior_mean` per action: the acceptance rate the rules expect (the intercept's prior)."""
        a, d = stats.b.shape
        eye = np.eye(d)
        if a == 0:
            return ContextualModel(np.zeros((0, d)), np.zeros((0, d, d)))
        group_gram = np.zeros((n_groups, d, d))
        group_b = np.zeros((n_groups, d))
        np.add.at(group_gram, group_of, stats.gram)
        np.add.at(group_b, group_of, stats.b)
        # the group without this action: its weights are this action's prior
        loo_gram = group_gram[group_of] - stats.gram
        loo_b = group_b[group_of] - stats.b
        m0 = np.zeros((a, d))
        m0[:, 0] = prior_mean
        g_prec = eye / GROUP_PRIOR_VARIANCE + loo_gram / noise_variance
        g_cov = np.linalg.inv(g_prec)
        g_mean = np.einsum("aij,aj->ai", g_cov, m0 / GROUP_PRIOR_VARIANCE + loo_b / noise_variance)
        prior_prec = np.linalg.inv(g_cov + prior_variance * eye)
        prec = prior_prec + stats.gram / noise_variance
        cov = np.linalg.inv(prec)
        mean = np.einsum("aij,aj->ai", cov, np.einsum("aij,aj->ai", prior_prec, g_mean) + stats.b / noise_variance)
        return ContextualModel(mean, 0.5 * (cov + cov.transpose(0, 2, 1)))

    def score(self, x: FloatArray, candidates: IntArray) -> tuple[FloatArray, FloatArray]:
        """Posterior mean and standard deviation of x . w for each candidate action."""
        nz = np.flatnonzero(x)
        xs = x[nz]
        mean: FloatArray = self.mean[np.ix_(candidates, nz)] @ xs
        var = np.einsum("aij,i,j->a", self.cov[np.ix_(candidates, nz, nz)], xs, xs)
        return mean, np.sqrt(np.maximum(var, 0.0))
