"""Bradley-Terry ratings fitted to win matrices, vectorised over bootstrap resamples.

The model: ``P(i beats j) = sigmoid(theta_i - theta_j)``. Given ``wins[i, j]`` (how often ``i``
beat ``j``; a tie adds half a win to each side), the maximum-likelihood ratings solve
``sum_j wins[i, j] = sum_j games[i, j] * sigmoid(theta_i - theta_j)`` for every ``i``. They are
found with the minorise-maximise iteration of Hunter ("MM algorithms for generalized
Bradley-Terry models", Ann. Statist. 2004): ``gamma_i <- W_i / sum_j games_ij / (gamma_i +
gamma_j)`` with ``gamma = exp(theta)``, which increases the likelihood at every step.

``prior`` adds that many virtual ties to every pair of policies that met, so a policy that won
every comparison still gets a finite rating (the maximum-likelihood one is infinite); 0 gives
the plain maximum-likelihood fit. Ratings are centred to mean 0 within each connected group
of policies; a policy that met no other has no rating (NaN).
"""

from __future__ import annotations

import numpy as np

MAX_ITERATIONS = 10_000
TOLERANCE = 1e-10


def fit(wins: np.ndarray, prior: float = 1.0) -> np.ndarray:
    """Bradley-Terry log-strengths (natural-log odds scale), centred to mean 0.

    Args:
        wins: ``(..., P, P)`` array: ``wins[..., i, j]`` is the (possibly fractional) number
            of times policy ``i`` beat policy ``j``; the diagonal is ignored.
        prior: Virtual ties added to every pair of policies with at least one game.

    Returns:
        ``(..., P)`` ratings; NaN for a policy with no game. The ratings of policies in
        different connected groups are not comparable (each group is centred on its own).
    """
    w = np.array(wins, dtype=np.float64)
    n = w.shape[-1]
    w[..., np.arange(n), np.arange(n)] = 0.0
    games = w + np.swapaxes(w, -1, -2)
    met = games > 0
    w = w + met * prior / 2.0
    games = games + met * prior
    played = met.any(axis=-1)
    won = w.sum(axis=-1)
    gamma = np.where(played, 1.0, np.nan)
    for _ in range(MAX_ITERATIONS):
        g = np.nan_to_num(gamma, nan=1.0)
        pair_sum = g[..., :, None] + g[..., None, :]
        denominator = (games / pair_sum).sum(axis=-1)
        updated = np.where(played, won / np.where(denominator > 0, denominator, 1.0), np.nan)
        updated = np.maximum(updated, 1e-300)
        updated = _normalised(updated)
        change = np.nanmax(np.abs(np.log(updated) - np.log(_normalised(g))), initial=0.0)
        gamma = updated
        if change < TOLERANCE:
            break
    return _centred(np.log(gamma), games > 0)


def _normalised(gamma: np.ndarray) -> np.ndarray:
    """Scale every resample's strengths to geometric mean 1 (the fit is scale-free)."""
    log = np.log(gamma)
    finite = np.isfinite(log)
    mean = np.where(finite, log, 0.0).sum(axis=-1) / np.maximum(finite.sum(axis=-1), 1)
    return np.exp(log - mean[..., None])


def _centred(theta: np.ndarray, met: np.ndarray) -> np.ndarray:
    """Centre each connected group of policies to mean rating 0."""
    groups = _components(met)
    result = theta.copy()
    for label in np.unique(groups[np.isfinite(groups)]):
        member = groups == label
        values = np.where(member, theta, np.nan)
        result = np.where(member, theta - np.nanmean(values, axis=-1, keepdims=True), result)
    return result


def _components(met: np.ndarray) -> np.ndarray:
    """Label of each policy's connected group (its lowest member index); NaN if it met none."""
    n = met.shape[-1]
    reach = met | np.eye(n, dtype=bool)
    for _ in range(max(1, int(np.ceil(np.log2(max(n, 2)))) + 1)):
        reach = reach | (reach.astype(np.int64) @ reach.astype(np.int64) > 0)
    label = np.argmax(reach, axis=-1).astype(np.float64)
    return np.where(met.any(axis=-1), label, np.nan)
