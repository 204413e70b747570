"""Label co-occurrence graphs from training labels (LDGN's static graph), sparse throughout.

``A[i, j] = P(label i | label j)``: the documents holding both labels over those holding
label j (LDGN, section 2.2). Computed from Y^T Y, so its size is the number of co-occurring
pairs, never labels x labels: a million labels with a few per document fit in memory.

Options, as in ML-GCN (Chen et al., 2019), which LDGN's static graph follows:

- ``threshold``: drop conditional probabilities below it (rare, noisy co-occurrences);
- ``reweight``: with ``p`` given, each column's kept neighbours share weight ``p`` in
  proportion to their probabilities and the node keeps ``1 - p`` for itself, so a label
  seen with many others is not drowned by them (needs ``self_loops``);
- ``self_loops``: the diagonal (P(i | i) = 1, or ``1 - p``).

:func:`normalize_adjacency` then gives D^-1/2 A D^-1/2 with D the row sums (Kipf and Welling).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.sparse as sp


def cooccurrence_graph(Y, threshold: float = 0.0, reweight: Optional[float] = None,
                       self_loops: bool = True) -> sp.csr_matrix:
    """The (L, L) conditional co-occurrence matrix of binary labels ``Y`` (documents x labels)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if reweight is not None and not 0.0 <= reweight <= 1.0:
        raise ValueError(f"reweight must be in [0, 1] (the weight a node gives its neighbours), got {reweight}")
    if reweight is not None and not self_loops:
        raise ValueError("reweight keeps 1 - p on the diagonal: it needs self_loops=True")
    Y = sp.csr_matrix(Y, dtype=np.float64)
    Y.data[:] = 1.0  # presence, whatever the stored values
    counts = (Y.T @ Y).tocsc()  # counts[i, j] = documents with both i and j
    per_label = counts.diagonal()
    counts.setdiag(0)
    counts.eliminate_zeros()
    # Column j divided by the documents of label j: P(i | j). Labels without documents stay empty.
    cond = counts @ sp.diags(np.divide(1.0, per_label, out=np.zeros_like(per_label), where=per_label > 0))
    cond = sp.csc_matrix(cond)
    if threshold > 0:
        cond.data[cond.data < threshold] = 0.0
        cond.eliminate_zeros()
    if reweight is not None:
        col_sums = np.asarray(cond.sum(axis=0)).ravel()
        scale = np.divide(reweight, col_sums, out=np.zeros_like(col_sums), where=col_sums > 0)
        cond = cond @ sp.diags(scale)
        diagonal = np.where(col_sums > 0, 1.0 - reweight, 1.0)
    else:
        diagonal = np.ones(Y.shape[1])
    if self_loops:
        cond = cond + sp.diags(diagonal)
    return sp.csr_matrix(cond, dtype=np.float32)


def normalize_adjacency(A) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2 with D_ii = sum_j A_ij; rows (and columns) of zero degree stay zero."""
    A = sp.csr_matrix(A, dtype=np.float64)
    degree = np.asarray(A.sum(axis=1)).ravel()
    inv_sqrt = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    D = sp.diags(inv_sqrt)
    return sp.csr_matrix(D @ A @ D, dtype=np.float32)


def restrict(A, labels: np.ndarray) -> sp.csr_matrix:
    """The sub-graph over ``labels`` (in that order): what LDGN over tree candidates propagates on."""
    A = sp.csr_matrix(A)
    labels = np.asarray(labels, dtype=np.int64)
    return A[labels][:, labels].tocsr()
