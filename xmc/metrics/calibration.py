"""How well scores read as probabilities, on the top-k predictions of a ranked model.

Each (document, predicted label) pair is one event: its score is the predicted chance
that the label is true, its outcome whether it is. Labels a model did not rank are left
out, so these measure the probabilities of the labels a model proposes.
"""
from __future__ import annotations

import numpy as np

from xmc.metrics._inputs import MatrixLike, as_truth
from xmc.metrics.ranking import _hits

_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] so a confident miss costs a finite log-loss


def topk_outcomes(Y_true: MatrixLike, ids: np.ndarray, scores: np.ndarray):
    """(scores, outcomes) of every predicted pair: 1-d float64 scores and 0/1 outcomes, padding (-1) left out."""
    Y = as_truth(Y_true)
    ids = np.asarray(ids, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if ids.shape != scores.shape or ids.ndim != 2 or ids.shape[0] != Y.shape[0]:
        raise ValueError(f"ids {ids.shape} and scores {scores.shape} must be (n_docs, k) arrays of one shape, "
                         f"with n_docs = {Y.shape[0]} as in Y_true")
    predicted = ids >= 0
    return scores[predicted], _hits(Y, ids)[predicted].astype(np.float64)


def log_loss(probabilities: np.ndarray, outcomes: np.ndarray) -> float:
    """Mean negative log-likelihood of 0/1 ``outcomes`` under ``probabilities`` (natural log)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _EPS, 1 - _EPS)
    y = np.asarray(outcomes, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))) if p.size else 0.0


def expected_calibration_error(probabilities: np.ndarray, outcomes: np.ndarray, bins: int = 10) -> float:
    """ECE (Naeini et al., 2015): events binned by probability into ``bins`` equal-width bins; the mean over
    bins, weighted by their share of events, of |mean probability - fraction true|."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    y = np.asarray(outcomes, dtype=np.float64)
    if not p.size:
        return 0.0
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    gap = np.abs(np.bincount(which, weights=p, minlength=bins) - np.bincount(which, weights=y, minlength=bins))
    return float(gap.sum() / p.size)
