"""Input normalisation shared by the metrics: truth matrices and ranked predictions.

Every ranking metric works on one canonical form: an int64 array ``ids`` of
shape (n, k), best prediction first, ``-1`` for "no prediction" (padding).
Predictions can come as that array, as ``(ids, scores)``, as a scipy sparse
matrix of scores, or as a dense float matrix of scores.
"""
from __future__ import annotations

from typing import Tuple, Union

import numpy as np
import scipy.sparse as sp

ArrayPair = Tuple[np.ndarray, np.ndarray]
Predictions = Union[np.ndarray, ArrayPair, sp.spmatrix, "sp.sparray"]
MatrixLike = Union[sp.spmatrix, "sp.sparray", np.ndarray]  # (n_docs, n_labels)


def as_truth(Y_true: MatrixLike, name: str = "Y_true") -> sp.csr_matrix:
    """Binary CSR (float32, canonical: sorted indices, no duplicates, no stored zeros)."""
    if not sp.issparse(Y_true):
        arr = np.asarray(Y_true)
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2-D (n_docs, n_labels) matrix, got shape {arr.shape}")
        Y_true = sp.csr_matrix(arr)
    Y = sp.csr_matrix(Y_true)  # new object; shares arrays with a CSR input
    if not Y.has_canonical_format:
        Y = Y.copy()  # never mutate the caller's matrix
        Y.sum_duplicates()
    if Y.nnz and not np.all(Y.data != 0):
        Y = Y.copy()
        Y.eliminate_zeros()
    if Y.dtype != np.float32 or (Y.nnz and not np.all(Y.data == 1)):
        Y = sp.csr_matrix((np.ones(Y.nnz, dtype=np.float32), Y.indices, Y.indptr), shape=Y.shape)
    return Y


