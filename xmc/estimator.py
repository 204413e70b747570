"""The scikit-learn-style face that every xmc model shares (:class:`Estimator`), and label sets.

Every model class (``PLTLinear``, ``Pipeline`` and each deep model) inherits :class:`Estimator`:

- ``Model(C=1.0, threads=2)``: keyword settings are fields of the model's params (a field name
  found once, or a dotted path written with ``__``: ``tree__max_leaf_size=50``); ``seed``,
  ``threads``, ``epochs`` and ``device`` set every field that ``xmc train``'s flags of those names
  set. ``Model(params)`` takes a params object as before, and both may be combined.
- ``fit(X, y)``: ``X`` is a sparse feature matrix (linear models) or a list of texts, ``y`` a sparse
  0/1 indicator matrix or one list of labels per document (strings or ints). ``fit(corpus)`` on an
  :class:`~xmc.data.XCData` or :class:`~xmc.data.TextData` works as before.
- ``classes_``: the label of each column, ints or strings as they were given.
- ``predict(X, k=5)``: one list of labels per document, best first: the top k, cut to the labels
  that pass the thresholds when the model has them (:meth:`Estimator.tune_thresholds`) or when
  ``threshold`` is given.
- ``predict_proba(X, k=5)``: a sparse (n_docs, n_labels) matrix, columns ordered as ``classes_``,
  holding the probability of each document's top k labels (the other entries are not stored):
  the deep models' sigmoid outputs, the linear models' scores after calibration.
- ``decision_function(X, k=5)``: the same matrix with the model's raw scores.
- ``tune_thresholds(X_valid, y_valid)``: calibrates the scores (linear models) and tunes one
  threshold per label on validation data (:mod:`xmc.thresholds`); ``save`` keeps them.

A model class provides ``PARAMS``, ``params``, ``predict_topk``, ``n_labels`` and ``vocab`` (a
:class:`~xmc.data.LabelVocab`, or None for label ids); ``CALIBRATE_SCORES`` says whether its scores
need calibration before they are probabilities.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.sparse as sp

from xmc.calibration import PlattCalibration
from xmc.data import LabelVocab, TextData, XCData
from xmc.data.checks import warn_unknown_labels
from xmc.metrics import expected_calibration_error, log_loss, set_metrics, topk_outcomes
from xmc.params import Params
from xmc.thresholds import OBJECTIVES, Thresholds, tune

CALIBRATIONS = ("auto", "platt", "none")
TUNE_K = 10


class NotCalibrated(ValueError):
    """Probabilities were asked of a model whose scores are not probabilities and that was not calibrated."""


# ---- inputs ------------------------------------------------------------------------------------
def _is_indicator(y: Any) -> bool:
    return sp.issparse(y) or (isinstance(y, np.ndarray) and y.ndim == 2 and y.dtype.kind in "biuf")


def label_lists(y: Any) -> List[List[Any]]:
    """One list of labels per document, from a 0/1 indicator matrix (column ids) or from lists of labels."""
    if _is_indicator(y):
        Y = sp.csr_matrix(y)
        return [Y.indices[Y.indptr[i]:Y.indptr[i + 1]][Y.data[Y.indptr[i]:Y.indptr[i + 1]] != 0].tolist()
                for i in range(Y.shape[0])]
    if isinstance(y, (str, bytes)) or not hasattr(y, "__len__"):
        raise TypeError(f"y must be a 0/1 indicator matrix or one list of labels per document, found "
                        f"{type(y).__name__}")
    lists, kinds = [], set()
    for doc, labels in enumerate(y):
        if isinstance(labels, (str, bytes)) or not hasattr(labels, "__iter__"):
            raise TypeError(f"y[{doc}]: expected a list of labels, found {labels!r}"[:200])
        row = [x.item() if isinstance(x, np.generic) else x for x in labels]
        for label in row:
            if isinstance(label, bool) or not isinstance(label, (int, str)):
                raise TypeError(f"y[{doc}]: labels must be strings or ints, found {label!r}"[:200])
            kinds.add(type(label))
        lists.append(row)
    if len(kinds) > 1:
        raise TypeError("y mixes int and str labels; give labels of one kind")
    return lists


def text_corpus(X: Any, y: Any = None) -> TextData:
    """``X`` as a :class:`TextData`: a corpus as it is, or a list of texts with ``y``'s labels (none without)."""
    if isinstance(X, TextData):
        if y is not None:
            raise ValueError("X is a corpus that carries its labels: give y only with a list of texts")
        return X
    if isinstance(X, (str, bytes)) or not isinstance(X, Sequence) or (len(X) and not isinstance(X[0], str)):
        return X  # not texts: the model refuses it with its own message
    if y is None:
        return TextData(list(X), [[] for _ in X])
    labels = label_lists(y)
    if len(labels) != len(X):
        raise ValueError(f"X has {len(X)} documents but y has {len(labels)}")
    return TextData(list(X), labels)


