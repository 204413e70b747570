"""A per-label re-ranker trained on the model's own proposals (matcher-aware negatives).

A PLT node classifier sees only the documents positive at its parent, so a leaf never learns to
tell its label from the labels the beam confuses it with. The re-ranker gives every label one more
linear classifier, trained on the label's positive documents and on the training documents whose
top ``candidates`` proposals (from the trained trees) hold the label: its hard negatives, as
PECOS's matcher-aware negatives are. At prediction it scores the same number of proposals, and a
label's score becomes ``(1 - weight) * tree score + weight * re-ranker probability``.

The classifiers are solved by the PLT's own native layer trainer (one "parent" per label whose
documents are the label's positives and candidates), with the PLT's loss, tolerance, pruning and
activation; only C is the re-ranker's own. Training costs one prediction of the training documents
and about ``candidates`` (document, label) pairs per document.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Tuple

import numpy as np
import scipy.sparse as sp

from xmc import _core
from xmc.params import Params, check, check_int, param
from xmc.search.merge import best_first
from xmc.search.reference import activate
from xmc.training import distributed
from xmc.utils.modeldir import ModelFormatError, load_arrays, load_saved_params, save_arrays, save_json
from xmc.utils.sparse import compressed_problem, csr_arrays

PARAMS_JSON = "reranker.json"
WEIGHTS_NPZ = "reranker.npz"
REQUIRED_FILES = (PARAMS_JSON, WEIGHTS_NPZ)
# documents per sparse product: bounds the (chunk, labels proposed in the chunk) score block
_CHUNK = 256

if TYPE_CHECKING:  # the PLT's params name these params as a field: no import at run time
    from xmc.linear.params import PLTParams
# The native layer trainer seeds each classifier by (seed, layer, column); the re-ranker is a layer of its own.
_LAYER = 1000


@dataclass
class RerankParams(Params):
    """Re-ranking of the trees' proposals by per-label classifiers trained on each label's hard negatives."""

    candidates: int = param(0, "proposals per training document whose labels get it as a negative, and "
                               "proposals re-ranked per document at prediction (0: off; 100 turns it on)")
    C: float = param(1.0, "inverse regularisation strength of the re-ranker's classifiers")
    weight: float = param(0.5, "w of the score (1 - w) * trees + w * re-ranker")

    def validate(self) -> None:
        check_int(self.candidates, "candidates", low=0)
        check(self.C > 0, "C", "a positive number", self.C)
        check(0.0 <= self.weight <= 1.0, "weight", "a number in [0, 1]", self.weight)


class LabelReranker:
    """One linear classifier per label over [features, 1]: ``W`` is CSC (n_features + 1, n_labels), bias last."""

    def __init__(self, params: RerankParams, W: sp.csc_matrix, activation: str) -> None:
        self.params = params
        self.W = W
        self.activation = activation

    @classmethod
    def fit(cls, params: RerankParams, plt: "PLTParams", X: sp.csr_matrix, Y: sp.csr_matrix,
            proposed: np.ndarray) -> "LabelReranker":
        """Train on ``X`` (rows prepared as the PLT prepares them), 0/1 ``Y`` and each training document's
        proposed label ids (n, candidates; -1: none)."""
        n, n_labels = Y.shape
        rows = np.repeat(np.arange(n), proposed.shape[1])
        keep = proposed.ravel() >= 0
        seen = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], proposed.ravel()[keep])),
                             shape=(n, n_labels))
        # Each label's documents: its positives and the documents it was proposed for, in document order.
        docs = ((seen + Y) > 0).tocsc()
        docs.sort_indices()
        T = sp.csr_matrix(Y, dtype=np.float32)
        T.sort_indices()
        begin, end = distributed.share_of_columns(np.diff(docs.indptr) + 1)
        x_indptr, x_indices, x_data, n_features = csr_arrays(X)
        indptr, indices, data, shape = _core.linear_train_layer(
            x_indptr, x_indices, x_data, n_features,
            np.ascontiguousarray(docs.indptr, dtype=np.int64), np.ascontiguousarray(docs.indices, dtype=np.int32),
            np.arange(n_labels + 1, dtype=np.int64), np.ascontiguousarray(T.indptr, dtype=np.int64),
            np.ascontiguousarray(T.indices, dtype=np.int32), n_labels,
            plt.loss, float(params.C), float(plt.eps), int(plt.max_iter), float(plt.bias),
            float(plt.weight_threshold), int(plt.seed), _LAYER, int(plt.threads), begin, end)
        W = distributed.gather_columns(sp.csc_matrix((data, indices, indptr), shape=shape))
        if plt.bias != 1.0:
            W.data[W.indices == n_features] *= np.float32(plt.bias)  # scored with an implicit 1.0, as the PLT is
        return cls(params, W, plt.resolved_activation)

    def probabilities(self, X: sp.csr_matrix, ids: np.ndarray) -> np.ndarray:
        """(n, C) probabilities of the label ids (n, C) (-1: none, 0) for the rows of ``X`` (prepared as at fit)."""
        out = np.zeros(ids.shape, dtype=np.float32)
        for start in range(0, X.shape[0], _CHUNK):
            stop = min(start + _CHUNK, X.shape[0])
            block = ids[start:stop]
            labels, where = np.unique(np.maximum(block, 0), return_inverse=True)
            Xb = sp.hstack([X[start:stop], np.ones((stop - start, 1), dtype=np.float32)], format="csr")
            margins = (Xb @ self.W[:, labels]).toarray()
            picked = np.take_along_axis(margins, where.reshape(block.shape), axis=1)
            out[start:stop] = np.where(block >= 0, activate(picked, self.activation), 0.0)
        return out

    def rerank(self, X: sp.csr_matrix, ids: np.ndarray, scores: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """The proposals ``ids`` (n, C) re-scored by the blend and sorted, best first (-1 / 0: none)."""
        w = self.params.weight
        return best_first(ids, (1.0 - w) * scores + w * self.probabilities(X, ids))

    # ---- persistence -------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        save_json(directory / PARAMS_JSON, {"params": self.params.to_dict(), "activation": self.activation,
                                            "n_features": int(self.W.shape[0] - 1),
                                            "n_labels": int(self.W.shape[1])})
        save_arrays(directory / WEIGHTS_NPZ, {"indptr": self.W.indptr.astype(np.int64),
                                              "indices": self.W.indices.astype(np.int32),
                                              "data": self.W.data.astype(np.float32)})

    @classmethod
    def load(cls, directory: Path, n_labels: int, n_features: int) -> "LabelReranker":
        """Load and check against the model's label and feature counts (the products trust the ids)."""
        where = directory / PARAMS_JSON
        info, params = load_saved_params(where, RerankParams)
        if params.candidates < 1:
            raise ModelFormatError(f"{where}: candidates must be at least 1 in a saved re-ranker")
        activation = info.get("activation")
        if activation not in ("l3-hinge", "sigmoid"):
            raise ModelFormatError(f"{where}: 'activation' must be 'l3-hinge' or 'sigmoid', found {activation!r}"[:300])
        if info.get("n_labels") != n_labels or info.get("n_features") != n_features:
            raise ModelFormatError(f"{where}: {info.get('n_labels')!r} labels and {info.get('n_features')!r} "
                                   f"features, but the model has {n_labels} and {n_features}"[:300])
        arrays = load_arrays(directory / WEIGHTS_NPZ)
        missing = [name for name in ("indptr", "indices", "data") if name not in arrays]
        if missing:
            raise ModelFormatError(f"{directory / WEIGHTS_NPZ}: array {missing[0]!r} is missing")
        problem = compressed_problem(("indptr", "indices", "data"), arrays["indptr"], arrays["indices"],
                                     arrays["data"], n_outer=n_labels, n_inner=n_features + 1)
        if problem is not None:
            raise ModelFormatError(f"{directory / WEIGHTS_NPZ}: {problem}")
        W = sp.csc_matrix((arrays["data"].astype(np.float32), arrays["indices"].astype(np.int64),
                           arrays["indptr"].astype(np.int64)), shape=(n_features + 1, n_labels))
        return cls(params, W, activation)
