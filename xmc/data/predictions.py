"""Prediction files written by ``xmc predict`` and read back by ``xmc evaluate``.

Text format: one line per input document, best label first,
``label:score label:score ...`` (an empty line when nothing was predicted).
With label sets (a threshold), each line is the set, a ``|``, then the other
labels of the top k, each part best first: ``a:0.91 c:0.55 | b:0.62 d:0.10``.
Beside it, the same predictions as ``.npz``: ``ids`` (int32, n x k, -1 = none),
``scores`` (float32, n x k), ``label_names`` (the model's labels by id) and,
with label sets, ``in_set`` (bool, n x k: which of the ids are in the set).
Evaluation maps labels by name, so it works for every input format.
"""
from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp

from xmc.data.checks import UNSEEN_AS_MISSES, warn_unknown_labels
from xmc.data.xc import XCData
from xmc.metrics import evaluate, inv_propensity, r_precision_at_k, recall_at_k, set_metrics
from xmc.utils.modeldir import load_arrays
from xmc.utils.tempfiles import temp_file_beside


SET_SEPARATOR = "|"  # never a label token, which always holds a ':'


def write_predictions(path: Path, ids: np.ndarray, scores: np.ndarray, vocab,
                      in_set: Optional[np.ndarray] = None) -> Tuple[Path, Path]:
    """Write ``path`` (text) and ``path`` with suffix .npz; both atomically."""
    with PredictionWriter(path, vocab) as writer:
        writer.write(ids, scores, in_set)
    return writer.paths


