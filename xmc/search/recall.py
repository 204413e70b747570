"""Where a tree search loses the true labels: after each level, the share of a corpus's (document, true
label) pairs whose ancestor at that level is still among the nodes the beam kept.

A search over a label tree can only return a label whose every ancestor survived the beam, so these
shares bound the recall of the final ranking from above, level by level. :func:`beam_recall` takes the
nodes a search kept at each level (any model's); :func:`plt_level_beams` replays the linear PLT's beam
search level by level in numpy (the native search returns only its last level).
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np
import scipy.sparse as sp

from xmc.search.reference import activate
from xmc.tree.label_tree import LabelTree, expand_children


def beam_recall(tree: LabelTree, Y: sp.csr_matrix, level_nodes: Sequence[np.ndarray]) -> List[float]:
    """For level t = 1, 2, ...: the share of Y's positives whose level-t ancestor is in ``level_nodes[t-1]``.

    ``level_nodes[t-1]``: (n_docs, width) node ids of level t kept by the search, -1 for empty slots; at
    level ``tree.depth`` the ids are label positions (``tree.label_order``'s index), as the tree numbers them.
    """
    Y = sp.csr_matrix(Y)
    if Y.nnz == 0:
        raise ValueError("Y holds no positive label: there is nothing to recall")
    rows = np.repeat(np.arange(Y.shape[0]), np.diff(Y.indptr))
    shares = []
    for level, nodes in enumerate(level_nodes, start=1):
        nodes = np.asarray(nodes)
        if nodes.shape[0] != Y.shape[0]:
            raise ValueError(f"level {level}: {nodes.shape[0]} rows of nodes for {Y.shape[0]} documents")
        ancestors = tree.label_to_node(level)[Y.indices]
        kept = np.zeros(Y.nnz, dtype=bool)
        for start in range(0, Y.nnz, 1 << 16):  # bounded memory: positives x width booleans per block
            block = slice(start, start + (1 << 16))
            kept[block] = (nodes[rows[block]] == ancestors[block, None]).any(axis=1)
        shares.append(float(kept.mean()))
    return shares


def plt_level_beams(tree: LabelTree, weights: Sequence[sp.spmatrix], X: sp.csr_matrix, beam: int,
                    activation: str = "l3-hinge", batch_size: int = 256) -> List[np.ndarray]:
    """The nodes the linear PLT's beam search keeps at each level: ``beam`` per level above the leaves, and
    at the last level every label it scores (the children of the last beam), best first.

    ``X``: the model's prepared features (``PLTLinear._check_features``), without the bias column.
    """
    X = sp.csr_matrix(X, dtype=np.float64)
    out: List[List[np.ndarray]] = [[] for _ in range(tree.depth)]
    for start in range(0, X.shape[0], batch_size):
        Xb = X[start:start + batch_size]
        Xb = sp.hstack([Xb, sp.csr_matrix(np.ones((Xb.shape[0], 1)))], format="csr")
        nodes = np.zeros((Xb.shape[0], 1), dtype=np.int64)  # the root
        scores = np.ones((Xb.shape[0], 1))
        for t in range(tree.depth):
            children, valid, slot = expand_children(nodes, nodes >= 0, tree.layer_indptr[t])
            margins = np.asarray((Xb @ sp.csc_matrix(weights[t], dtype=np.float64)).todense())
            probs = activate(np.take_along_axis(margins, children, axis=1), activation)
            combined = np.where(valid, probs * np.take_along_axis(scores, slot, axis=1), -1.0)
            width = combined.shape[1] if t == tree.depth - 1 else min(beam, combined.shape[1])
            # Ties go to the smaller node id, or label id at the last level, as in the native search.
            tie = tree.label_order[children] if t == tree.depth - 1 else children
            order = np.lexsort((tie, -combined), axis=1)[:, :width]
            scores = np.take_along_axis(combined, order, axis=1)
            nodes = np.where(scores >= 0, np.take_along_axis(children, order, axis=1), -1)
            out[t].append(nodes)
    return [np.concatenate(parts) for parts in out]
