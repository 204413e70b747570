"""Label sets from ranked predictions: per-label thresholds tuned on validation data, and their files.

A document's label set is the labels of its top k whose probability reaches their label's
threshold; with ``keep_top`` (the default) a document always keeps its best label, since in a
multi-label corpus every document has one. :func:`tune` finds the thresholds on the validation
documents' top k, taking that rule into account:

- the one global threshold that maximises micro-F1;
- ``objective="micro-F1"`` (the default): from there, coordinate ascent on micro-F1 over the
  labels, two sweeps in order of label id; each step moves one label's threshold to the cut of
  its own pairs that gives the best micro-F1 with every other label's threshold held. A label
  moves only where its pairs say its probabilities run high or low against the others', so
  validation micro-F1 can only rise above the global threshold's;
- ``objective="label-F1"``: for every label the threshold of its own best F1, blended with the
  global one by the label's true validation documents n and a pseudo-count m (``shrinkage``),
  ``(n * own + m * global) / (n + m)``: what serves macro-F1 at the cost of micro-F1.

A cut falls only between two distinct validation probabilities of a label, at their midpoint.
A label never proposed keeps the global threshold.

:class:`Thresholds` holds them with the calibration that makes the scores probabilities (see
:mod:`xmc.calibration`), and is saved in a model directory as ``thresholds/thresholds.json``
and ``thresholds/per_label.npz``, both listed and checked by the model's manifest.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import scipy.sparse as sp

from xmc.calibration import PlattCalibration
from xmc.metrics import topk_outcomes
from xmc.utils.modeldir import (ModelFormatError, add_to_manifest, load_arrays, load_json, save_arrays, save_json,
                                verify_files)

DIRECTORY = "thresholds"
SETTINGS_JSON = f"{DIRECTORY}/thresholds.json"
PER_LABEL_NPZ = f"{DIRECTORY}/per_label.npz"
FILES = (SETTINGS_JSON, PER_LABEL_NPZ)
FORMAT = 1
OBJECTIVES = ("micro-F1", "label-F1")
SHRINKAGE = 10.0  # of label-F1 thresholds: in a sweep of 1, 5, 10, 20 on generated data, 10 gave the best F1


def _best_cut(probs: np.ndarray, outcomes: np.ndarray, tp_rest: float, fp_rest: float, n_true: float
              ) -> Tuple[float, float]:
    """(threshold, F1): the cut of one group of pairs (sorted by probability, descending) that maximises F1 when
    the pairs outside the group contribute ``tp_rest`` true and ``fp_rest`` false positives and the truth holds
    ``n_true`` pairs. The highest such threshold wins a tie; above every probability when taking none is best."""
    tp = tp_rest + np.r_[0.0, np.cumsum(outcomes)]
    fp = fp_rest + np.r_[0.0, np.cumsum(1.0 - outcomes)]
    f1 = 2 * tp / np.maximum(tp + fp + n_true, 1.0)
    can_cut = np.r_[True, probs[1:] < probs[:-1], True]  # taking the first j pairs splits no tie
    j = int(np.argmax(np.where(can_cut, f1, -1.0)))
    if j == probs.size:
        return (float(np.float32(probs[-1])) if probs.size else 1.0), float(f1[j])
    # Thresholds are kept as float32: a cut must stay above the first pair left out once rounded to it.
    above = np.nextafter(np.float32(probs[j]), np.float32(np.inf))
    cut = above if j == 0 else max(np.float32((probs[j - 1] + probs[j]) / 2), above)
    return float(min(cut, np.float32(1.0))), float(f1[j])


def _label_groups(probs: np.ndarray, labels: np.ndarray):
    """The pairs' order by (label, probability descending), the labels in that order, and each label's
    [start, end) in it."""
    order = np.lexsort((-probs, labels))
    labels = labels[order]
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]]) if labels.size else np.zeros(0, np.int64)
    return order, labels, starts, np.r_[starts[1:], labels.size].astype(np.int64)


def _micro_ascent(probs: np.ndarray, outcomes: np.ndarray, labels: np.ndarray, thresholds: np.ndarray,
                  tp: float, fp: float, n_true: float, sweeps: int = 2) -> np.ndarray:
    """Coordinate ascent on micro-F1: each label's threshold in turn set to its best cut given the others'.
    ``tp``, ``fp``: those of the pairs no threshold decides (kept top labels)."""
    order, labels, starts, ends = _label_groups(probs, labels)
    probs, outcomes = probs[order], outcomes[order]
    chosen = probs >= thresholds[labels]
    tp += float(outcomes[chosen].sum())
    fp += float((1.0 - outcomes[chosen]).sum())
    for _ in range(sweeps):
        for lo, hi in zip(starts, ends):
            p, o, mine = probs[lo:hi], outcomes[lo:hi], chosen[lo:hi]
            tp_rest, fp_rest = tp - o[mine].sum(), fp - (1.0 - o[mine]).sum()
            label = labels[lo]
            thresholds[label], _ = _best_cut(p, o, tp_rest, fp_rest, n_true)
            chosen[lo:hi] = mine = p >= thresholds[label]
            tp, fp = tp_rest + o[mine].sum(), fp_rest + (1.0 - o[mine]).sum()
    return thresholds


def _own_f1(probs: np.ndarray, outcomes: np.ndarray, labels: np.ndarray, thresholds: np.ndarray,
            tp_fixed: np.ndarray, fp_fixed: np.ndarray, n_true: np.ndarray, shrinkage: float) -> np.ndarray:
    """Each label's cut of best F1 of its own, blended with the global threshold already in ``thresholds``
    (a label whose F1 is 0 at every cut keeps it). ``tp_fixed``, ``fp_fixed``: per label, those of its pairs
    no threshold decides."""
    order, labels, starts, ends = _label_groups(probs, labels)
    probs, outcomes = probs[order], outcomes[order]
    for lo, hi in zip(starts, ends):
        label = labels[lo]
        cut, f1 = _best_cut(probs[lo:hi], outcomes[lo:hi], tp_fixed[label], fp_fixed[label], n_true[label])
        if f1 > 0:
            n = n_true[label]
            thresholds[label] = (n * cut + shrinkage * thresholds[label]) / (n + shrinkage)
    return thresholds


def tune(ids: np.ndarray, probs: np.ndarray, truth: sp.csr_matrix, objective: str = "micro-F1",
         keep_top: bool = True, shrinkage: float = SHRINKAGE) -> Tuple[np.ndarray, float]:
    """(per-label thresholds float32 (n_labels,), global threshold) from validation top-k ``ids`` and their
    ``probs`` (n, k), and the validation ``truth`` (n, n_labels); see the module docstring."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {', '.join(OBJECTIVES)}, found {objective!r}")
    ids = np.asarray(ids)
    p, outcome = topk_outcomes(truth, ids, probs)
    if not p.size:
        raise ValueError("no validation document has a prediction: give validation documents the model can score")
    labels = ids[ids >= 0].astype(np.int64)
    rank = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)[ids >= 0]
    fixed = (rank == 0) if keep_top else np.zeros(p.size, dtype=bool)  # in the set whatever their probability
    n_labels = truth.shape[1]
    tp_fixed = np.bincount(labels[fixed], weights=outcome[fixed], minlength=n_labels)
    fp_fixed = np.bincount(labels[fixed], weights=1.0 - outcome[fixed], minlength=n_labels)
    p, outcome, labels = p[~fixed], outcome[~fixed], labels[~fixed]
    order = np.argsort(-p, kind="stable")
    global_threshold, _ = _best_cut(p[order], outcome[order], tp_fixed.sum(), fp_fixed.sum(), float(truth.nnz))
    thresholds = np.full(n_labels, global_threshold, dtype=np.float64)
    if objective == "micro-F1":
        thresholds = _micro_ascent(p, outcome, labels, thresholds, tp_fixed.sum(), fp_fixed.sum(),
                                   float(truth.nnz))
    else:
        n_true = np.bincount(truth.indices, minlength=n_labels).astype(np.float64)
        thresholds = _own_f1(p, outcome, labels, thresholds, tp_fixed, fp_fixed, n_true, shrinkage)
    return thresholds.astype(np.float32), float(global_threshold)


