"""Set-based metrics on binary predictions: F1, Hamming loss, subset accuracy.

Binary predictions are an (n, L) matrix (sparse or dense, any non-zero means
"predicted"); ``binarize_topk`` and ``binarize_threshold`` make one from ranked
predictions or scores. The definitions match scikit-learn's
``f1_score(average="micro"/"macro")``, ``hamming_loss`` and ``accuracy_score``
on multilabel indicator matrices.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import scipy.sparse as sp

from xmc.metrics._inputs import MatrixLike, _check_ids, as_truth


def binarize_topk(ids: np.ndarray, n_labels: int) -> sp.csr_matrix:
    """Binary CSR float32 (n, n_labels) with a 1 at every predicted id (-1 padding is skipped)."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"top-k ids must be a 2-D (n_docs, k) array, got shape {ids.shape}")
    ids = _check_ids(ids, int(n_labels), ids.shape[0])
    n = ids.shape[0]
    valid = ids >= 0
    return _csr_from_rows(
        np.repeat(np.arange(n, dtype=np.int64), ids.shape[1])[valid.ravel()], ids[valid], (n, int(n_labels))
    )


def _csr_from_rows(rows: np.ndarray, cols: np.ndarray, shape) -> sp.csr_matrix:
    """Binary CSR from (row, col) pairs already grouped by row; sorts columns within rows."""
    order = np.lexsort((cols, rows))
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    indices = cols[order].astype(np.int32)
    return sp.csr_matrix((np.ones(indices.size, dtype=np.float32), indices, indptr), shape=shape)


def binarize_threshold(scores: MatrixLike, t: float) -> sp.csr_matrix:
    """Binary CSR float32: 1 where score >= t.

    For a sparse score matrix only stored entries can pass (an unstored entry is
    "not predicted", even when t <= 0); a dense float array is tested entry-wise.
    """
    if sp.issparse(scores):
        S = sp.csr_matrix(scores)
        if not S.has_canonical_format:
            S = S.copy()
            S.sum_duplicates()
        keep = S.data >= t
        rows = np.repeat(np.arange(S.shape[0], dtype=np.int64), np.diff(S.indptr))
        return _csr_from_rows(rows[keep], S.indices[keep], S.shape)
    arr = np.asarray(scores)
    if arr.ndim != 2:
        raise ValueError(f"scores must be a 2-D (n_docs, n_labels) matrix, got shape {arr.shape}")
    return sp.csr_matrix((arr >= t).astype(np.float32))


def _pair(Y_true, Y_pred) -> Tuple[sp.csr_matrix, sp.csr_matrix]:
    T = as_truth(Y_true, "Y_true")
    P = as_truth(Y_pred, "Y_pred")
    if T.shape != P.shape:
        raise ValueError(f"Y_true has shape {T.shape} but Y_pred has shape {P.shape}; they must match")
    return T, P


def _tp_matrix(T: sp.csr_matrix, P: sp.csr_matrix) -> sp.csr_matrix:
    return T.multiply(P).tocsr()


def f1_scores(Y_true: MatrixLike, Y_pred: MatrixLike, zero_division: float = 0.0) -> Tuple[float, float]:
    """(micro-F1, macro-F1) of binary predictions.

    micro = 2 TP / (2 TP + FP + FN) over all (document, label) pairs; macro is
    the unweighted mean over all L labels of each label's F1. A label that is
    neither true nor predicted anywhere has an undefined F1 and counts as
    ``zero_division`` (scikit-learn's convention; its default warns and uses 0).
    """
    T, P = _pair(Y_true, Y_pred)
    L = T.shape[1]
    tp = np.bincount(_tp_matrix(T, P).indices, minlength=L).astype(np.float64)
    n_true = np.bincount(T.indices, minlength=L).astype(np.float64)
    n_pred = np.bincount(P.indices, minlength=L).astype(np.float64)
    denom_total = n_true.sum() + n_pred.sum()
    micro = 2.0 * tp.sum() / denom_total if denom_total > 0 else float(zero_division)
    denom = n_true + n_pred
    per_label = np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1.0), float(zero_division))
    macro = float(per_label.mean()) if L else float(zero_division)
    return float(micro), macro


def hamming_loss(Y_true: MatrixLike, Y_pred: MatrixLike) -> float:
    """Fraction of (document, label) pairs predicted wrongly: (FP + FN) / (n L)."""
    T, P = _pair(Y_true, Y_pred)
    cells = T.shape[0] * T.shape[1]
    if cells == 0:
        return 0.0
    wrong = T.nnz + P.nnz - 2 * _tp_matrix(T, P).nnz
    return float(wrong / cells)


def subset_accuracy(Y_true: MatrixLike, Y_pred: MatrixLike) -> float:
    """Fraction of documents whose predicted label set equals the true set exactly."""
    T, P = _pair(Y_true, Y_pred)
    if T.shape[0] == 0:
        return 0.0
    tp = np.diff(_tp_matrix(T, P).indptr)
    exact = (tp == np.diff(T.indptr)) & (tp == np.diff(P.indptr))
    return float(exact.mean())


def set_metrics(Y_true: MatrixLike, Y_pred: MatrixLike) -> Dict[str, float]:
    """The set metrics of predicted label sets, as fractions: "micro-F1", "macro-F1", "HL" (Hamming loss) and
    "subset-acc" (subset accuracy). Macro-F1 and HL count every column of the matrices as a label."""
    micro, macro = f1_scores(Y_true, Y_pred)
    return {"micro-F1": micro, "macro-F1": macro, "HL": hamming_loss(Y_true, Y_pred),
            "subset-acc": subset_accuracy(Y_true, Y_pred)}
