"""Beam search over a PLT's label tree on the native core."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp

from xmc.tree.label_tree import LabelTree
from xmc.utils.sparse import csr_arrays, csr_from_arrays

ACTIVATIONS = ("sigmoid", "l3-hinge")


def _layer_csc(W, t: int, rows: int, cols: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not sp.issparse(W):
        raise TypeError(f"weights[{t}] must be a scipy sparse matrix, got {type(W).__name__}")
    if W.shape != (rows, cols):
        raise ValueError(f"weights[{t}] has shape {W.shape}, expected {(rows, cols)} "
                         f"(n_features + 1 bias row, one column per level-{t + 1} node)")
    # No copy when the trainer already hands CSC float32 over: the native layout
    # sorts rows itself, sums duplicates and range-checks every index.
    W = W.tocsc()
    if W.dtype != np.float32:
        W = W.astype(np.float32)
    return (np.ascontiguousarray(W.indptr, dtype=np.int64),
            np.ascontiguousarray(W.indices, dtype=np.int32),
            np.ascontiguousarray(W.data, dtype=np.float32))


class BeamSearcher:
    """Top-down beam search over ``tree`` with per-layer node classifiers ``weights``.

    ``weights[t]`` is (n_features + 1, tree.level_size(t + 1)), bias in the last
    row; the last layer's columns are label positions (``tree.label_order``). A
    label's score is the product of ``activation(w . [x, 1])`` along its path.
    The weights are re-laid per parent in native memory at construction; the
    scipy matrices are not kept.
    """

    def __init__(self, tree: LabelTree, weights: Sequence[sp.spmatrix],
                 activation: str = "l3-hinge", threads: int = 0) -> None:
        from xmc import _core

        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: expected one of {ACTIVATIONS}")
        weights = list(weights)
        if len(weights) != tree.depth:
            raise ValueError(f"the tree has {tree.depth} layers but {len(weights)} weight "
                             "matrices were given")
        if not weights:
            raise ValueError("no weight matrices given")
        rows = weights[0].shape[0]
        if rows < 1:
            raise ValueError("weights need at least the bias row")
        arrays = [_layer_csc(W, t, rows, tree.level_size(t + 1)) for t, W in enumerate(weights)]
        self.tree = tree
        self.activation = activation
        self.n_features = rows - 1
        self.n_labels = tree.n_labels
        self._core = _core.BeamSearcher(
            list(tree.layer_indptr), tree.label_order,
            [a[0] for a in arrays], [a[1] for a in arrays], [a[2] for a in arrays],
            [rows] * len(arrays), activation, threads)

    def _check(self, X) -> sp.csr_matrix:
        if not sp.issparse(X):
            X = np.asarray(X)
            if X.ndim == 1:
                X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X has {X.shape[-1] if X.ndim else 0} features but the model "
                             f"expects {self.n_features}")
        return X

    def search(self, X, k: int = 5, beam: int = 10, threads: int = 0, *,
               block: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Top-k labels per row of X: (ids int32 (n, k), scores float32 (n, k)).

        Ids are original label ids by descending score (ties: smaller id first),
        padded with -1 / 0.0 when fewer than k labels are reachable. ``block``
        tunes speed only: documents searched together so each node's weights
        are read once per block (0: one document at a time; None: by input size).
        """
        if int(k) < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if int(beam) < 1:
            raise ValueError(f"beam must be at least 1, got {beam}")
        indptr, indices, data, n_cols = csr_arrays(self._check(X))
        return self._core.search(indptr, indices, data, n_cols, int(k), int(beam), int(threads),
                                 -1 if block is None else max(0, int(block)))

    def search_csr(self, X, k: int = 5, beam: int = 10, threads: int = 0, *,
                   block: Optional[int] = None) -> sp.csr_matrix:
        """The top-k as a sparse (n, n_labels) float32 matrix of scores, padding dropped."""
        ids, scores = self.search(X, k=k, beam=beam, threads=threads, block=block)
        n = ids.shape[0]
        valid = ids >= 0
        # Sorted column ids per row: the canonical layout scipy and our metrics expect.
        order = np.argsort(np.where(valid, ids, np.iinfo(np.int32).max), axis=1, kind="stable")
        ids = np.take_along_axis(ids, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        valid = np.take_along_axis(valid, order, axis=1)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(valid.sum(axis=1), out=indptr[1:])
        return csr_from_arrays(indptr, ids[valid].astype(np.int32), scores[valid].astype(np.float32),
                               (n, self.n_labels))

    def layout_stats(self) -> Dict:
        """Per-layer chunk counts and native memory of the re-laid weights."""
        return self._core.layout_stats()

    def __repr__(self) -> str:
        return (f"BeamSearcher(n_features={self.n_features}, n_labels={self.n_labels}, "
                f"depth={self.tree.depth}, activation={self.activation!r})")
