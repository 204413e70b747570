"""Merging the top-k lists of several models into one: the mean score of every label any of them proposed;
and re-sorting one top-k list by new scores (the linear model's re-rankers).

Ensembles of label trees (omikuji's, AttentionXML's, xmc's ``trees``) score a label by the mean of the
members' scores, a member that did not propose it counting 0: its beam dropped the label, so its own
score would be lower than any it kept.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

TopK = Tuple[np.ndarray, np.ndarray]  # (ids, scores), each (n_docs, width); id -1: an empty slot


def mean_topk(parts: Sequence[TopK], k: int) -> TopK:
    """The k labels of best mean score per document over ``parts``, best first (ties: the smaller id first),
    as (ids int32, scores float32); fewer distinct labels than k leave -1 / 0 slots."""
    if not parts:
        raise ValueError("mean_topk needs at least one top-k list")
    ids = np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts], axis=1)
    scores = np.concatenate([np.asarray(p[1], dtype=np.float64) for p in parts], axis=1)
    n = ids.shape[0]
    out_ids = np.full((n, k), -1, dtype=np.int32)
    out_scores = np.zeros((n, k), dtype=np.float32)
    rows = np.broadcast_to(np.arange(n)[:, None], ids.shape)
    valid = ids >= 0
    if not valid.any():
        return out_ids, out_scores
    # One sort groups each (document, label): sum its scores, then rank every document's labels.
    row, label, score = rows[valid], ids[valid], scores[valid]
    order = np.lexsort((label, row))
    row, label, score = row[order], label[order], score[order]
    first = np.flatnonzero(np.r_[True, (row[1:] != row[:-1]) | (label[1:] != label[:-1])])
    total = np.add.reduceat(score, first) / len(parts)
    row, label = row[first], label[first]
    ranked = np.lexsort((label, -total, row))
    row, label, total = row[ranked], label[ranked], total[ranked]
    rank = np.arange(row.size) - np.searchsorted(row, row, side="left")
    keep = rank < k
    out_ids[row[keep], rank[keep]] = label[keep]
    out_scores[row[keep], rank[keep]] = total[keep]
    return out_ids, out_scores


def best_first(ids: np.ndarray, scores: np.ndarray, k: Optional[int] = None) -> TopK:
    """Each row's proposals ``ids`` sorted by their new ``scores``, best first (a stable sort: ties keep their
    order), the first ``k`` kept (all with None); empty slots (-1) go last with score 0, and rows narrower
    than ``k`` are padded with them."""
    ids = np.asarray(ids)
    ranked = np.where(ids >= 0, scores, -np.inf)
    order = np.argsort(-ranked, axis=1, kind="stable")[:, :k]
    best_ids = np.take_along_axis(ids, order, axis=1)
    best = np.take_along_axis(ranked, order, axis=1).astype(np.float32)
    best[best_ids < 0] = 0.0
    if k is not None and best_ids.shape[1] < k:
        pad = ((0, 0), (0, k - best_ids.shape[1]))
        best_ids, best = np.pad(best_ids, pad, constant_values=-1), np.pad(best, pad)
    return best_ids, best
