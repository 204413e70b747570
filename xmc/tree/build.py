"""Build a ``LabelTree`` from data: PIFA label embeddings, balanced spherical
2-means recursion (native), then compression of the binary levels into a tree
with ``branching_factor`` children per node (or ``height`` layers).

The binary recursion halves every cluster of a level until clusters hold at most
``max_leaf_size`` labels, so all leaves sit at the same binary depth D and leaf
sizes differ by at most one. Compression keeps binary levels counted from the
bottom, as PECOS does: D, D - c, D - 2c, ... with B = 2**c, so every node has B
children except the root (up to B). With ``height = H`` it follows AttentionXML's
shallow-and-wide tree: H - 1 cluster levels D, D - c, ..., D - (H-2)c are kept and
the root takes every node of the top kept level as a child (a wide first layer).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Union

import numpy as np
import scipy.sparse as sp

from xmc.tree.label_tree import LabelTree
from xmc.tree.params import TreeParams
from xmc.utils.sparse import csr_arrays, csr_from_arrays

Embeddings = Union[np.ndarray, sp.spmatrix]

_UINT64_MASK = (1 << 64) - 1


def _core():
    from xmc import _core

    return _core


@dataclass
class BinaryPartition:
    """Output of the balanced 2-means recursion.

    Level d (0 = all labels) has the clusters
    ``label_order[level_bounds[d][j]:level_bounds[d][j + 1]]``; the last level
    holds the leaves. Within each cluster the label ids are sorted.
    """

    label_order: np.ndarray
    level_bounds: List[np.ndarray]

    @property
    def binary_depth(self) -> int:
        return len(self.level_bounds) - 1


# ---- parameter and input checks -------------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def validate_params(params: TreeParams) -> None:
    """Raise ``ValueError``/``TypeError`` naming the field, what was expected and what was found."""
    if not isinstance(params, TreeParams):
        raise TypeError(f"params: expected a TreeParams, found {type(params).__name__}")
    b = params.branching_factor
    if not _is_int(b) or b < 2 or (b & (b - 1)) != 0:
        raise ValueError(f"branching_factor: expected a power of two >= 2 (2, 4, 8, 16, ...), found {b!r}")
    if not _is_int(params.max_leaf_size) or params.max_leaf_size < 1:
        raise ValueError(f"max_leaf_size: expected an integer >= 1, found {params.max_leaf_size!r}")
    if not _is_int(params.max_iter) or params.max_iter < 1:
        raise ValueError(f"max_iter: expected an integer >= 1, found {params.max_iter!r}")
    if isinstance(params.tol, bool) or not isinstance(params.tol, (int, float)) or not 0 <= params.tol < 1:
        raise ValueError(f"tol: expected a number in [0, 1), found {params.tol!r}")
    if not _is_int(params.split_sample) or params.split_sample < 0 or params.split_sample == 1:
        raise ValueError(f"split_sample: expected 0 (no sampling) or an integer >= 2, found {params.split_sample!r}")
    if params.height is not None and (not _is_int(params.height) or params.height < 2):
        raise ValueError(f"height: expected None or an integer >= 2 (a one-layer tree is LabelTree.flat), "
                         f"found {params.height!r}")
    if not _is_int(params.seed):
        raise ValueError(f"seed: expected an integer, found {params.seed!r}")
    if not _is_int(params.threads):
        raise ValueError(f"threads: expected an integer (<= 0 means all cores), found {params.threads!r}")


def _check_float(dtype, what: str) -> None:
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"{what}: expected floating-point values (float32 is used as is), found dtype {dtype}")


def _dense_input(x: np.ndarray) -> np.ndarray:
    if x.ndim != 2:
        raise ValueError(f"embeddings: expected a 2-d array (labels x dimensions), found shape {x.shape}")
    _check_float(x.dtype, "embeddings")
    # float32 C-order arrays go to the core as they are; anything else costs one copy.
    return np.ascontiguousarray(x, dtype=np.float32)


# ---- PIFA ---------------------------------------------------------------------
def _pifa_arrays(X, Y) -> tuple:
    """X's and Y's CSR arrays for the core's PIFA, checked."""
    if X.ndim != 2 or Y.ndim != 2:
        raise ValueError(f"X and Y: expected 2-d matrices, found shapes {X.shape} and {Y.shape}")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} documents (rows) but Y has {Y.shape[0]}; they must match")
    _check_float(X.dtype, "X")
    return (*csr_arrays(X), *csr_arrays(Y))


def pifa_embeddings(X, Y, threads: int = 0) -> sp.csr_matrix:
    """PIFA label embeddings, labels x features: ``normalize(Y.T @ normalize(X))``.

    ``X`` is documents x features, ``Y`` documents x labels (sparse or dense).
    Labels without documents get an empty row.
    """
    arrays = _pifa_arrays(X, Y)
    if not _is_int(threads):
        raise ValueError(f"threads: expected an integer, found {threads!r}")
    indptr, indices, data, shape = _core().tree_pifa(*arrays, int(threads))
    return csr_from_arrays(indptr, indices, data, shape)


