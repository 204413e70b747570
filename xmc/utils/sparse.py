"""Canonical sparse layout shared with the native core.

Every routine in ``xmc._core`` takes CSR matrices as (indptr int64, indices int32,
data float32) with sorted column ids. ``csr_arrays`` converts any scipy/numpy
input to that layout, copying only when the dtype or order differs.
"""
from __future__ import annotations

from typing import Optional, Tuple

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


def l2_normalize_rows(matrix: sp.csr_matrix, chunk_nnz: int = 1 << 22, dtype=np.float32) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm (norms summed in float64), as a CSR of ``dtype`` (:func:`as_csr`);
    empty rows stay empty.

    Works through blocks of whole rows holding about ``chunk_nnz`` values, so its temporaries stay
    a few megabytes at millions of documents. numpy alone: importing scikit-learn's ``normalize``
    cost a second on the first fit of every process."""
    m = as_csr(matrix, dtype=dtype)
    if m is matrix:
        m = m.copy()  # as_csr's own copy, when it made one, is ours to scale
    indptr, data = m.indptr, m.data
    start = 0
    while start < m.shape[0]:
        stop = int(np.searchsorted(indptr, indptr[start] + chunk_nnz, side="right")) - 1
        stop = min(max(stop, start + 1), m.shape[0])
        _scale_block(indptr[start:stop + 1], data)
        start = stop
    return m


def _scale_block(indptr: np.ndarray, data: np.ndarray) -> None:
    """Scale, in place, the rows whose bounds are ``indptr`` (a slice of the matrix's)."""
    lo, hi = int(indptr[0]), int(indptr[-1])
    if hi == lo:
        return
    block = data[lo:hi]
    bounds = np.asarray(indptr, dtype=np.int64) - lo
    counts = np.diff(bounds)
    filled = counts > 0
    norms = np.zeros(counts.size)
    # reduceat over the non-empty rows' starts: each sum runs to the next non-empty row's start
    norms[filled] = np.sqrt(np.add.reduceat(np.square(block, dtype=np.float64), bounds[:-1][filled]))
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    block *= np.repeat(scale, counts).astype(block.dtype)


def compressed_problem(names: Tuple[str, str, str], indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
                       n_outer: int, n_inner: int) -> Optional[str]:
    """Why saved arrays do not form a CSR (or CSC) matrix of ``n_outer`` rows (columns) over ``n_inner``
    columns (rows), or None. ``names`` are the three arrays' names in the file, for the message.

    A loader checks every saved sparse matrix before use: the native products and searches trust the ids,
    so a bad index reads out of bounds, and a non-finite value turns every score it touches into NaN."""
    for name, a, kinds in zip(names, (indptr, indices, data), ("iu", "iu", "f")):
        if a.ndim != 1 or a.dtype.kind not in kinds:
            what = "integers" if kinds == "iu" else "floats"
            return f"{name} must be 1-d {what}, found {a.dtype} of shape {a.shape}"
    if indptr.size != n_outer + 1 or indices.size != data.size:
        return (f"{names[0]} needs {n_outer + 1} entries and {names[1]} as many as {names[2]}; found {indptr.size}, "
                f"{indices.size} and {data.size}")
    if indptr[0] != 0 or indptr[-1] != indices.size or np.any(np.diff(indptr.astype(np.int64)) < 0):
        return f"{names[0]} must rise from 0 to {indices.size} without decreasing"
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= n_inner):
        return f"{names[1]} holds {int(indices.min())}..{int(indices.max())}, expected ids in [0, {n_inner})"
    finite = np.isfinite(data.astype(np.float32))
    if not np.all(finite):
        return f"{names[2]} holds {int(np.sum(~finite))} non-finite value(s) (as float32)"
    return None
