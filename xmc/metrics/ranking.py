"""Ranking metrics for extreme multi-label classification.

Conventions follow the Extreme Classification Repository's reference code
(pyxclib, ``xclib/evaluation/xc_metrics.py``) so numbers are comparable with
published tables:

* every document counts in the average, including documents without any true
  label (they score 0 on P@k, nDCG@k and R@k);
* P@k divides the hits among the top k by k, even when fewer than k labels are
  predicted (missing predictions are misses);
* nDCG@k divides DCG@k by the ideal DCG of a document with min(k, #true)
  relevant labels;
* PSP@k and PSnDCG@k (Jain, Prabhu, Varma, KDD 2016) weigh each hit by the
  label's inverse propensity and are normalised **at the data-set level**: the
  mean propensity-scored value of the predictions divided by the mean value of
  the best achievable predictions (each document's true labels ranked by
  inverse propensity). This is pyxclib's ``psprecision`` / ``psndcg``
  normalisation; it is *not* the mean of per-document ratios.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional

import numpy as np
import scipy.sparse as sp

from xmc.metrics._inputs import MatrixLike, Predictions, _check_k, as_topk, as_truth, segment_topk


STANDARD_KS = (1, 3, 5)


def report_cutoffs(k: int) -> List[int]:
    """The cut-offs reported for rankings of ``k`` labels: 1, 3 and 5 up to ``k``, and ``k`` itself."""
    k = _check_k(k)
    return [x for x in STANDARD_KS if x < k] + [k]


def inv_propensity(Y_train: MatrixLike, A: float = 0.55, B: float = 1.5) -> np.ndarray:
    """Inverse label propensities 1/p_l of Jain et al. (2016), float64 of length L.

    With N training documents and N_l documents tagged with label l:
    C = (log N - 1)(B + 1)^A and p_l = 1 / (1 + C e^{-A log(N_l + B)}), so the
    returned weight is 1 + C (N_l + B)^(-A): rare labels weigh more. Usual
    (A, B): (0.55, 1.5) in general, (0.5, 0.4) Wikipedia, (0.6, 2.6) Amazon.
    """
    Y = as_truth(Y_train, "Y_train")
    n = Y.shape[0]
    if n == 0:
        raise ValueError("Y_train has no documents; propensities need label counts")
    counts = np.bincount(Y.indices, minlength=Y.shape[1]).astype(np.float64)
    C = (np.log(n) - 1.0) * (B + 1.0) ** A
    return 1.0 + C * np.power(counts + B, -A)


def _hits(Y: sp.csr_matrix, ids: np.ndarray) -> np.ndarray:
    """Boolean (n, k): is ids[i, j] a true label of document i."""
    n, L = Y.shape
    k = ids.shape[1]
    if Y.nnz == 0 or k == 0:
        return np.zeros(ids.shape, dtype=bool)
    # One global sorted key per (doc, label) pair lets a single searchsorted
    # answer every membership query without a per-row loop.
    truth_rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(Y.indptr))
    keys = truth_rows * L + Y.indices
    query = (np.arange(n, dtype=np.int64) * L)[:, None] + ids
    pos = np.searchsorted(keys, query.ravel())
    np.minimum(pos, keys.size - 1, out=pos)
    hit = (keys[pos] == query.ravel()).reshape(n, k)
    hit &= ids >= 0
    return hit


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(k, dtype=np.float64) + 2.0)


def _ideal_dcg(n_true: np.ndarray, k: int) -> np.ndarray:
    """DCG of a perfect ranking of min(k, n_true) relevant labels; 0 for none."""
    cum = np.concatenate(([0.0], np.cumsum(_discounts(k))))
    return cum[np.minimum(n_true, k)]


def _best_weights(Y: sp.csr_matrix, w: np.ndarray, k: int) -> np.ndarray:
    """(n, k) inverse propensities of each document's true labels, largest first, 0-padded."""
    vals = w[Y.indices]
    pos = segment_topk(Y.indptr, vals, k)
    return np.where(pos >= 0, vals[np.maximum(pos, 0)], 0.0)