# ---- binary recursion ----------------------------------------------------------
def _kmeans_args(params: TreeParams) -> tuple:
    return (int(params.max_leaf_size), int(params.max_iter), float(params.tol), int(params.split_sample),
            int(params.seed) & _UINT64_MASK, int(params.threads))


def binary_partition(embeddings: Embeddings, params: TreeParams = TreeParams()) -> BinaryPartition:
    """Balanced spherical 2-means recursion over the label embeddings (rows).

    Dense float32 C-ordered arrays and float32 CSR matrices are used without a
    copy. Deterministic for ``params.seed`` whatever ``params.threads``.
    """
    validate_params(params)
    core = _core()
    args = _kmeans_args(params)
    if sp.issparse(embeddings):
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings: expected a 2-d matrix, found shape {embeddings.shape}")
        _check_float(embeddings.dtype, "embeddings")
        _check_not_empty(embeddings.shape[0])
        order, bounds = core.tree_kmeans_sparse(*csr_arrays(embeddings), *args)
    elif isinstance(embeddings, np.ndarray):
        x = _dense_input(embeddings)
        _check_not_empty(x.shape[0])
        order, bounds = core.tree_kmeans_dense(x, *args)
    else:
        raise TypeError(f"embeddings: expected a numpy array or a scipy sparse matrix, "
                        f"found {type(embeddings).__name__}")
    return BinaryPartition(order, list(bounds))


def _check_not_empty(n_labels: int) -> None:
    if n_labels == 0:
        raise ValueError("embeddings: expected at least one label (row), found 0")


def pifa_partition(X, Y, params: TreeParams = TreeParams()) -> BinaryPartition:
    """``binary_partition(pifa_embeddings(X, Y, params.threads), params)``, the same partition bit
    for bit, with the embeddings kept inside the core, where the k-means reuses their arrays as
    scratch: at millions of labels that saves gigabytes of memory and the time to write them."""
    validate_params(params)
    arrays = _pifa_arrays(X, Y)
    _check_not_empty(Y.shape[1])
    order, bounds = _core().tree_pifa_kmeans(*arrays, *_kmeans_args(params))
    return BinaryPartition(order, list(bounds))


# ---- compression into a LabelTree --------------------------------------------------
def kept_levels(binary_depth: int, branching_factor: int, height: Optional[int] = None) -> List[int]:
    """Binary levels that become the tree's node levels, top to bottom (the last is the leaves)."""
    if binary_depth <= 0:
        return []
    c = int(branching_factor).bit_length() - 1
    if height is None:
        return list(range(binary_depth, 0, -c))[::-1]
    n_levels = height - 1
    if n_levels > binary_depth:
        raise ValueError(
            f"height={height} needs at least {n_levels} binary levels but clustering these labels into "
            f"leaves of at most max_leaf_size gives {binary_depth}; use height <= {binary_depth + 1} "
            f"or a smaller max_leaf_size")
    if n_levels > 1 and binary_depth - (n_levels - 1) * c < 1:
        # Not deep enough for log2(B) binary levels between layers: narrow the step.
        c = (binary_depth - 1) // (n_levels - 1)
    return [binary_depth - k * c for k in range(n_levels)][::-1]


def compress(partition: BinaryPartition, params: TreeParams = TreeParams()) -> LabelTree:
    """Turn the binary levels into a ``LabelTree`` (see the module docstring)."""
    levels = kept_levels(partition.binary_depth, params.branching_factor, params.height)
    n = int(partition.label_order.size)
    if not levels:
        return LabelTree([np.array([0, n], dtype=np.int64)], partition.label_order)
    b = partition.level_bounds
    layers = [np.array([0, b[levels[0]].size - 1], dtype=np.int64)]
    for upper, lower in zip(levels[:-1], levels[1:]):
        # Clusters are nested, so a parent's bounds are found exactly among its children's bounds.
        layers.append(np.searchsorted(b[lower], b[upper]).astype(np.int64))
    layers.append(np.asarray(b[levels[-1]], dtype=np.int64))
    return LabelTree(layers, partition.label_order)


def cluster_labels(embeddings: Embeddings, params: TreeParams = TreeParams()) -> LabelTree:
    """Cluster label embeddings (dense L x d or CSR L x D) into a ``LabelTree``."""
    return compress(binary_partition(embeddings, params), params)


def build_label_tree(X, Y, params: TreeParams = TreeParams()) -> LabelTree:
    """PIFA embeddings of the labels of (X, Y), then ``cluster_labels``."""
    validate_params(params)
    if params.embedding != "pifa":
        raise ValueError(f"embedding: expected 'pifa' (the only built-in label embedding), "
                         f"found {params.embedding!r}; use cluster_labels() with your own embeddings")
    return compress(pifa_partition(X, Y, params), params)
