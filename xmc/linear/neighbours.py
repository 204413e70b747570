"""Scores from the nearest training documents, to re-rank the linear PLT's proposals.

A document's k nearest training documents by cosine similarity of their feature rows vote for their labels,
each with weight similarity ** power, normalised to sum to 1: a label's neighbour score is the weighted
share of the neighbours that carry it, in [0, 1]. The PLT's score of each proposed label is then blended
with it, (1 - weight) * PLT + weight * neighbours. Labels with few training documents have weak node
classifiers but are still found through the documents that carry them (kNN-augmented XMC).

The scorer keeps the training rows and labels, so the model grows by them, and a prediction costs one
sparse product of the document with every training row.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

import numpy as np
import scipy.sparse as sp

from xmc.params import Params, check, check_int, param
from xmc.search.merge import best_first
from xmc.utils.modeldir import ModelFormatError, load_arrays, load_saved_params, save_arrays, save_json
from xmc.utils.sparse import compressed_problem, l2_normalize_rows

PARAMS_JSON = "neighbours.json"
ARRAYS_NPZ = "neighbours.npz"
REQUIRED_FILES = (PARAMS_JSON, ARRAYS_NPZ)
_ARRAYS = ("X.indptr", "X.indices", "X.data", "Y.indptr", "Y.indices")
# queries per sparse product: bounds the (chunk, n_train) similarity matrix
_CHUNK = 512


@dataclass
class NeighbourParams(Params):
    """Re-ranking of the PLT's proposals with the labels of the nearest training documents."""

    k: int = param(0, "nearest training documents that vote (0: off)")
    power: float = param(4.0, "a neighbour's vote is its cosine similarity to this power")
    weight: float = param(0.2, "w of the score (1 - w) * PLT + w * neighbours")
    pool: int = param(100, "PLT proposals per document that are re-ranked")

    def validate(self) -> None:
        check_int(self.k, "k", low=0)
        check_int(self.pool, "pool")
        check(self.power > 0, "power", "a positive number", self.power)
        check(0.0 <= self.weight <= 1.0, "weight", "a number in [0, 1]", self.weight)


class NeighbourScorer:
    """The training rows (unit L2 norm) and labels, and the neighbour score of any (document, label)."""

    def __init__(self, params: NeighbourParams, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
        self.params = params
        self.X = l2_normalize_rows(X)
        self.XT = self.X.T.tocsr()  # the similarity product reads the training rows as columns
        self.Y = sp.csr_matrix(Y, dtype=np.float32)
        self.Y.data[:] = 1.0

    def scores(self, X: sp.csr_matrix, labels: np.ndarray) -> np.ndarray:
        """(n, C) neighbour scores of ``labels`` (n, C) label ids (-1: none, scored 0) for the rows of ``X``."""
        out = np.zeros(labels.shape, dtype=np.float32)
        X = l2_normalize_rows(X)
        for start in range(0, X.shape[0], _CHUNK):
            stop = min(start + _CHUNK, X.shape[0])
            votes = (self._neighbour_weights(X[start:stop]) @ self.Y).tocsr()
            ids = labels[start:stop]
            rows = np.repeat(np.arange(stop - start), ids.shape[1])
            known = ids.ravel() >= 0
            flat = np.zeros(ids.size, dtype=np.float32)
            flat[known] = np.asarray(votes[rows[known], ids.ravel()[known]]).ravel()
            out[start:stop] = flat.reshape(ids.shape)
        return out

    def rerank(self, X: sp.csr_matrix, ids: np.ndarray, scores: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        """The k best of the proposals ``ids`` (n, C) by the blended score, best first (-1 / 0: none)."""
        w = self.params.weight
        return best_first(ids, (1.0 - w) * scores + w * self.scores(X, ids), k)

    def _neighbour_weights(self, X: sp.csr_matrix) -> sp.csr_matrix:
        """(n, n_train): each row's k most similar training documents, weights sim ** power summing to 1."""
        sims = (X @ self.XT).tocsr()
        k, n = self.params.k, X.shape[0]
        rows, cols, vals = [], [], []
        for i in range(n):
            lo, hi = sims.indptr[i], sims.indptr[i + 1]
            idx, v = sims.indices[lo:hi], sims.data[lo:hi]
            if v.size > k:
                top = np.argpartition(-v, k)[:k]
                idx, v = idx[top], v[top]
            keep = v > 0
            idx, v = idx[keep], v[keep] ** self.params.power
            if v.size:
                rows.append(np.full(v.size, i)), cols.append(idx), vals.append(v / v.sum())
        if not rows:
            return sp.csr_matrix((n, self.X.shape[0]), dtype=np.float32)
        return sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(n, self.X.shape[0]))

    # ---- persistence -------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        save_json(directory / PARAMS_JSON, {"params": self.params.to_dict(), "n_labels": int(self.Y.shape[1]),
                                            "n_features": int(self.X.shape[1])})
        save_arrays(directory / ARRAYS_NPZ, {"X.indptr": self.X.indptr.astype(np.int64),
                                             "X.indices": self.X.indices.astype(np.int32), "X.data": self.X.data,
                                             "Y.indptr": self.Y.indptr.astype(np.int64),
                                             "Y.indices": self.Y.indices.astype(np.int32)})

    @classmethod
    def load(cls, directory: Path, n_labels: int, n_features: int) -> "NeighbourScorer":
        """Load and check against the model's label and feature counts (the products trust the ids)."""
        _, params = load_saved_params(directory / PARAMS_JSON, NeighbourParams)
        if params.k < 1:
            raise ModelFormatError(f"{directory / PARAMS_JSON}: k must be at least 1 in a saved scorer")
        arrays = load_arrays(directory / ARRAYS_NPZ)
        missing = [name for name in _ARRAYS if name not in arrays]
        if missing:
            raise ModelFormatError(f"{directory / ARRAYS_NPZ}: array {missing[0]!r} is missing")
        X = _checked_csr(arrays, "X", n_features, directory / ARRAYS_NPZ, arrays["X.data"])
        Y = _checked_csr(arrays, "Y", n_labels, directory / ARRAYS_NPZ, None)
        if X.shape[0] != Y.shape[0]:
            raise ModelFormatError(f"{directory / ARRAYS_NPZ}: {X.shape[0]} feature rows but {Y.shape[0]} label rows")
        return cls(params, X, Y)


def _checked_csr(arrays, prefix: str, n_cols: int, where: Path, data) -> sp.csr_matrix:
    indptr, indices = arrays[f"{prefix}.indptr"], arrays[f"{prefix}.indices"]
    if data is None:  # the label rows: a pattern without values
        data = np.ones(indices.shape, dtype=np.float32)
    n_rows = max(indptr.size - 1, 0) if indptr.ndim == 1 else 0
    problem = compressed_problem(tuple(f"{prefix}.{part}" for part in ("indptr", "indices", "data")),
                                 indptr, indices, data, n_outer=n_rows, n_inner=n_cols)
    if problem is not None:
        raise ModelFormatError(f"{where}: {problem}")
    return sp.csr_matrix((data.astype(np.float32), indices.astype(np.int64), indptr.astype(np.int64)),
                         shape=(n_rows, n_cols))