def segment_topk(indptr: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Per segment ``values[indptr[i]:indptr[i+1]]``, positions of the k largest.

    Returns int64 (n, k) positions into ``values``, largest first, -1 where a
    segment has fewer than k entries. Ties keep their storage order (so for a
    CSR with sorted indices: the smaller label id first); NaN ranks last.
    Cost O(nnz * k) worst case, O(nnz) typical: meant for small k.
    """
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    n = indptr.size - 1
    out = np.full((n, k), -1, dtype=np.int64)
    if n == 0 or k == 0 or indptr[-1] == indptr[0]:
        return out
    vals = np.asarray(values)
    if vals.dtype not in (np.float32, np.float64):
        vals = vals.astype(np.float64)
    from xmc.metrics._kernels import segment_topk_kernel  # lazy: numba import is slow

    segment_topk_kernel(indptr, np.ascontiguousarray(vals), int(k), out)
    return out


def topk_from_scores(scores: MatrixLike, k: int) -> np.ndarray:
    """Top-k label ids (int64, shape (n, k), best first, -1 padded) from a score matrix.

    ``scores`` is a scipy sparse (n, L) matrix or a dense float array. For a
    sparse matrix only stored entries are candidates (a stored 0 or negative
    score still counts as a prediction); rows with fewer than k stored entries
    are padded with -1. Ties go to the smaller label id, NaN scores rank last.
    """
    k = _check_k(k)
    if sp.issparse(scores):
        S = sp.csr_matrix(scores)
        if not S.has_canonical_format:
            S = S.copy()
            S.sum_duplicates()
        pos = segment_topk(S.indptr, S.data, k)
        ids = np.where(pos >= 0, S.indices[np.maximum(pos, 0)], -1)
        return ids.astype(np.int64, copy=False)
    arr = np.asarray(scores)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f"scores must be a sparse matrix or a 2-D float array, got {arr.dtype} array of shape {arr.shape}"
        )
    n, L = arr.shape
    kk = min(k, L)
    neg = -arr.astype(np.float64, copy=False)
    if kk == L:
        order = np.argsort(neg, axis=1, kind="stable")
    else:
        # Partition (linear), then order the k candidates by (score, id). A row
        # whose kth score is tied with a value outside the partition, or holds
        # NaN there, gets a full stable sort so ties still go to the smaller id.
        part = np.argpartition(neg, kk - 1, axis=1)[:, :kk]
        sub = np.take_along_axis(neg, part, axis=1)
        kth = sub.max(axis=1)
        with np.errstate(invalid="ignore"):
            ambiguous = np.isnan(kth) | ((neg <= kth[:, None]).sum(axis=1) > kk)
        order = np.take_along_axis(part, np.lexsort((part, sub), axis=1), axis=1)
        rows = np.nonzero(ambiguous)[0]
        if rows.size:
            order[rows] = np.argsort(neg[rows], axis=1, kind="stable")[:, :kk]
    out = np.full((n, k), -1, dtype=np.int64)
    out[:, :kk] = order
    return out


def _check_k(k) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def as_topk(predictions, k: int, n_labels: int, n_docs: int) -> np.ndarray:
    """Canonical (n_docs, k) int64 ids, best first, -1 padded; validates ranges and duplicates."""
    k = _check_k(k)
    if sp.issparse(predictions) or (
        isinstance(predictions, np.ndarray) and np.issubdtype(predictions.dtype, np.floating)
    ):
        if predictions.shape != (n_docs, n_labels):
            raise ValueError(
                f"Y_true has shape {(n_docs, n_labels)} but the score matrix has shape {predictions.shape}"
            )
        return topk_from_scores(predictions, k)
    if isinstance(predictions, tuple):
        if len(predictions) != 2:
            raise ValueError("predictions given as a tuple must be (ids, scores)")
        ids, scores = (np.asarray(a) for a in predictions)
        if ids.shape != scores.shape:
            raise ValueError(f"ids have shape {ids.shape} but scores have shape {scores.shape}")
        ids = _check_ids(ids, n_labels, n_docs)
        # Re-rank by score (padding last), keeping the given order among ties.
        neg = np.where(ids >= 0, -scores.astype(np.float64), np.inf)
        neg = np.where(np.isnan(neg), np.finfo(np.float64).max, neg)
        order = np.argsort(neg, axis=1, kind="stable")
        ids = np.take_along_axis(ids, order, axis=1)
    else:
        ids = _check_ids(np.asarray(predictions), n_labels, n_docs)
    if ids.shape[1] >= k:
        return ids[:, :k]
    # Fewer predictions than k: the missing ones count as misses.
    out = np.full((n_docs, k), -1, dtype=np.int64)
    out[:, : ids.shape[1]] = ids
    return out


def _check_ids(ids: np.ndarray, n_labels: int, n_docs: int) -> np.ndarray:
    if ids.ndim != 2:
        raise ValueError(f"top-k ids must be a 2-D (n_docs, k) array, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"top-k ids must be integers (got {ids.dtype}); pass float scores as a sparse "
            "matrix or an (ids, scores) tuple"
        )
    if ids.shape[0] != n_docs:
        raise ValueError(
            f"top-k ids have shape {ids.shape} ({ids.shape[0]} documents) but Y_true has "
            f"{n_docs} documents"
        )
    ids = ids.astype(np.int64, copy=False)
    if ids.size:
        lo, hi = int(ids.min()), int(ids.max())
        if lo < -1 or hi >= n_labels:
            bad = lo if lo < -1 else hi
            raise ValueError(f"top-k ids must be in [0, {n_labels}) or -1 for padding; found {bad}")
        if ids.shape[1] > 1:
            s = np.sort(ids, axis=1)
            dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
            if dup.any():
                row = int(np.nonzero(dup.any(axis=1))[0][0])
                raise ValueError(
                    f"top-k ids repeat a label in row {row} ({ids[row].tolist()}); each label may "
                    "appear once per row"
                )
    return ids
