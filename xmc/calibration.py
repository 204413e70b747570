"""Platt scaling: a model's scores turned into probabilities, fitted on validation data.

A label's probability is ``sigmoid(a * log(score) + b)``, with ``a > 0`` and ``b`` fitted by
maximum likelihood (Platt, 1999, with the target smoothing and the Newton solver of Lin, Lin and
Weng, 2007) on the top-k predictions of validation documents: each (document, predicted label)
pair is one example, true when the label is one of the document's. The map is increasing, so
the ranking, and every ranking metric, stays the same.

The log of the score is the input because a linear PLT's score is a product of node scores
along the label's path: its log is their sum, the tree's decision value. On generated corpora
it gave a lower held-out log-loss and calibration error than the logit of the score.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

import numpy as np

METHOD = "platt"
_CLIP = 1e-30  # scores are clipped to [clip, 1] before the log: a search may return a score of 0
_MAX_STEPS = 100
_RIDGE = 1e-12  # keeps the Hessian invertible when every score is the same


def _log(scores: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(scores, dtype=np.float64), _CLIP, 1.0))


def _nll(z: np.ndarray, t: np.ndarray, a: float, b: float) -> float:
    """Negative log-likelihood of targets ``t`` under sigmoid(a z + b), without overflow."""
    m = a * z + b
    return float(np.sum(np.logaddexp(0.0, m) - t * m))


@dataclass(frozen=True)
class PlattCalibration:
    """``probability = sigmoid(a * log(score) + b)``."""

    a: float
    b: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.a) and np.isfinite(self.b) and self.a > 0):
            raise ValueError(f"Platt calibration needs a finite a > 0 and a finite b; found a={self.a!r}, "
                             f"b={self.b!r}")

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities of the same shape as ``scores`` (float32)."""
        m = self.a * _log(scores) + self.b
        return (0.5 * (1.0 + np.tanh(0.5 * m))).astype(np.float32)  # sigmoid, without overflow

    @classmethod
    def fit(cls, scores: np.ndarray, outcomes: np.ndarray) -> "PlattCalibration":
        """Fit on 1-d ``scores`` and their 0/1 ``outcomes``."""
        z = _log(np.asarray(scores, dtype=np.float64).ravel())
        y = np.asarray(outcomes, dtype=np.float64).ravel()
        if z.size != y.size:
            raise ValueError(f"{z.size} scores but {y.size} outcomes; give one outcome per score")
        positives = float(y.sum())
        negatives = y.size - positives
        if positives == 0 or negatives == 0:
            raise ValueError(f"calibration needs true and false predictions among the validation documents' "
                             f"top k; found {int(positives)} true and {int(negatives)} false: give more "
                             f"validation documents, or a larger k")
        # Platt's targets: the labels smoothed towards the prior, so a separable validation set stays finite.
        t = np.where(y > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))
        a, b = 1.0, 0.0
        value = _nll(z, t, a, b)
        for _ in range(_MAX_STEPS):
            p = 0.5 * (1.0 + np.tanh(0.5 * (a * z + b)))
            w = p * (1 - p)
            grad = np.array([np.dot(p - t, z), np.sum(p - t)])
            if np.max(np.abs(grad)) < 1e-6 * z.size:
                break
            hess = np.array([[np.dot(w, z * z) + _RIDGE, np.dot(w, z)], [np.dot(w, z), np.sum(w) + _RIDGE]])
            step = np.linalg.solve(hess, grad)
            shrink = 1.0
            while shrink > 1e-10:  # backtracking: Newton's step may overshoot far from the optimum
                trial = _nll(z, t, a - shrink * step[0], b - shrink * step[1])
                if trial < value + 1e-4 * shrink * float(grad @ -step):
                    break
                shrink /= 2
            else:
                break
            a, b, value = a - shrink * step[0], b - shrink * step[1], trial
        if not a > 0:
            raise ValueError("the validation scores do not rise with the chance that a label is true (Platt's "
                             f"slope is {a:.3g}); the model learned nothing these documents show, or the "
                             f"validation labels are not the training labels")
        return cls(float(a), float(b))

    def to_dict(self) -> Dict[str, Any]:
        return {"method": METHOD, "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, data: Any) -> "PlattCalibration":
        """From :meth:`to_dict`'s JSON; ValueError naming what is wrong."""
        if not isinstance(data, dict) or data.get("method") != METHOD:
            raise ValueError(f"expected a calibration object with method {METHOD!r}, found {data!r}"[:200])
        a, b = data.get("a"), data.get("b")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
            raise ValueError(f"calibration: 'a' and 'b' must be numbers, found {a!r} and {b!r}"[:200])
        return cls(float(a), float(b))