def training_corpus(X: Any, y: Any = None) -> Tuple[Union[XCData, TextData], Optional[LabelVocab]]:
    """What a linear pipeline trains on: the corpus, and the label vocabulary when ``X`` is a feature matrix and
    ``y`` lists of labels (the matrix's columns are then those labels, in the vocabulary's order)."""
    if not sp.issparse(X):
        return text_corpus(X, y), None
    if y is None:
        raise ValueError("fit(X, y) with a feature matrix X needs its labels y")
    X = sp.csr_matrix(X, dtype=np.float32)
    Y, vocab = label_matrix(y)
    if Y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} documents but y has {Y.shape[0]}")
    return XCData(X, sp.csr_matrix(Y, dtype=np.float32), X.shape[1], Y.shape[1]), vocab


def label_matrix(y: Any) -> Tuple[sp.csr_matrix, Optional[LabelVocab]]:
    """(0/1 CSR, vocabulary of its columns): an indicator matrix as it is (no vocabulary: the columns are the
    labels), or lists of labels encoded with a vocabulary fitted to them."""
    if _is_indicator(y):
        return sp.csr_matrix(y), None
    lists = label_lists(y)
    vocab = LabelVocab().fit(lists)
    return vocab.encode(lists), vocab


# ---- label sets --------------------------------------------------------------------------------
def probabilities(model, scores: np.ndarray) -> np.ndarray:
    """``model``'s scores as probabilities: calibrated when it has a calibration; refused when its scores need
    one (``CALIBRATE_SCORES``) and it has none."""
    thresholds: Optional[Thresholds] = getattr(model, "thresholds", None)
    if thresholds is not None and thresholds.calibration is not None:
        return thresholds.calibration(scores)
    if getattr(model, "CALIBRATE_SCORES", False):
        raise NotCalibrated(f"the scores of this {type(model).__name__} are not probabilities (a linear PLT's are "
                            f"products of node scores along the tree) and it has no calibration yet: tune it on "
                            f"validation data first, with `xmc tune-thresholds --model-dir DIR --valid FILE` or "
                            f"model.tune_thresholds(X_valid, y_valid)")
    return np.asarray(scores, dtype=np.float32)


