"""Label strings <-> column ids of the label matrix."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Union

import numpy as np
import scipy.sparse as sp

from xmc.data.errors import UnknownLabelError
from xmc.utils.modeldir import ModelFormatError, load_json, save_json

LABELS_JSON = "labels.json"
_FORMAT_VERSION = 1


def _is_int(label: object) -> bool:
    return isinstance(label, (int, np.integer)) and not isinstance(label, (bool, np.bool_))


class LabelVocab:
    """An ordered list of distinct label strings; id i is ``labels[i]``.

    ``integer``: the labels are integers (an XC file's label ids, or ints given to a scikit-learn-style
    ``fit``), kept as their decimal strings; :meth:`classes` gives them back as ints."""

    def __init__(self, labels: Sequence[str] = (), integer: bool = False) -> None:
        self._labels: List[str] = []
        self._index: Dict[str, int] = {}
        self.integer = bool(integer)
        for lab in labels:
            self._add_new(str(lab))
        if self.integer and not all(lab.lstrip("-").isdigit() for lab in self._labels):
            raise ValueError("an integer vocabulary holds integers only")

    def _add_new(self, lab: str) -> None:
        if lab in self._index:
            raise ValueError(f"label {lab!r} appears twice in the vocabulary")
        self._index[lab] = len(self._labels)
        self._labels.append(lab)

    @classmethod
    def identity(cls, n: int) -> "LabelVocab":
        """Labels "0" .. "n-1": the vocabulary of an XC file's numeric label ids."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return cls([str(i) for i in range(int(n))], integer=True)

    def fit(self, label_lists: Iterable[Iterable[str]]) -> "LabelVocab":
        """Replace the vocabulary by every label seen, in sorted order (so the ids
        do not depend on the order of the documents). When every label is an int
        (not a string of digits), the vocabulary is ``integer`` and sorted by value."""
        seen = set()
        for labels in label_lists:
            seen.update(labels)
        self.integer = bool(seen) and all(_is_int(x) for x in seen)
        self._labels, self._index = [], {}
        for lab in sorted(int(x) for x in seen) if self.integer else sorted({str(x) for x in seen}):
            self._add_new(str(lab))
        return self

    @property
    def labels(self) -> List[str]:
        return list(self._labels)

    def __len__(self) -> int:
        return len(self._labels)

    def classes(self) -> np.ndarray:
        """The labels by id as a numpy array: int64 for an ``integer`` vocabulary, else str objects."""
        if self.integer:
            return np.asarray([int(lab) for lab in self._labels], dtype=np.int64)
        out = np.empty(len(self._labels), dtype=object)
        out[:] = self._labels
        return out

    def __contains__(self, label: object) -> bool:
        return str(label) in self._index

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, LabelVocab) and self._labels == other._labels
                and self.integer == other.integer)

    def id_of(self, label: str) -> int:
        try:
            return self._index[label]
        except KeyError:
            raise UnknownLabelError(f"label {label!r} is not in the vocabulary ({len(self)} labels)") from None

    def encode(self, label_lists: Sequence[Iterable[str]], unknown: str = "error") -> sp.csr_matrix:
        """One row per document, a 1.0 at each of its labels' ids (float32 CSR,
        sorted columns). ``unknown="error"`` raises on a label outside the
        vocabulary naming it and its document; ``"skip"`` drops it; ``"extend"``
        gives each unknown label a column past the vocabulary's (in order of first
        appearance), so metrics count it as a label no prediction can hit."""
        if unknown not in ("error", "skip", "extend"):
            raise ValueError(f"unknown must be 'error', 'skip' or 'extend', got {unknown!r}")
        extra: Dict[str, int] = {}
        indptr = [0]
        indices: List[int] = []
        for doc, labels in enumerate(label_lists):
            if isinstance(labels, str):  # would silently encode its characters
                raise TypeError(f"document {doc}: expected a list of labels, found the string {labels[:40]!r}")
            row = set()
            for lab in labels:
                i = self._index.get(str(lab))
                if i is None:
                    if unknown == "error":
                        raise UnknownLabelError(
                            f"document {doc}: label {str(lab)!r} is not in the vocabulary "
                            f"({len(self)} labels); pass unknown='skip' to drop unseen labels")
                    if unknown == "skip":
                        continue
                    i = extra.setdefault(str(lab), len(self) + len(extra))
                row.add(i)
            indices.extend(sorted(row))
            indptr.append(len(indices))
        return sp.csr_matrix(
            (np.ones(len(indices), dtype=np.float32), np.asarray(indices, dtype=np.int32),
             np.asarray(indptr, dtype=np.int64)), shape=(len(indptr) - 1, len(self) + len(extra)))

    def decode(self, ids) -> Union[str, List[str], List[List[str]]]:
        """Ids to label strings: an int gives a string, a 1-d sequence a list, a
        2-d array (e.g. top-k predictions) or a CSR matrix a list per row."""
        if sp.issparse(ids):
            m = sp.csr_matrix(ids)
            return [self.decode(m.indices[m.indptr[r]:m.indptr[r + 1]]) for r in range(m.shape[0])]
        if isinstance(ids, (int, np.integer)):
            return self._label_at(int(ids))
        arr = np.asarray(ids)
        if arr.ndim == 2:
            return [[self._label_at(int(i)) for i in row] for row in arr]
        if arr.ndim != 1:
            raise ValueError(f"decode expects an int, a 1-d or 2-d array of ids, got shape {arr.shape}")
        return [self._label_at(int(i)) for i in arr]

    def _label_at(self, i: int) -> str:
        if not 0 <= i < len(self._labels):
            raise IndexError(f"label id {i} is outside [0, {len(self._labels)})")
        return self._labels[i]

    def save(self, directory: Union[str, os.PathLike]) -> None:
        """Write ``labels.json`` into ``directory`` (atomically)."""
        extra = {"integer": True} if self.integer else {}
        save_json(Path(directory) / LABELS_JSON, {"format_version": _FORMAT_VERSION, "labels": self._labels,
                                                  **extra})

    @classmethod
    def load(cls, directory: Union[str, os.PathLike]) -> "LabelVocab":
        path = Path(directory) / LABELS_JSON
        obj = load_json(path)
        if not isinstance(obj, dict) or not isinstance(obj.get("labels"), list):
            raise ModelFormatError(f"{path}: expected an object with a 'labels' list")
        version = obj.get("format_version")
        if not isinstance(version, int) or version > _FORMAT_VERSION:
            raise ModelFormatError(f"{path}: format version {version!r} is newer than this xmc reads "
                                   f"({_FORMAT_VERSION}); upgrade xmc")
        labels = obj["labels"]
        if not all(isinstance(x, str) for x in labels):
            raise ModelFormatError(f"{path}: every label must be a string")
        integer = obj.get("integer", False)
        if not isinstance(integer, bool):
            raise ModelFormatError(f"{path}: 'integer' must be true or false, found {integer!r}"[:200])
        try:
            return cls(labels, integer=integer)
        except ValueError as e:
            raise ModelFormatError(f"{path}: {e}") from None
