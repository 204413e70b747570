"""The nearest-neighbour re-ranking of the linear pipeline: against a dense reference, in the pipeline, saved."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.data import TextData
from xmc.datasets.synthetic import SyntheticParams, make_text_corpus
from xmc.linear import LinearParams
from xmc.linear.neighbours import ARRAYS_NPZ, NeighbourParams, NeighbourScorer
from xmc.linear.pipeline import Pipeline
from xmc.registry import load_model
from xmc.utils.modeldir import ModelFormatError, load_arrays, save_arrays


def reference_scores(X, Y, Xq, labels, k, power):
    """Dense: cosine similarities, the k largest positive ones, weights sim ** power summing to 1."""
    def unit(A):
        A = A.toarray().astype(np.float64)
        n = np.linalg.norm(A, axis=1, keepdims=True)
        return A / np.where(n == 0, 1, n)
    sims = unit(Xq) @ unit(X).T
    out = np.zeros(labels.shape)
    Yd = Y.toarray() > 0
    for i in range(sims.shape[0]):
        top = np.argsort(-sims[i])[:k]
        top = top[sims[i, top] > 0]
        w = sims[i, top] ** power
        w = w / w.sum() if w.size else w
        for j, label in enumerate(labels[i]):
            if label >= 0:
                out[i, j] = float(w @ Yd[top, label])
    return out


def test_scores_match_the_dense_reference():
    rng = np.random.default_rng(0)
    X = sp.random(300, 50, density=0.1, random_state=1, format="csr", dtype=np.float32)
    Y = sp.random(300, 20, density=0.1, random_state=2, format="csr", dtype=np.float32)
    Xq = sp.random(40, 50, density=0.1, random_state=3, format="csr", dtype=np.float32)
    labels = rng.integers(-1, 20, size=(40, 6))
    scorer = NeighbourScorer(NeighbourParams(k=7, power=2.0), X, Y)
    np.testing.assert_allclose(scorer.scores(Xq, labels), reference_scores(X, Y, Xq, labels, 7, 2.0), atol=1e-5)


@pytest.fixture(scope="module")
def corpus():
    t = make_text_corpus(SyntheticParams(n_labels=30, n_train=800, n_test=150, n_features=300,
                                         avg_features_per_doc=20.0))
    return TextData(t.train_texts, t.train_labels), TextData(t.test_texts, t.test_labels)


def test_pipeline_reranks_its_proposals_and_round_trips(corpus, tmp_path):
    plain = Pipeline(LinearParams(threads=1)).fit(corpus[0])
    params = LinearParams(threads=1, neighbours=NeighbourParams(k=10, weight=0.5, pool=12))
    model = Pipeline(params).fit(corpus[0])
    ids, scores = model.predict_topk(corpus[1], k=5)
    proposed, their = plain.predict_topk(corpus[1], k=12)
    X = plain.features(corpus[1])
    expected = 0.5 * their + 0.5 * model.neighbours.scores(X, proposed)
    for row in range(len(ids)):  # the best five of the twelve proposals by the blend, best first
        np.testing.assert_allclose(scores[row], np.sort(expected[row])[::-1][:5], rtol=1e-5)
        assert set(ids[row]) <= set(proposed[row])
    assert not np.array_equal(ids, plain.predict_topk(corpus[1], k=5)[0])  # the votes moved some labels

    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.neighbour_params == model.neighbour_params
    np.testing.assert_array_equal(again.predict_topk(corpus[1], k=5)[0], ids)
    assert again.unfitted_copy().neighbour_params.k == 10

    arrays = load_arrays(tmp_path / "m" / "neighbours" / ARRAYS_NPZ)
    arrays["Y.indices"] = arrays["Y.indices"].copy()
    arrays["Y.indices"][0] = 10**6  # a label the model does not have
    save_arrays(tmp_path / "m" / "neighbours" / ARRAYS_NPZ, arrays)
    from xmc.utils.modeldir import MANIFEST, load_json, save_json
    manifest = load_json(tmp_path / "m" / MANIFEST)  # re-hash so the loader's own check is what fails
    import hashlib
    data = (tmp_path / "m" / "neighbours" / ARRAYS_NPZ).read_bytes()
    manifest["files"]["neighbours/" + ARRAYS_NPZ] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    save_json(tmp_path / "m" / MANIFEST, manifest)
    with pytest.raises(ModelFormatError, match="neighbours.npz: Y.indices holds"):
        load_model(tmp_path / "m")


def test_params_are_checked():
    for bad in ({"k": -1}, {"weight": 1.5}, {"power": 0}, {"pool": 0}):
        with pytest.raises(ValueError):
            NeighbourParams(**bad)