def label_sets(model, ids: np.ndarray, scores: np.ndarray,
               threshold: Optional[float] = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(scores, in_set) of top-k predictions: with ``threshold`` (a global cut on probabilities) or with the
    model's tuned thresholds, the probabilities and a boolean (n, k) mask of the set; otherwise the scores
    as they are and None. Works on any model: the tuned thresholds are its ``thresholds`` attribute."""
    thresholds: Optional[Thresholds] = getattr(model, "thresholds", None)
    if threshold is None and thresholds is None:
        return scores, None
    if threshold is not None and not 0 <= threshold <= 1:
        raise ValueError(f"threshold: expected a probability in [0, 1], found {threshold!r}")
    probs = probabilities(model, scores)
    if thresholds is None:
        return probs, (np.asarray(ids) >= 0) & (probs >= threshold)
    return probs, thresholds.select(ids, probs, threshold)


def _top_k_matrix(ids: np.ndarray, values: np.ndarray, n_labels: int,
                  keep: Optional[np.ndarray] = None) -> sp.csr_matrix:
    """(n, n_labels) CSR of ``values`` at the top-k ``ids`` (those of ``keep`` only, when given)."""
    keep = (ids >= 0) if keep is None else keep & (ids >= 0)
    rows = np.repeat(np.arange(ids.shape[0]), ids.shape[1]).reshape(ids.shape)
    return sp.csr_matrix((values[keep].astype(np.float32), (rows[keep], ids[keep])), shape=(ids.shape[0], n_labels))


def _tuning_report(truth: sp.csr_matrix, ids: np.ndarray, scores: np.ndarray, thresholds: Thresholds
                   ) -> Dict[str, float]:
    """Figures on the validation data the thresholds were tuned on (so better than on new data): the log-loss
    and ECE of the scores before and after calibration, and the set metrics of the global threshold and of
    the per-label ones."""
    raw, outcomes = topk_outcomes(truth, ids, scores)
    probs = thresholds.probabilities(scores)
    calibrated = thresholds.probabilities(raw)
    report = {"log_loss_raw": log_loss(raw, outcomes), "log_loss": log_loss(calibrated, outcomes),
              "ece_raw": expected_calibration_error(raw, outcomes), "ece": expected_calibration_error(calibrated,
                                                                                                      outcomes)}
    for name, cut in (("global", thresholds.global_threshold), ("per_label", None)):
        sets = _top_k_matrix(ids, np.ones(ids.shape, dtype=np.float32), truth.shape[1],
                             thresholds.select(ids, probs, cut))
        report.update({f"{metric}_{name}": value for metric, value in set_metrics(truth, sets).items()})
    return report


class Estimator:
    """The scikit-learn-style methods of every xmc model; see the module docstring."""

    PARAMS: type = Params
    CALIBRATE_SCORES = False  # True: the raw scores are not probabilities (tune_thresholds calibrates them)
    thresholds: Optional[Thresholds] = None  # set by tune_thresholds or load

    @classmethod
    def _params_from(cls, params: Optional[Params], settings: Dict[str, Any]) -> Params:
        """``params`` (or the defaults) with the keyword ``settings`` applied: field names, ``a__b`` paths, or the
        names of the CLI's common flags (:meth:`xmc.params.Params.flag_paths`)."""
        if params is not None and not isinstance(params, cls.PARAMS):
            raise TypeError(f"{cls.__name__} takes {cls.PARAMS.__name__}, got {type(params).__name__}")
        params = params if params is not None else cls.PARAMS()
        if not settings:
            return params
        values = {}
        for name, value in settings.items():
            paths = params.flag_paths(name) or (name.replace("__", "."),)
            values.update({path: value for path in paths})
        return params.with_values(values)

    def get_params(self, deep: bool = True) -> Dict[str, Any]:
        """scikit-learn's protocol (``clone``): the params object is the one constructor argument."""
        return {"params": self.params}

    def set_params(self, **settings) -> "Estimator":
        """A new unfitted state with ``settings`` applied (``params=`` replaces the params object)."""
        params = self._params_from(settings.pop("params", self.params), settings)
        self.__init__(params)
        return self

    # ---- labels -----------------------------------------------------------------------------
    @property
    def classes_(self) -> np.ndarray:
        """The label of each column of ``predict_proba`` (ints or strings, as given to ``fit``)."""
        vocab = getattr(self, "vocab", None)
        return vocab.classes() if vocab is not None else np.arange(self.n_labels)

    def _truth(self, X: Any, y: Any) -> sp.csr_matrix:
        """True labels of validation data in the model's label ids; labels unseen in training are dropped."""
        if y is None:
            if not hasattr(self, "labels"):
                raise ValueError(f"{type(self).__name__} needs y, the true labels of X")
            return self.labels(X)
        vocab = getattr(self, "vocab", None)
        if vocab is None:
            Y = sp.csr_matrix(y) if _is_indicator(y) else LabelVocab.identity(self.n_labels).encode(
                [[str(x) for x in row] for row in label_lists(y)], unknown="skip")
            if Y.shape[1] != self.n_labels:
                raise ValueError(f"y has {Y.shape[1]} columns but the model has {self.n_labels} labels")
            return Y
        lists = label_lists(y)
        warn_unknown_labels(lists, vocab, "they cannot be predicted and are left out")
        return vocab.encode(lists, unknown="skip")

    # ---- prediction -------------------------------------------------------------------------
    def predict(self, X: Any, k: int = 5, threshold: Optional[float] = None) -> List[List[Any]]:
        """One list of labels per document, best first: the top ``k``, and of those only the labels that pass
        the thresholds when the model has tuned ones or ``threshold`` (on probabilities) is given."""
        ids, scores = self.predict_topk(text_corpus(X), k=k)
        _, in_set = label_sets(self, ids, scores, threshold)
        keep = ids >= 0 if in_set is None else in_set
        classes = self.classes_
        return [classes[row[mask]].tolist() for row, mask in zip(ids, keep)]

    def predict_proba(self, X: Any, k: int = 5) -> sp.csr_matrix:
        """(n_docs, n_labels) CSR, columns as ``classes_``: the probability of each document's top ``k`` labels
        (other entries unstored). A linear model must be calibrated first (:meth:`tune_thresholds`)."""
        ids, scores = self.predict_topk(text_corpus(X), k=k)
        return _top_k_matrix(ids, probabilities(self, scores), self.n_labels)

    def decision_function(self, X: Any, k: int = 5) -> sp.csr_matrix:
        """(n_docs, n_labels) CSR, columns as ``classes_``: the model's raw scores of each document's top ``k``
        labels (a linear PLT's path products; a deep model's sigmoid outputs)."""
        ids, scores = self.predict_topk(text_corpus(X), k=k)
        return _top_k_matrix(ids, scores, self.n_labels)

    # ---- thresholds -------------------------------------------------------------------------
    def tune_thresholds(self, X: Any, y: Any = None, k: int = TUNE_K, calibration: str = "auto",
                        objective: str = "micro-F1", keep_top: bool = True,
                        threads: Optional[int] = None) -> "Estimator":
        """Calibrate the scores and tune one threshold per label on validation data (``X``, ``y``; or a
        corpus ``X`` that carries its labels); see :mod:`xmc.thresholds`.

        ``calibration``: "platt" (Platt scaling, :mod:`xmc.calibration`), "none" (the scores are
        probabilities already: the deep models' sigmoid outputs), or "auto": Platt scaling for the models
        whose scores need it (the linear ones), none for the others. ``k``: the validation documents' top k
        are the candidates, as the top k of ``predict`` are. ``objective``: "micro-F1" (coordinate ascent from the
        global threshold) or "label-F1" (each label's own best F1, pulled towards the global threshold: better
        macro-F1, worse micro-F1); ``keep_top``: every set holds the document's best label (see
        :mod:`xmc.thresholds`)."""
        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration: expected one of {', '.join(CALIBRATIONS)}, found {calibration!r}")
        if objective not in OBJECTIVES:
            raise ValueError(f"objective: expected one of {', '.join(OBJECTIVES)}, found {objective!r}")
        if calibration == "none" and self.CALIBRATE_SCORES:
            raise ValueError(f"calibration 'none' leaves the scores of this {type(self).__name__} as they are, "
                             f"which are not probabilities; use 'platt' or 'auto'")
        truth = self._truth(X, y)
        ids, scores = self.predict_topk(text_corpus(X) if y is not None else X, k=k, threads=threads)
        platt = None
        if calibration == "platt" or (calibration == "auto" and self.CALIBRATE_SCORES):
            platt = PlattCalibration.fit(*topk_outcomes(truth, ids, scores))
        probs = platt(scores) if platt is not None else np.asarray(scores, dtype=np.float32)
        per_label, global_threshold = tune(ids, probs, truth, objective=objective, keep_top=keep_top)
        self.thresholds = Thresholds(per_label, global_threshold, platt, keep_top=keep_top)
        self.thresholds.report = {"documents": int(truth.shape[0]), "k": int(k), "objective": objective,
                                  "keep_top": keep_top,
                                  **_tuning_report(truth, ids, scores, self.thresholds)}
        return self

    def _save_thresholds(self, directory: Path) -> None:
        """Write the thresholds (or remove old ones) before the model's manifest is written."""
        if self.thresholds is None:
            Thresholds.remove(directory)
        else:
            self.thresholds.save(directory)

    def _load_thresholds(self, directory: Path, manifest: Dict[str, Any]) -> None:
        self.thresholds = Thresholds.load(Path(directory), manifest, self.n_labels)