@dataclass
class Thresholds:
    """Per-label thresholds on probabilities, and the calibration that turns the model's scores into them
    (None when the scores are probabilities already)."""

    per_label: np.ndarray  # float32 (n_labels,), in [0, 1]
    global_threshold: float  # maximises validation micro-F1; the threshold of labels tuned without evidence
    calibration: Optional[PlattCalibration] = None
    report: Optional[Dict[str, Any]] = None  # how they were tuned (documents, k, objective) and validation figures
    keep_top: bool = True  # every document's set holds its best label, whatever its probability

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        return self.calibration(scores) if self.calibration is not None else np.asarray(scores, dtype=np.float32)

    def select(self, ids: np.ndarray, probs: np.ndarray, threshold: Optional[float] = None) -> np.ndarray:
        """Boolean (n, k): which of the top-k ``ids`` are in the set; ``threshold`` replaces the per-label ones
        (the best label stays in with ``keep_top``)."""
        ids = np.asarray(ids)
        cut = threshold if threshold is not None else self.per_label[np.maximum(ids, 0)]
        chosen = (ids >= 0) & (np.asarray(probs) >= cut)
        if self.keep_top and ids.shape[1]:
            chosen[:, 0] |= ids[:, 0] >= 0
        return chosen

    # ---- files ------------------------------------------------------------------
    def save(self, model_dir: Path) -> None:
        """Write the two files into ``model_dir`` (the caller lists them in its manifest)."""
        save_arrays(Path(model_dir) / PER_LABEL_NPZ, {"thresholds": self.per_label.astype(np.float32)})
        save_json(Path(model_dir) / SETTINGS_JSON, {
            "format": FORMAT, "global_threshold": self.global_threshold, "keep_top": self.keep_top,
            "calibration": self.calibration.to_dict() if self.calibration is not None else None,
            "n_labels": int(self.per_label.size), "report": self.report or {}})

    def add_to(self, model_dir: Path) -> None:
        """Save into a finished model directory and list the files in its manifest (replacing earlier ones)."""
        self.save(model_dir)
        add_to_manifest(Path(model_dir), FILES)

    @staticmethod
    def remove(model_dir: Path) -> None:
        """Delete saved thresholds, so a model saved again without them does not list old ones."""
        shutil.rmtree(Path(model_dir) / DIRECTORY, ignore_errors=True)

    @classmethod
    def load(cls, model_dir: Path, manifest: Dict[str, Any], n_labels: int) -> Optional["Thresholds"]:
        """The thresholds saved in ``model_dir``, None when its manifest lists none. Both files are checked
        against the manifest first; a damaged or forged one is a :class:`ModelFormatError` naming it."""
        model_dir = Path(model_dir)
        if not any(rel in manifest.get("files", {}) for rel in FILES):
            return None
        verify_files(model_dir, manifest, FILES)
        settings = load_json(model_dir / SETTINGS_JSON)
        where = model_dir / SETTINGS_JSON
        if not isinstance(settings, dict) or settings.get("format") != FORMAT:
            raise ModelFormatError(f"{where}: expected an object with format {FORMAT}")
        global_threshold = settings.get("global_threshold")
        if not isinstance(global_threshold, (int, float)) or not 0 <= global_threshold <= 1:
            raise ModelFormatError(f"{where}: 'global_threshold' must be a number in [0, 1], found "
                                   f"{global_threshold!r}"[:300])
        try:
            calibration = (PlattCalibration.from_dict(settings["calibration"])
                           if settings.get("calibration") is not None else None)
        except ValueError as e:
            raise ModelFormatError(f"{where}: {e}") from None
        per_label = load_arrays(model_dir / PER_LABEL_NPZ).get("thresholds")
        where = model_dir / PER_LABEL_NPZ
        if per_label is None or per_label.shape != (n_labels,) or per_label.dtype.kind != "f":
            found = "nothing" if per_label is None else f"{per_label.dtype} of shape {per_label.shape}"
            raise ModelFormatError(f"{where}: expected an array 'thresholds' of {n_labels} floats (one per "
                                   f"label of the model), found {found}")
        if not np.all((per_label >= 0) & (per_label <= 1)):
            raise ModelFormatError(f"{where}: every threshold must be in [0, 1]; found "
                                   f"{int(np.sum(~((per_label >= 0) & (per_label <= 1))))} outside")
        keep_top = settings.get("keep_top", False)  # absent in files written before the rule existed
        if not isinstance(keep_top, bool):
            raise ModelFormatError(f"{model_dir / SETTINGS_JSON}: 'keep_top' must be true or false, found "
                                   f"{keep_top!r}"[:300])
        report = settings.get("report") if isinstance(settings.get("report"), dict) else None
        return cls(per_label.astype(np.float32), float(global_threshold), calibration, report, keep_top)