class _Ranked:
    """Hit matrix and per-document quantities shared by all ranking metrics."""

    def __init__(self, Y_true, predictions: Predictions, k: int, inv_prop=None) -> None:
        self.Y = as_truth(Y_true)
        n, L = self.Y.shape
        self.k = _check_k(k)
        self.ids = as_topk(predictions, self.k, L, n)
        self.hit = _hits(self.Y, self.ids)
        self.n_true = np.diff(self.Y.indptr)
        self.w = None
        if inv_prop is not None:
            w = np.asarray(inv_prop, dtype=np.float64).ravel()
            if w.size != L:
                raise ValueError(
                    f"inv_prop has {w.size} entries but Y_true has shape {self.Y.shape} ({L} labels)"
                )
            self.w = w
            self.hit_w = np.where(self.hit, w[np.maximum(self.ids, 0)], 0.0)
            self.best_w = _best_weights(self.Y, w, self.k)

    def precision(self, k: int) -> float:
        return float(self.hit[:, :k].sum(axis=1).mean() / k) if self.hit.shape[0] else 0.0

    def recall(self, k: int) -> float:
        if not self.hit.shape[0]:
            return 0.0
        found = self.hit[:, :k].sum(axis=1)
        return float(np.mean(found / np.maximum(self.n_true, 1)))

    def r_precision(self, k: int) -> float:
        if not self.hit.shape[0]:
            return 0.0
        found = self.hit[:, :k].sum(axis=1)
        return float(np.mean(found / np.maximum(np.minimum(self.n_true, k), 1)))

    def ndcg(self, k: int) -> float:
        if not self.hit.shape[0]:
            return 0.0
        dcg = self.hit[:, :k] @ _discounts(k)
        ideal = _ideal_dcg(self.n_true, k)
        return float(np.mean(np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)))

    def psprecision(self, k: int) -> float:
        got = self.hit_w[:, :k].sum()
        best = self.best_w[:, :k].sum()
        return float(got / best) if best > 0 else 0.0

    def psndcg(self, k: int) -> float:
        ideal = _ideal_dcg(self.n_true, k)
        scale = np.divide(1.0, ideal, out=np.zeros_like(ideal), where=ideal > 0)
        disc = _discounts(k)
        got = ((self.hit_w[:, :k] @ disc) * scale).sum()
        best = ((self.best_w[:, :k] @ disc) * scale).sum()
        return float(got / best) if best > 0 else 0.0


def precision_at_k(Y_true: MatrixLike, predictions: Predictions, k: int = 5) -> float:
    """P@k: mean over documents of (# true labels among the top k) / k.

    ``predictions``: int ids (n, >=1) best first with -1 padding, an
    ``(ids, scores)`` pair (re-ranked by score), or an (n, L) score matrix
    (sparse: stored entries are the candidates; dense float).
    """
    return _Ranked(Y_true, predictions, k).precision(k)


def recall_at_k(Y_true: MatrixLike, predictions: Predictions, k: int = 5) -> float:
    """R@k: mean over documents of (# true labels among the top k) / # true labels (0 if none)."""
    return _Ranked(Y_true, predictions, k).recall(k)


def r_precision_at_k(Y_true: MatrixLike, predictions: Predictions, k: int = 5) -> float:
    """RP@k (Chalkidis et al., ACL 2019, the EURLEX57K paper's metric): mean over documents of (# true labels
    among the top k) / min(k, # true labels); 0 for a document without true labels, as P@k."""
    return _Ranked(Y_true, predictions, k).r_precision(k)


def ndcg_at_k(Y_true: MatrixLike, predictions: Predictions, k: int = 5) -> float:
    """nDCG@k with binary gains, log2(rank + 1) discount, ideal DCG over min(k, #true) labels."""
    return _Ranked(Y_true, predictions, k).ndcg(k)


def psprecision_at_k(Y_true: MatrixLike, predictions: Predictions, inv_prop: np.ndarray, k: int = 5) -> float:
    """Propensity-scored P@k, normalised as pyxclib: sum of hit weights / best achievable sum."""
    return _Ranked(Y_true, predictions, k, inv_prop).psprecision(k)


def psndcg_at_k(Y_true: MatrixLike, predictions: Predictions, inv_prop: np.ndarray, k: int = 5) -> float:
    """Propensity-scored nDCG@k, normalised as pyxclib: mean PS-nDCG / mean best PS-nDCG."""
    return _Ranked(Y_true, predictions, k, inv_prop).psndcg(k)


def one_error(Y_true: MatrixLike, predictions: Predictions) -> float:
    """Fraction of documents whose top-ranked prediction is not a true label (1 - P@1)."""
    r = _Ranked(Y_true, predictions, 1)
    return float(1.0 - r.hit[:, 0].mean()) if r.hit.shape[0] else 0.0


def evaluate(
    Y_true: MatrixLike,
    predictions: Predictions,
    ks: Iterable[int] = (1, 3, 5),
    inv_prop: Optional[np.ndarray] = None,
) -> Dict[str, float]:
    """P@k and nDCG@k for every k in ``ks`` (plus PSP@k, PSnDCG@k given ``inv_prop``).

    Keys look like "P@1", "nDCG@3", "PSP@5", "PSnDCG@5"; values are fractions in [0, 1] (the CLI prints
    them as percentages). The hit matrix is computed once for the largest k.
    """
    ks = [_check_k(k) for k in ks]
    if not ks:
        raise ValueError("ks must name at least one cut-off")
    r = _Ranked(Y_true, predictions, max(ks), inv_prop)
    out: Dict[str, float] = {}
    for k in ks:
        out[f"P@{k}"] = r.precision(k)
    for k in ks:
        out[f"nDCG@{k}"] = r.ndcg(k)
    if inv_prop is not None:
        for k in ks:
            out[f"PSP@{k}"] = r.psprecision(k)
        for k in ks:
            out[f"PSnDCG@{k}"] = r.psndcg(k)
    return out