class PredictionWriter:
    """Prediction files written chunk by chunk, so memory does not grow with the corpus.

    Rows go to hidden temporary files beside ``path`` as they come; leaving the ``with``
    block normally writes the .npz (its arrays streamed from disk, never loaded whole) and
    renames both into place, so ``path`` holds the old predictions or all the new ones.
    After an exception the temporary files are removed and the old files stay.
    """

    def __init__(self, path: Path, vocab) -> None:
        self.path = Path(path)
        self.npz = self.path.with_suffix(".npz")
        self.names = np.asarray([str(n) for n in vocab.labels])
        self.n_rows, self.k, self.with_sets = 0, None, None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._temps: List[Path] = []
        self._text = self._temp_file(self.path, "w", encoding="utf-8")
        self._ids = self._temp_file(self.npz, "wb", tag="ids")
        self._scores = self._temp_file(self.npz, "wb", tag="scores")
        self._in_set = self._temp_file(self.npz, "wb", tag="in_set")

    def _temp_file(self, beside: Path, mode: str, tag: str = "", **kwargs):
        fd, tmp = temp_file_beside(beside, tag)
        self._temps.append(Path(tmp))
        return os.fdopen(fd, mode, **kwargs)

    def write(self, ids: np.ndarray, scores: np.ndarray, in_set: Optional[np.ndarray] = None) -> None:
        """Append the predictions of the next documents: ids (n, k), -1 for none, scores (n, k), and with
        label sets ``in_set`` (bool (n, k)); every chunk of a file has sets, or none has."""
        ids, scores = np.asarray(ids), np.asarray(scores)
        if ids.ndim != 2 or ids.shape != scores.shape or (in_set is not None and np.shape(in_set) != ids.shape):
            raise ValueError(f"ids, scores and in_set must be (n, k) arrays of one shape; got {ids.shape}, "
                             f"{scores.shape} and {None if in_set is None else np.shape(in_set)}")
        if self.k is None:
            self.k, self.with_sets = ids.shape[1], in_set is not None
        elif ids.shape[1] != self.k:
            raise ValueError(f"every chunk must have k={self.k} columns; got {ids.shape[1]}")
        elif self.with_sets != (in_set is not None):
            raise ValueError("every chunk must have label sets, or none")
        lines = []
        for r, (row_ids, row_scores) in enumerate(zip(ids, scores)):
            keep = row_ids >= 0
            if in_set is None:
                lines.append(self._tokens(row_ids[keep], row_scores[keep]))
                continue
            member = np.asarray(in_set[r], dtype=bool) & keep
            rest = ~member & keep
            lines.append(" ".join(part for part in (self._tokens(row_ids[member], row_scores[member]), SET_SEPARATOR,
                                                    self._tokens(row_ids[rest], row_scores[rest])) if part))
        if lines:
            self._text.write("\n".join(lines) + "\n")
        np.ascontiguousarray(ids, dtype=np.int32).tofile(self._ids)
        np.ascontiguousarray(scores, dtype=np.float32).tofile(self._scores)
        if in_set is not None:
            np.ascontiguousarray(in_set, dtype=np.bool_).tofile(self._in_set)
        self.n_rows += ids.shape[0]

    def _tokens(self, ids: np.ndarray, scores: np.ndarray) -> str:
        return " ".join(f"{self.names[i]}:{s:.6g}" for i, s in zip(ids, scores))

    @property
    def paths(self) -> Tuple[Path, Path]:
        return self.path, self.npz

    def __enter__(self) -> "PredictionWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._finish()
        finally:
            for f in (self._text, self._ids, self._scores, self._in_set):
                f.close()
            for tmp in self._temps:
                if tmp.exists():
                    tmp.unlink()

    def _finish(self) -> None:
        k = self.k or 0
        for f in (self._text, self._ids, self._scores, self._in_set):
            f.flush()
            os.fsync(f.fileno())
        fd, npz_tmp = temp_file_beside(self.npz)
        os.close(fd)
        self._temps.append(Path(npz_tmp))
        # Stored (not deflated) members with .npy headers, as save_arrays writes and load_arrays reads.
        with zipfile.ZipFile(npz_tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            text_tmp, ids_tmp, scores_tmp, in_set_tmp = self._temps[:4]
            members = [("ids", ids_tmp, np.int32), ("scores", scores_tmp, np.float32)]
            if self.with_sets:
                members.append(("in_set", in_set_tmp, np.bool_))
            for name, raw, dtype in members:
                with zf.open(f"{name}.npy", "w", force_zip64=True) as member, open(raw, "rb") as src:
                    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                              "shape": (self.n_rows, k)}
                    np.lib.format.write_array_header_1_0(member, header)
                    shutil.copyfileobj(src, member, 1 << 20)
            with zf.open("label_names.npy", "w") as member:
                np.lib.format.write_array(member, self.names, allow_pickle=False)
        with open(npz_tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(text_tmp, self.path)
        os.replace(npz_tmp, self.npz)


@dataclass
class Predictions:
    """A prediction file's contents: per document, label names and scores best first, and with label sets
    which of them are in the set (None for a file without sets)."""

    labels: List[List[str]]
    scores: List[List[float]]
    in_set: Optional[List[List[bool]]] = None
    label_names: Optional[List[str]] = None  # the model's labels, from a .npz


def read_predictions(path: Path) -> Predictions:
    """The predictions of either file kind."""
    path = Path(path)
    if path.suffix == ".npz":
        return _read_npz(path)
    labels, scores, sets = [], [], []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{line_no}: expected UTF-8 text of label:score pairs, found byte "
                                 f"0x{raw[e.start]:02x} at column {e.start + 1}; give the .txt or .npz file "
                                 f"that xmc predict writes") from None
            row_labels, row_scores, row_set = _parse_line(line, path, line_no)
            if sets and (row_set is None) != (sets[0] is None):
                raise ValueError(f"{path}:{line_no}: {'lacks' if row_set is None else 'has'} the '|' that ends a "
                                 f"label set, unlike line 1; give a file as xmc predict writes it")
            labels.append(row_labels)
            scores.append(row_scores)
            sets.append(row_set)
    with_sets = bool(sets) and sets[0] is not None
    return Predictions(labels, scores, sets if with_sets else None)


