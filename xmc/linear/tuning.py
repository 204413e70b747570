"""Choosing the PLT's regularisation C on a held-out part of the training documents.

The best C depends on the features: on binary bag-of-words (Bibtex, Delicious) a strong regulariser
(C=0.5) ranks best, on row-normalised uni+bigram TF-IDF of long texts (EURLEX57K) a weak one. One label
tree is built on the kept part and shared by every candidate C (the tree does not depend on C), each C
trains a PLT on the kept part, and the C whose model ranks the held-out documents best (``metric``) wins.
The caller then trains on all of the training documents with it.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp

from xmc.linear.params import PLTParams
from xmc.linear.plt import PLTLinear
from xmc.metrics import evaluate
from xmc.training import distributed
from xmc.tree import build_label_tree

TUNE_BEAM = 10


def holdout_split(n_docs: int, fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Sorted indices of the kept and the held-out documents (``fraction`` of them, at least one each)."""
    if n_docs < 2:
        raise ValueError(f"choosing C needs at least 2 training documents, found {n_docs}")
    n_held = min(max(1, int(round(fraction * n_docs))), n_docs - 1)
    held = np.random.default_rng(seed).choice(n_docs, size=n_held, replace=False)
    kept = np.ones(n_docs, dtype=bool)
    kept[held] = False
    return np.flatnonzero(kept), np.sort(held)


def tune_C(X: sp.csr_matrix, Y: sp.csr_matrix, params: PLTParams, grid: Sequence[float], holdout: float = 0.1,
           metric: str = "nDCG@5", log: Optional[Callable[[str], None]] = None) -> Tuple[float, Dict[float, dict]]:
    """The C of ``grid`` with the best held-out ``metric``, and every C's held-out P@1/3/5 and nDCG@1/3/5
    (fractions). Ties go to the smaller C (the stronger regulariser, the smaller model)."""
    if not grid:
        raise ValueError("tune_C needs at least one value of C")
    name, _, cutoff = metric.partition("@")
    if name not in ("P", "nDCG") or not cutoff.isdigit() or int(cutoff) < 1:
        raise ValueError(f"tune metric must be P@k or nDCG@k, found {metric!r}")
    k = int(cutoff)
    X, Y = sp.csr_matrix(X), sp.csr_matrix(Y)
    kept, held = holdout_split(X.shape[0], holdout, params.seed)
    X_fit, Y_fit = X[kept], Y[kept]
    # As PLTLinear.fit does: under torchrun rank 0 builds the tree and the others receive it.
    tree = distributed.tree_from_main(lambda: build_label_tree(X_fit, Y_fit, params.tree))
    ks = sorted({1, 3, 5, k})
    names = [f"{m}@{c}" for m in ("P", "nDCG") for c in ks]
    results: Dict[float, dict] = {}
    for C in sorted(float(c) for c in grid):
        model = PLTLinear(params.with_values({"C": C})).fit(X_fit, Y_fit, tree=tree)

        def held_out_figures() -> np.ndarray:
            ids, _ = model.predict_topk(X[held], k=max(5, k), beam=TUNE_BEAM)
            figures = evaluate(Y[held], ids, ks=ks)
            return np.array([figures[n] for n in names], dtype=np.float64)

        # Under torchrun only rank 0 holds the whole model (each rank trained its share of every layer): it
        # scores, and every rank chooses from its figures.
        results[C] = dict(zip(names, distributed.array_from_main(held_out_figures).tolist()))
        if log is not None:
            log(f"C={C:g}: held-out {metric} {100 * results[C][metric]:.2f} ({len(held):,} documents)")
    best = max(results, key=lambda c: (results[c][metric], -c))
    return best, results

