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
    """Rows scaled to unit L2 norm; empty rows stay empty."""
    m = as_csr(matrix).copy()
    row_of_entry = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    norms = np.sqrt(np.bincount(row_of_entry, weights=m.data.astype(np.float64) ** 2, minlength=m.shape[0]))
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    m.data *= scale[row_of_entry].astype(m.dtype)
    return m
