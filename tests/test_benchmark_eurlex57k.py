"""The scoring pieces of benchmarks/eurlex57k.py: unseen test labels count as misses, and the dev threshold
is the one with the best micro-F1 (checked against trying every cut)."""
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import eurlex57k  # noqa: E402

from xmc.data import LabelVocab  # noqa: E402


def test_labels_unseen_in_training_get_columns_of_their_own():
    vocab = LabelVocab().fit([["a", "b"], ["c"]])
    Y = eurlex57k.truth_matrix([["a", "z"], ["y", "z", "c"]], vocab)
    assert Y.shape == (2, 5)
    assert Y.nnz == 5
    assert Y[0, vocab.id_of("a")] == 1 and Y[1, vocab.id_of("c")] == 1
    ids = np.array([[vocab.id_of("a"), -1], [vocab.id_of("c"), vocab.id_of("b")]])
    m = eurlex57k.ranking_metrics(Y, ids, np.ones(Y.shape[1]))
    assert m["P@1"] == 100.0
    # RP@5: one hit out of min(5, 2) true labels in row 0, one out of min(5, 3) in row 1
    np.testing.assert_allclose(m["RP@5"], 100.0 * (1 / 2 + 1 / 3) / 2)


def test_best_threshold_beats_every_other_cut_on_the_same_data():
    rng = np.random.default_rng(0)
    n, k, L = 60, 6, 12
    Y = sp.csr_matrix((rng.random((n, L)) < 0.2).astype(np.float32))
    ids = np.stack([rng.permutation(L)[:k] for _ in range(n)])
    scores = rng.random((n, k)).round(2)  # ties on purpose
    ids[0, -1], scores[0, -1] = -1, -np.inf
    t = eurlex57k.best_threshold(Y, ids, scores)
    best = eurlex57k.micro_f1(Y, ids, scores, t)
    for other in np.unique(scores[np.isfinite(scores)]):
        assert eurlex57k.micro_f1(Y, ids, scores, other) <= best + 1e-9


def test_reuse_keeps_the_candidate_model_and_out_of_fold_proposals_per_key(tmp_path):
    from types import SimpleNamespace

    import run_xmc_deep

    calls = []

    class Model:
        def __init__(self, value):
            self.value = value

        def save(self, path):
            path.mkdir(parents=True)
            (path / "value").write_text(str(self.value))

        @classmethod
        def load(cls, path):
            return cls(int((path / "value").read_text()))

    class Deep:
        def _out_of_fold_proposals(self, train):
            calls.append("out-of-fold")
            return np.arange(6).reshape(2, 3), np.full((2, 3), 0.5, dtype=np.float32)

    key = {"data": "d", "linear": {"C": 4.0}}
    params = SimpleNamespace(candidate_input=True, candidate_folds=3, training=SimpleNamespace(seed=0),
                             n_candidates=3)
    first = run_xmc_deep.Reuse(tmp_path, key)
    model, seconds = first.candidate_model(lambda: calls.append("fit") or Model(7), Model)
    deep = Deep()
    first.out_of_fold(deep, params)
    deep._out_of_fold_proposals(None)
    assert first.used == [] and calls == ["fit", "out-of-fold"]

    again = run_xmc_deep.Reuse(tmp_path, key)
    model, seconds_again = again.candidate_model(lambda: calls.append("fit") or Model(8), Model)
    deep = Deep()
    loaded_seconds = again.out_of_fold(deep, params)
    ids, scores = deep._out_of_fold_proposals(None)
    assert model.value == 7 and seconds_again == seconds and calls == ["fit", "out-of-fold"]
    np.testing.assert_array_equal(ids, np.arange(6).reshape(2, 3))
    assert again.used == ["candidate model", "out-of-fold proposals"] and loaded_seconds() >= 0

    other = run_xmc_deep.Reuse(tmp_path, {**key, "linear": {"C": 2.0}})  # other settings: computed again
    assert other.candidate_model(lambda: Model(9), Model)[0].value == 9 and other.used == []
