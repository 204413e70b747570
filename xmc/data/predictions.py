"""Prediction files written by ``xmc predict`` and read back by ``xmc evaluate``.

Text format: one line per input document, best label first,
``label:score label:score ...`` (an empty line when nothing was predicted).
Beside it, the same predictions as ``.npz``: ``ids`` (int32, n x k, -1 = none),
``scores`` (float32, n x k) and ``label_names`` (the model's labels by id).
Evaluation maps labels by name, so it works for every input format.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp

from xmc.utils.modeldir import atomic_write_bytes, load_arrays, save_arrays


def write_predictions(path: Path, ids: np.ndarray, scores: np.ndarray, vocab) -> Tuple[Path, Path]:
    """Write ``path`` (text) and ``path`` with suffix .npz; both atomically."""
    path = Path(path)
    names = np.asarray([str(n) for n in vocab.labels])
    lines = []
    for row_ids, row_scores in zip(ids, scores):
        keep = row_ids >= 0
        lines.append(" ".join(f"{names[i]}:{s:.6g}" for i, s in zip(row_ids[keep], row_scores[keep])))
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    npz = path.with_suffix(".npz")
    save_arrays(npz, {"ids": ids.astype(np.int32), "scores": scores.astype(np.float32), "label_names": names})
    return path, npz


def read_predictions(path: Path) -> Tuple[List[List[str]], List[List[float]]]:
    """Label names and scores per document, from either file kind."""
    path = Path(path)
    if path.suffix == ".npz":
        arrays = load_arrays(path)
        names = arrays["label_names"]
        labels = [[str(names[i]) for i in row if i >= 0] for row in arrays["ids"]]
        scores = [[float(s) for i, s in zip(r, sc) if i >= 0] for r, sc in zip(arrays["ids"], arrays["scores"])]
        return labels, scores
    labels, scores = [], []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            row_labels, row_scores = [], []
            for token in line.split():
                name, sep, value = token.rpartition(":")
                try:
                    if not sep or not name:
                        raise ValueError
                    row_scores.append(float(value))
                except ValueError:
                    raise ValueError(f"{path}:{line_no}: expected label:score, found {token[:40]!r}") from None
                row_labels.append(name)
            labels.append(row_labels)
            scores.append(row_scores)
    return labels, scores


def _truth_label_names(corpus) -> List[List[str]]:
    from xmc.data import XCData

    if isinstance(corpus, XCData):
        Y = corpus.Y.tocsr()
        return [[str(j) for j in Y.indices[Y.indptr[i]:Y.indptr[i + 1]]] for i in range(Y.shape[0])]
    return [[str(l) for l in labels] for labels in corpus.labels]


def _encode(rows: Sequence[Sequence[str]], index: Dict[str, int]) -> sp.csr_matrix:
    indptr = [0]
    cols: List[int] = []
    for row in rows:
        for name in row:
            cols.append(index.setdefault(name, len(index)))
        indptr.append(len(cols))
    return sp.csr_matrix((np.ones(len(cols), dtype=np.float32), np.asarray(cols, dtype=np.int64), indptr),
                         shape=(len(rows), max(len(index), 1)))


def evaluate_prediction_file(path: Path, truth, ks: Sequence[int] = (1, 3, 5), train=None,
                             A: float = 0.55, B: float = 1.5) -> Dict[str, float]:
    """Metrics of a prediction file against a corpus with labels (any format).

    True labels never seen in training (known from ``train``, or from the label
    names a ``.npz`` prediction file carries) stay in the truth, counted in a
    :class:`~xmc.data.DataWarning`: no model can predict them, so recall and
    nDCG count them as misses."""
    from xmc.data.checks import warn_unknown_labels
    from xmc.metrics import evaluate, inv_propensity, recall_at_k

    predicted, _ = read_predictions(path)
    truth_names = _truth_label_names(truth)
    if len(predicted) != len(truth_names):
        raise ValueError(f"{path} has predictions for {len(predicted):,} documents but the truth file has "
                         f"{len(truth_names):,}; were they made from the same input?")
    index: Dict[str, int] = {}
    for row in predicted:
        for name in row:
            index.setdefault(name, len(index))
    train_names = _truth_label_names(train) if train is not None else []
    known = None
    if train is not None:
        known = {name for row in train_names for name in row}
    elif Path(path).suffix == ".npz":
        known = {str(n) for n in load_arrays(Path(path))["label_names"]}
    if known is not None:
        warn_unknown_labels(truth_names, known, "they stay in the truth and count as misses in recall and nDCG")
    Y_true = _encode(truth_names, index)
    Y_train = _encode(train_names, index) if train is not None else None
    n_labels = len(index)
    Y_true = sp.csr_matrix((Y_true.data, Y_true.indices, Y_true.indptr), shape=(Y_true.shape[0], n_labels))
    k = max(ks)
    ids = np.full((len(predicted), k), -1, dtype=np.int64)
    for i, row in enumerate(predicted):
        row_ids = [index[name] for name in row[:k]]
        ids[i, :len(row_ids)] = row_ids
    inv_prop = None
    if Y_train is not None:
        Y_train = sp.csr_matrix((Y_train.data, Y_train.indices, Y_train.indptr), shape=(Y_train.shape[0], n_labels))
        inv_prop = inv_propensity(Y_train, A=A, B=B)
    metrics = evaluate(Y_true, ids, ks=ks, inv_prop=inv_prop)
    for kk in ks:
        metrics[f"R@{kk}"] = recall_at_k(Y_true, ids, kk)
    return metrics
