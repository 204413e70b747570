"""Prediction over a corpus file of any size: read in chunks, scored, written as it goes.

:func:`predict_file` is what ``xmc predict`` runs. Memory holds one chunk of documents
and its predictions at a time (plus the model). Under torchrun the chunks are dealt out
to the ranks in turn (chunk c to rank c mod world size); each rank writes its own part,
and rank 0 merges the parts in input order into the one pair of prediction files.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from xmc.data.predictions import PredictionWriter
from xmc.data.stream import DEFAULT_CHUNK_DOCS, iter_corpus
from xmc.estimator import label_sets, probabilities
from xmc.metrics import evaluate, report_cutoffs
from xmc.training import distributed
from xmc.utils.modeldir import load_arrays


@dataclass
class PredictionRun:
    """What one prediction run did: documents, the model's scoring seconds (featurising excluded; the mean of
    the ranks' under torchrun), metrics when the input had labels."""

    n_docs: int
    seconds: float
    metrics: Dict[str, float] = field(default_factory=dict)
    paths: Sequence[Path] = ()


def predict_file(model, input_path: str, out_path: Path, k: int = 5, format: Optional[str] = None,
                 labels_path: Optional[str] = None, chunk_docs: int = DEFAULT_CHUNK_DOCS, threads: int = 0,
                 limits: Optional[dict] = None, on_batch: Optional[Callable[[int], None]] = None,
                 threshold: Optional[float] = None, **predict_options) -> PredictionRun:
    """Top-k predictions of every document of ``input_path`` written to ``out_path`` (text) and
    its .npz twin; P@k/nDCG@k at :func:`~xmc.metrics.report_cutoffs` (1, 3, 5 up to ``k``, and ``k``) when
    the input carries labels, true labels unseen in training counting as misses (as ``xmc evaluate`` does).
    ``seconds`` of the result is the time the model scored (featurising excluded), the mean of the ranks'.

    With ``threshold`` (a global cut on probabilities) or a model with tuned thresholds, the files
    carry label sets and the scores are probabilities (see :func:`xmc.estimator.label_sets`)."""
    out_path = Path(out_path)
    if threshold is not None:
        probabilities(model, np.ones(1, dtype=np.float32))  # a model without probabilities stops before reading
    chunks = iter_corpus(input_path, format=format, labels_path=labels_path, chunk_docs=chunk_docs,
                         threads=threads, **(limits or {}), **model.reader_kwargs())
    ks = report_cutoffs(k)
    names = [f"P@{x}" for x in ks] + [f"nDCG@{x}" for x in ks]
    ranks, me = distributed.world_size(), distributed.rank()
    part = out_path if ranks == 1 else _part_path(out_path, me)
    n_docs, labelled, sums, seconds = 0, 0, np.zeros(2 * len(ks)), 0.0
    with PredictionWriter(part, model.vocab) as out:
        for c, corpus in enumerate(chunks):
            if c % ranks != me:
                continue
            X = model.features(corpus)  # featurised once: raw text would otherwise go through TF-IDF twice
            t = time.perf_counter()
            ids, scores = model.predict_topk(X, k=k, threads=threads, on_batch=on_batch, **predict_options)
            seconds += time.perf_counter() - t
            out.write(ids, *label_sets(model, ids, scores, threshold))
            truth = model.labels(corpus, unseen="keep")
            labelled += int(truth.nnz > 0)
            # P@k and nDCG@k are means over documents: chunk means weighted by chunk size add up exactly.
            found = evaluate(truth, ids, ks=ks)
            sums += np.array([found[name] for name in names]) * ids.shape[0]
            n_docs += ids.shape[0]
    totals = distributed.all_reduce_sum(np.concatenate([[n_docs, labelled, seconds], sums]))
    n_all = int(totals[0])
    metrics = dict(zip(names, totals[3:] / max(n_all, 1))) if totals[1] > 0 else {}
    paths = out.paths
    if ranks > 1:
        distributed.barrier()  # every part is complete before rank 0 reads them
        if distributed.is_main():
            paths = _merge_parts(out_path, ranks, chunk_docs, model.vocab)
        distributed.barrier()
    return PredictionRun(n_docs=n_all, seconds=float(totals[2]) / ranks, metrics=metrics, paths=paths)


def _part_path(out_path: Path, rank: int) -> Path:
    return out_path.with_name(f".{out_path.stem}.rank{rank}{out_path.suffix or '.txt'}")


def _merge_parts(out_path: Path, ranks: int, chunk_docs: int, vocab):
    """Rank parts into one pair of files, chunk by chunk in input order; the parts are removed."""
    parts = [load_arrays(_part_path(out_path, r).with_suffix(".npz")) for r in range(ranks)]
    rows = [p["ids"].shape[0] for p in parts]
    with PredictionWriter(out_path, vocab) as out:
        c = 0
        while True:
            r, start = c % ranks, (c // ranks) * chunk_docs
            if start >= rows[r]:
                break  # chunks are full except the last one, so the first missing chunk ends the input
            stop = min(start + chunk_docs, rows[r])
            in_set = parts[r]["in_set"][start:stop] if "in_set" in parts[r] else None
            out.write(parts[r]["ids"][start:stop], parts[r]["scores"][start:stop], in_set)
            c += 1
    for r in range(ranks):
        for path in (_part_path(out_path, r), _part_path(out_path, r).with_suffix(".npz")):
            path.unlink(missing_ok=True)
    return out.paths
