"""Checks on a whole corpus that no single line can tell: documents left empty,
a training set without labels, test labels the model never saw. Each either
raises a DataFormatError or warns once with a count (:class:`DataWarning`)."""
from __future__ import annotations

from typing import Container, Iterable, Optional, Sequence

import numpy as np
import scipy.sparse as sp

from xmc.data.errors import DataFormatError, warn_skipped


def nonempty_rows(empty: np.ndarray, what: str) -> Optional[np.ndarray]:
    """Indices of the documents to train on, or None when none is empty.

    An empty document (an XC line without features, a blank text) carries no
    evidence for any label: it is left out of training with a warning. At
    prediction it is kept, so the output keeps one line per input document.
    """
    empty = np.asarray(empty, dtype=bool)
    n_empty = int(empty.sum())
    if not n_empty:
        return None
    if n_empty == len(empty):
        raise DataFormatError(f"{what}: all {n_empty:,} training documents are empty; nothing to learn from")
    warn_skipped("training data", n_empty, f"{what} left out of training", f"document {int(np.argmax(empty))} "
                 f"(0-based)", "they carry no evidence for any label")
    return np.flatnonzero(~empty)


def check_training_labels(Y: sp.csr_matrix) -> None:
    """Refuse a training set without a single label (e.g. fastText lines whose
    labels lack the ``__label__`` prefix); warn about documents without labels,
    which are kept: they are negatives for every label."""
    if Y.shape[0] and Y.nnz == 0:
        raise DataFormatError(f"training data: none of the {Y.shape[0]:,} documents has a label; fastText labels "
                              f"need the '__label__' prefix, JSON lines a 'labels' list, XC files a label field")
    unlabeled = np.diff(Y.indptr) == 0
    warn_skipped("training data", int(unlabeled.sum()), "documents without labels",
                 f"document {int(np.argmax(unlabeled))} (0-based)", "they are kept as negatives for every label")


# What happens to true labels never seen in training, said in the warning that counts them.
UNSEEN_AS_MISSES = ("no model can predict them: they stay in the truth and count as misses in every metric "
                    "(the field's convention; xmc predict and xmc evaluate agree)")
UNSEEN_DROPPED = "they are left out of these labels (pass unseen='keep' to count them as misses)"
UNSEEN = {"keep": UNSEEN_AS_MISSES, "drop": UNSEEN_DROPPED}


def warn_unknown_labels(label_lists: Iterable[Sequence[str]], known: Container[str], consequence: str) -> int:
    """Warn once about true labels absent from ``known`` (the training labels);
    returns how many label occurrences were unknown."""
    count, docs, first = 0, 0, -1
    for doc, labels in enumerate(label_lists):
        n = sum(1 for lab in labels if lab not in known)
        if n:
            count += n
            docs += 1
            first = doc if first < 0 else first
    warn_skipped("evaluation data", count, f"labels never seen in training (in {docs:,} documents)",
                 f"document {first} (0-based)", consequence)
    return count
