"""Canonical sparse layout shared with the native core.

Every routine in ``xmc._core`` takes CSR matrices as (indptr int64, indices int32,
data float32) with sorted column ids. ``csr_arrays`` converts any scipy/numpy
input to that layout, copying only when the dtype or order differs.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import scipy.sparse as sp

CsrArrays = Tuple[np.ndarray, np.ndarray, np.ndarray, int]


def as_csr(matrix, dtype=np.float32) -> sp.csr_matrix:
    """Return ``matrix`` as a scipy CSR with sorted indices and the given dtype."""
    if not sp.issparse(matrix):
        matrix = sp.csr_matrix(np.asarray(matrix))
    matrix = matrix.tocsr()
    if matrix.dtype != dtype:
        matrix = matrix.astype(dtype)
    if not matrix.has_sorted_indices:
        matrix = matrix.copy()
        matrix.sort_indices()
    return matrix


def csr_arrays(matrix) -> CsrArrays:
    """(indptr int64, indices int32, data float32, n_cols) for the native core."""
    m = as_csr(matrix)
    return (
        np.ascontiguousarray(m.indptr, dtype=np.int64),
        np.ascontiguousarray(m.indices, dtype=np.int32),
        np.ascontiguousarray(m.data, dtype=np.float32),
        int(m.shape[1]),
    )


def csr_from_arrays(indptr, indices, data, shape) -> sp.csr_matrix:
    """Wrap arrays returned by the native core into a scipy CSR without copying."""
    return sp.csr_matrix((data, indices, indptr), shape=tuple(int(s) for s in shape))


def l2_normalize_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm; empty rows stay empty.

    scikit-learn's compiled row loop (norms summed in float64) scales a copy in one pass; a numpy
    version needs row-index and float64 temporaries the size of the data (gigabytes at millions
    of documents)."""
    from sklearn.preprocessing import normalize

    m = as_csr(matrix)
    return normalize(m, norm="l2", copy=m is matrix)  # as_csr's own copy, when it made one, is ours to scale
