"""Checks the deep-model tests share: the most-frequent-label baseline, and save/load giving the same predictions."""
from pathlib import Path

import numpy as np

from xmc.metrics import evaluate


def head_baseline_p1(model, train, test) -> float:
    """P@1 of always predicting the most frequent training label: what an untrained network ends up doing."""
    counts = np.bincount(model.labels(train).indices, minlength=len(model.vocab))
    return float(model.labels(test)[:, int(counts.argmax())].toarray().mean())


def p_at(model, test, k: int) -> float:
    ids, _ = model.predict_topk(test, k=k)
    return evaluate(model.labels(test), ids, ks=(k,))[f"P@{k}"]


def assert_same_after_loading(model, directory: Path, test, rtol: float = 1e-6) -> None:
    """The model saved in ``directory`` loads and predicts what ``model`` predicts."""
    from xmc.registry import load_model

    ids, scores = model.predict_topk(test, k=5)
    ids2, scores2 = load_model(directory).predict_topk(test, k=5)
    np.testing.assert_array_equal(ids, ids2)
    np.testing.assert_allclose(scores, scores2, rtol=rtol)
