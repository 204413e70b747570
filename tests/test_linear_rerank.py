"""The linear pipeline's per-label re-ranker: its training sets and scores against references, in the
pipeline, saved and checked on load."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import scipy.sparse as sp

from xmc import _core
from xmc.data import TextData
from xmc.datasets.synthetic import SyntheticParams, make_text_corpus
from xmc.linear import LinearParams
from xmc.linear.params import PLTParams
from xmc.linear.pipeline import Pipeline
from xmc.linear.rerank import WEIGHTS_NPZ, LabelReranker, RerankParams
from xmc.registry import load_model
from xmc.search.reference import activate
from xmc.utils.modeldir import MANIFEST, ModelFormatError, load_arrays, load_json, save_arrays, save_json
from xmc.utils.sparse import csr_arrays, l2_normalize_rows


def small_problem(seed=0, n=200, d=40, L=12, C=5):
    rng = np.random.default_rng(seed)
    X = l2_normalize_rows(sp.random(n, d, density=0.2, random_state=seed, format="csr", dtype=np.float32))
    Y = sp.random(n, L, density=0.15, random_state=seed + 1, format="csr", dtype=np.float32)
    Y.data[:] = 1.0
    proposed = rng.integers(-1, L, size=(n, C)).astype(np.int32)
    return X, Y, proposed


def test_each_label_is_trained_on_its_positives_and_the_documents_it_was_proposed_for():
    X, Y, proposed = small_problem()
    plt = PLTParams(C=1.0, eps=1e-6, max_iter=2000, weight_threshold=0.0, threads=1)
    reranker = LabelReranker.fit(RerankParams(candidates=5, C=2.0), plt, X, Y, proposed)
    Yd = Y.toarray() > 0
    for label in range(Y.shape[1]):
        docs = np.flatnonzero(Yd[:, label] | (proposed == label).any(axis=1))
        Xl = X[docs]
        w, _ = _core.linear_solve_binary(*csr_arrays(Xl), np.where(Yd[docs, label], 1, -1).astype(np.int8),
                                         "squared_hinge", 2.0, 1e-6, 2000, 1.0, 7)
        np.testing.assert_allclose(reranker.W[:, label].toarray().ravel(), w, atol=2e-3)


def test_probabilities_match_the_dense_product():
    X, Y, proposed = small_problem(seed=3)
    reranker = LabelReranker.fit(RerankParams(candidates=5), PLTParams(threads=1), X, Y, proposed)
    ids = proposed[:37]
    Xb = np.hstack([X[:37].toarray(), np.ones((37, 1), dtype=np.float32)])
    dense = activate(Xb @ reranker.W.toarray(), "l3-hinge")
    expected = np.where(ids >= 0, np.take_along_axis(dense, np.maximum(ids, 0), axis=1), 0.0)
    np.testing.assert_allclose(reranker.probabilities(X[:37], ids), expected, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def corpus():
    t = make_text_corpus(SyntheticParams(n_labels=30, n_train=800, n_test=150, n_features=300,
                                         avg_features_per_doc=20.0))
    return TextData(t.train_texts, t.train_labels), TextData(t.test_texts, t.test_labels)


def test_pipeline_blends_its_proposals_and_round_trips(corpus, tmp_path):
    plain = Pipeline(LinearParams(threads=1)).fit(corpus[0])
    model = Pipeline(LinearParams(threads=1, rerank=RerankParams(candidates=12, weight=0.5))).fit(corpus[0])
    assert "re-ranker" in model.stage_seconds
    ids, scores = model.predict_topk(corpus[1], k=5)
    proposed, their = plain.predict_topk(corpus[1], k=12)  # the same trees: the same proposals
    X = model.model.prepare_rows(plain.features(corpus[1]))
    expected = np.where(proposed >= 0, 0.5 * their + 0.5 * model.reranker.probabilities(X, proposed), 0.0)
    for row in range(len(ids)):  # the best five of the twelve proposals by the blend, best first
        np.testing.assert_allclose(scores[row], np.sort(expected[row])[::-1][:5], rtol=1e-5, atol=1e-7)
        assert set(ids[row][ids[row] >= 0]) <= set(proposed[row])
    assert not np.array_equal(ids, plain.predict_topk(corpus[1], k=5)[0])  # the re-ranker moved some labels

    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.rerank_params == model.rerank_params
    np.testing.assert_array_equal(again.predict_topk(corpus[1], k=5)[0], ids)
    assert again.unfitted_copy().rerank_params.candidates == 12

    # A re-hashed file with a label id past the model's: the loader's own check names it.
    path = tmp_path / "m" / "reranker" / WEIGHTS_NPZ
    arrays = load_arrays(path)
    arrays["indices"] = arrays["indices"].copy()
    arrays["indices"][0] = 10**6
    save_arrays(path, arrays)
    manifest = load_json(tmp_path / "m" / MANIFEST)
    data = path.read_bytes()
    manifest["files"]["reranker/" + WEIGHTS_NPZ] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    save_json(tmp_path / "m" / MANIFEST, manifest)
    with pytest.raises(ModelFormatError, match="reranker.npz: indices holds"):
        load_model(tmp_path / "m")


def test_weight_zero_keeps_the_trees_ranking(corpus):
    plain = Pipeline(LinearParams(threads=1)).fit(corpus[0])
    model = Pipeline(LinearParams(threads=1, rerank=RerankParams(candidates=8, weight=0.0))).fit(corpus[0])
    np.testing.assert_array_equal(model.predict_topk(corpus[1], k=5)[0], plain.predict_topk(corpus[1], k=5)[0])


def test_params_are_checked():
    for bad in ({"candidates": -1}, {"weight": 1.5}, {"C": 0}):
        with pytest.raises(ValueError):
            RerankParams(**bad)