def _parse_line(line: str, path: Path, line_no: int) -> Tuple[List[str], List[float], Optional[List[bool]]]:
    """(labels, scores, in_set or None) of one text line, ranked by score when it holds a set."""
    row_labels, row_scores, members = [], [], None
    for token in line.split():
        if token == SET_SEPARATOR:
            if members is not None:
                raise ValueError(f"{path}:{line_no}: expected one '|' between the label set and the other labels, "
                                 f"found two")
            members = len(row_labels)
            continue
        name, sep, value = token.rpartition(":")
        try:
            if not sep or not name:
                raise ValueError
            row_scores.append(float(value))
        except ValueError:
            raise ValueError(f"{path}:{line_no}: expected label:score, found {token[:40]!r}") from None
        row_labels.append(name)
    if members is None:
        return row_labels, row_scores, None
    # The set comes first on the line; the ranking is by score across both parts (ties keep the line's order).
    order = sorted(range(len(row_scores)), key=lambda j: -row_scores[j])
    return ([row_labels[j] for j in order], [row_scores[j] for j in order], [j < members for j in order])


def _read_npz(path: Path) -> Predictions:
    arrays = load_arrays(path)
    missing = [name for name in ("ids", "scores", "label_names") if name not in arrays]
    if missing:
        raise ValueError(f"{path}: array {missing[0]!r} is missing; expected the .npz that xmc predict writes")
    ids, names = arrays["ids"], [str(n) for n in arrays["label_names"]]
    in_set = arrays.get("in_set")
    if ids.ndim != 2 or arrays["scores"].shape != ids.shape or (in_set is not None and in_set.shape != ids.shape):
        raise ValueError(f"{path}: 'ids', 'scores' and 'in_set' must be (n, k) arrays of one shape; found "
                         f"{ids.shape}, {arrays['scores'].shape} and {None if in_set is None else in_set.shape}")
    if ids.size and (ids.min() < -1 or ids.max() >= len(names)):
        raise ValueError(f"{path}: 'ids' must be label ids in [0, {len(names)}) or -1; found {int(ids.min())}.."
                         f"{int(ids.max())}")
    labels = [[names[i] for i in row if i >= 0] for row in ids]
    scores = [[float(s) for i, s in zip(r, sc) if i >= 0] for r, sc in zip(ids, arrays["scores"])]
    sets = None if in_set is None else [[bool(m) for i, m in zip(r, ms) if i >= 0] for r, ms in zip(ids, in_set)]
    return Predictions(labels, scores, sets, names)


def _truth_label_names(corpus) -> List[List[str]]:
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
    """Metrics of a prediction file against a corpus with labels (any format), as fractions: the ranking
    metrics, and when the file holds label sets the set metrics (micro-F1, macro-F1, HL, subset-acc).

    True labels never seen in training (known from ``train``, or from the label
    names a ``.npz`` prediction file carries) stay in the truth, counted in a
    :class:`~xmc.data.DataWarning`: no model can predict them, so recall and
    nDCG count them as misses. The labels of macro-F1 and Hamming loss are the
    model's (from a ``.npz``, or those of ``train``) and the truth's."""
    predictions = read_predictions(path)
    predicted = predictions.labels
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
    elif predictions.label_names is not None:
        known = set(predictions.label_names)
    if known is not None:
        warn_unknown_labels(truth_names, known, UNSEEN_AS_MISSES)
        for name in predictions.label_names or sorted(known):
            index.setdefault(name, len(index))
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
    for kk in ks:
        metrics[f"RP@{kk}"] = r_precision_at_k(Y_true, ids, kk)
    if predictions.in_set is not None:
        sets = [[name for name, member in zip(row, members) if member]
                for row, members in zip(predicted, predictions.in_set)]
        metrics.update(set_metrics(Y_true, _encode(sets, index)[:, :n_labels]))
    return metrics
