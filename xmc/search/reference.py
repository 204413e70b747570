"""Slow, obviously-correct references for the native beam search.

``exhaustive_scores`` scores every node of every level with dense numpy algebra
in float64 and multiplies the probabilities down the tree: what a beam search
with an unbounded beam returns. Tests compare the native searcher with it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from xmc.tree.label_tree import LabelTree

ACTIVATIONS = ("sigmoid", "l3-hinge")


def activate(z: np.ndarray, activation: str) -> np.ndarray:
    """Node probability from the margin z = w . [x, 1]."""
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if activation == "l3-hinge":
        return np.exp(-np.maximum(0.0, 1.0 - z) ** 3)
    raise ValueError(f"unknown activation {activation!r}: expected one of {ACTIVATIONS}")


def exhaustive_scores(tree: LabelTree, weights: Sequence[sp.spmatrix], X,
                      activation: str = "l3-hinge") -> np.ndarray:
    """(n, n_labels) float64: every label's path product, columns indexed by label id."""
    X = sp.csr_matrix(X, dtype=np.float64)
    n = X.shape[0]
    Xb = sp.hstack([X, sp.csr_matrix(np.ones((n, 1)))], format="csr")
    path = np.ones((n, 1))
    for t in range(tree.depth):
        W = sp.csc_matrix(weights[t], dtype=np.float64)
        Z = np.asarray((Xb @ W).todense())
        path = path[:, tree.node_parents(t)] * activate(Z, activation)
    out = np.empty((n, tree.n_labels))
    out[:, tree.label_order] = path
    return out


def topk_from_scores(scores: np.ndarray, k: int):
    """(ids, scores) of the k best columns per row, descending, ties by smaller id."""
    n, L = scores.shape
    kk = min(k, L)
    # lexsort's last key is primary: descending score, then ascending id.
    order = np.lexsort((np.broadcast_to(np.arange(L), scores.shape), -scores), axis=1)[:, :kk]
    ids = np.full((n, k), -1, dtype=np.int64)
    top = np.zeros((n, k))
    ids[:, :kk] = order
    top[:, :kk] = np.take_along_axis(scores, order, axis=1)
    return ids, top
