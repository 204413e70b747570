"""The label tree every xmc model and the beam search share.

Plain arrays, no objects per node. Levels are numbered from the root (level 0,
one node). ``layer_indptr[t]`` has one entry per node of level t plus one: the
children of node i are the nodes ``layer_indptr[t][i] : layer_indptr[t][i+1]``
of level t+1 (children of a node are contiguous). The last layer's children are
not nodes but positions in ``label_order``: leaf i holds the labels
``label_order[indptr[i]:indptr[i+1]]``.

So a tree of ``depth`` layers has ``depth`` sets of classifiers in a PLT: layer
t scores the children of level t (the last layer scores labels). A flat
one-vs-all model is the tree ``layer_indptr=[[0, L]]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import numpy as np
import scipy.sparse as sp

from xmc.utils.modeldir import ModelFormatError, load_arrays, load_json, save_arrays, save_json

TREE_ARRAYS = "tree.npz"
TREE_JSON = "tree.json"
MAX_DEPTH = 64  # a balanced tree of branching factor >= 2 over 2**63 labels is shallower


def _index_array(path: Path, name: str, a: np.ndarray, limit: int) -> np.ndarray:
    """``a`` as int64 if it is a 1-d integer array with values in [0, limit], else a ModelFormatError."""
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise ModelFormatError(f"{path}: array {name!r} must be 1-d integers, found {a.dtype} of shape {a.shape}")
    if a.size and (int(a.min()) < 0 or int(a.max()) > limit):
        raise ModelFormatError(f"{path}: array {name!r} holds {int(a.min())}..{int(a.max())}, "
                               f"expected values in [0, {limit}]")
    return a.astype(np.int64)


@dataclass
class LabelTree:
    layer_indptr: List[np.ndarray]
    label_order: np.ndarray

    def __post_init__(self) -> None:
        self.layer_indptr = [np.ascontiguousarray(p, dtype=np.int64) for p in self.layer_indptr]
        self.label_order = np.ascontiguousarray(self.label_order, dtype=np.int32)
        self.validate()

    # ---- shape ---------------------------------------------------------------
    @property
    def n_labels(self) -> int:
        return int(self.label_order.size)

    @property
    def depth(self) -> int:
        """Number of layers of classifiers (levels below the root)."""
        return len(self.layer_indptr)

    def level_size(self, level: int) -> int:
        """Nodes at ``level`` (0 = root). ``level == depth`` gives the label count."""
        return 1 if level == 0 else int(self.layer_indptr[level - 1][-1])

    @property
    def n_leaves(self) -> int:
        return self.level_size(self.depth - 1)

    def validate(self) -> None:
        if not self.layer_indptr:
            raise ValueError("a label tree needs at least one layer")
        expected = 1
        for t, ptr in enumerate(self.layer_indptr):
            if ptr.ndim != 1 or ptr.size != expected + 1:
                raise ValueError(f"layer {t}: indptr has {ptr.size} entries, expected {expected + 1}")
            if ptr[0] != 0 or np.any(np.diff(ptr) < 1):
                raise ValueError(f"layer {t}: indptr must start at 0 and give every node a child")
            expected = int(ptr[-1])
        if expected != self.label_order.size:
            raise ValueError(f"leaves hold {expected} labels but label_order has {self.label_order.size}")
        if not np.array_equal(np.sort(self.label_order), np.arange(self.label_order.size)):
            raise ValueError("label_order must be a permutation of 0..n_labels-1")

    # ---- label <-> node maps -------------------------------------------------
    def label_to_node(self, level: int) -> np.ndarray:
        """For each label, the id of its ancestor at ``level`` (level == depth: the label's position)."""
        position = np.empty(self.n_labels, dtype=np.int64)
        position[self.label_order] = np.arange(self.n_labels)
        node = position
        for t in range(self.depth - 1, level - 1, -1):
            ptr = self.layer_indptr[t]
            node = np.searchsorted(ptr, node, side="right") - 1
        return node

    def node_parents(self, layer: int) -> np.ndarray:
        """Parent (level ``layer``) of each child scored by ``layer``."""
        ptr = self.layer_indptr[layer]
        return np.repeat(np.arange(ptr.size - 1), np.diff(ptr))

    def node_targets(self, Y: sp.csr_matrix, level: int) -> sp.csr_matrix:
        """Binary doc x node matrix: 1 where a node at ``level`` holds one of the doc's labels."""
        Y = sp.csr_matrix(Y)
        if level == self.depth:
            position = self.label_to_node(self.depth)
            cols = position[Y.indices]
        else:
            cols = self.label_to_node(level)[Y.indices]
        # Copy indptr: sum_duplicates compacts it in place, which would corrupt the caller's Y.
        M = sp.csr_matrix((np.ones(cols.size, dtype=np.float32), cols, Y.indptr.copy()),
                          shape=(Y.shape[0], self.level_size(level)))
        M.sum_duplicates()
        M.data[:] = 1.0
        return M

    # ---- persistence -----------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        arrays = {f"layer_{t}": p for t, p in enumerate(self.layer_indptr)}
        arrays["label_order"] = self.label_order
        save_arrays(directory / TREE_ARRAYS, arrays)
        save_json(directory / TREE_JSON, {
            "depth": self.depth,
            "n_labels": self.n_labels,
            "level_sizes": [self.level_size(l) for l in range(self.depth + 1)],
        })

    @classmethod
    def load(cls, directory: Path) -> "LabelTree":
        """Load a saved tree. Every array is checked (integer, 1-d, in range) before any cast:
        the native beam search trusts these indices."""
        directory = Path(directory)
        info = load_json(directory / TREE_JSON)
        depth = info.get("depth") if isinstance(info, dict) else None
        if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= MAX_DEPTH:
            raise ModelFormatError(f"{directory / TREE_JSON}: expected an object with an integer 'depth' in "
                                   f"[1, {MAX_DEPTH}], found {str(depth if isinstance(info, dict) else info)[:80]}")
        arrays = load_arrays(directory / TREE_ARRAYS)
        path = directory / TREE_ARRAYS
        expected = {f"layer_{t}" for t in range(depth)} | {"label_order"}
        if set(arrays) != expected:
            raise ModelFormatError(f"{path}: expected arrays {sorted(expected)} for a depth-{depth} tree "
                                   f"({TREE_JSON}), found {sorted(arrays)}")
        # indptr entries are node counts (int64 in memory); label ids must fit the native int32.
        layers = [_index_array(path, f"layer_{t}", arrays[f"layer_{t}"], 2**62) for t in range(depth)]
        order = _index_array(path, "label_order", arrays["label_order"], 2**31 - 1)
        try:
            return cls(layers, order)
        except ValueError as e:
            raise ModelFormatError(f"{path}: damaged label tree ({e})") from e

    @classmethod
    def flat(cls, n_labels: int) -> "LabelTree":
        """One-vs-all: a single layer whose only leaf holds every label."""
        return cls([np.array([0, n_labels])], np.arange(n_labels))

    def __repr__(self) -> str:
        sizes = [self.level_size(l) for l in range(self.depth + 1)]
        return f"LabelTree(n_labels={self.n_labels}, level_sizes={sizes})"


def expand_children(parents: np.ndarray, parent_valid: np.ndarray,
                    indptr: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Children of each row's parent nodes as a padded (B, P * max_children) block.

    Returns (children, valid, parent_slot): ``children[b, j]`` is a node of the
    next level (0 where padding), ``valid`` marks real entries, ``parent_slot``
    the column in ``parents`` each child came from.
    """
    counts = np.diff(indptr)
    width = int(counts.max())
    safe_parents = np.where(parent_valid, parents, 0)
    start = indptr[:-1][safe_parents]  # (B, P)
    count = np.where(parent_valid, counts[safe_parents], 0)
    offsets = np.arange(width)
    children = start[:, :, None] + offsets  # (B, P, width)
    valid = offsets < count[:, :, None]
    children = np.where(valid, children, 0)
    B, P = parents.shape
    slot = np.broadcast_to(np.arange(P)[None, :, None], (B, P, width))
    return (children.reshape(B, P * width), valid.reshape(B, P * width), slot.reshape(B, P * width))
