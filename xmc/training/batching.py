"""Batches of token-id sequences, candidate sets over the label tree, and their targets.

Everything here is numpy on the CPU; tensors are made at the last moment so
that the same code feeds CPU and GPU training.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp
import torch

from xmc.metrics import topk_from_scores
from xmc.text.tokens import pad_batch

# Batches are formed from length-sorted pools of this many batches: padding shrinks, order stays random.
_POOL_BATCHES = 50


def epoch_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Shuffled document indices in batches of similar length (the last batch may be smaller)."""
    order = rng.permutation(lengths.size)
    pool = batch_size * _POOL_BATCHES
    batches: List[np.ndarray] = []
    for start in range(0, order.size, pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, chunk.size, batch_size)]
    for b in rng.permutation(len(batches)):
        yield batches[b]


def eval_batches(lengths: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """All documents once, length-sorted (fast), in batches; callers scatter results back by index."""
    order = np.argsort(lengths, kind="stable")
    for start in range(0, order.size, batch_size):
        yield order[start:start + batch_size]


def tensors(docs: Sequence[np.ndarray], index: np.ndarray, max_len: int,
            device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    ids, mask = pad_batch([docs[i] for i in index], max_len=max_len)
    return ids.to(device), mask.to(device)


def row_targets(Y: sp.csr_matrix, rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """float32 (B, C): 1 where candidates[b, c] is a positive column of row rows[b] of Y."""
    n_cols = np.int64(Y.shape[1])
    sub = Y[rows]
    row_of = np.repeat(np.arange(rows.size, dtype=np.int64), np.diff(sub.indptr))
    positive_keys = row_of * n_cols + sub.indices.astype(np.int64)
    keys = np.arange(rows.size, dtype=np.int64)[:, None] * n_cols + candidates.astype(np.int64)
    return np.isin(keys, positive_keys).astype(np.float32)


def dense_targets(Y: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    return np.asarray(Y[rows].todense(), dtype=np.float32)


def parents_with_positives(predicted: np.ndarray, positives: sp.csr_matrix, rows: np.ndarray,
                           k: int, rng: Optional[np.random.Generator]) -> Tuple[np.ndarray, np.ndarray]:
    """k parents per row: the row's positive nodes first, then the best predicted ones not yet taken.

    AttentionXML trains level d on the children of the top-k nodes of level
    d-1 with the positives forced in, so every positive label is seen. When a
    row has more than k positive nodes, k of them are drawn (rng) or the first k kept.
    """
    B = rows.size
    out = np.zeros((B, k), dtype=np.int64)
    valid = np.zeros((B, k), dtype=bool)
    for b, r in enumerate(rows):
        pos = positives.indices[positives.indptr[r]:positives.indptr[r + 1]]
        if pos.size > k:
            pos = rng.choice(pos, size=k, replace=False) if rng is not None else pos[:k]
        chosen = list(pos)
        taken = set(chosen)
        for node in predicted[b]:
            if len(chosen) >= k:
                break
            if node >= 0 and node not in taken:
                chosen.append(int(node))
                taken.add(int(node))
        out[b, :len(chosen)] = chosen
        valid[b, :len(chosen)] = True
    return out, valid


def top_k(scores: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """(positions, scores), each (n, k), of the k best columns of a dense (n, L) score matrix (ties to the
    smaller position; id -1 and score 0 where a row has fewer than k scored columns)."""
    positions = topk_from_scores(scores, k)
    best = np.where(positions >= 0, np.take_along_axis(scores, np.maximum(positions, 0), axis=1), 0.0)
    return clear_empty_slots(positions, best.astype(np.float32))


def clear_empty_slots(positions: np.ndarray, scores: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Slots without a candidate (a search fills them with score -1.0, or 0 when nothing scored) become
    id -1 and score 0, the documented padding of every model's predict_topk. In place; returns both."""
    empty = scores <= 0
    positions[empty] = -1
    scores[empty] = 0.0
    return positions, scores
