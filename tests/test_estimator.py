"""The scikit-learn-style API every model shares (xmc.estimator): keyword settings, fit(X, y) with label lists,
classes_, predict, predict_proba, decision_function; and the README's example of it."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.data import TextData
from xmc.datasets.synthetic import SyntheticParams, make_corpus, make_text_corpus
from xmc.linear import LinearParams, Pipeline, PLTLinear, PLTParams

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sparse():
    c = make_corpus(SyntheticParams(n_labels=30, n_train=1200, n_test=300, n_features=600, seed=4))
    return c.X_train, c.Y_train, c.X_test, c.Y_test


@pytest.fixture(scope="module")
def texts():
    c = make_text_corpus(SyntheticParams(n_labels=12, n_train=600, n_test=200, n_features=300, noise=0.3, seed=5))
    return c.train_texts, c.train_labels, c.test_texts, c.test_labels


def test_keyword_settings_reach_the_params_and_params_objects_still_work():
    # threads and seed set what xmc train's --threads and --seed set: the tree builder's too.
    assert PLTLinear(threads=2, C=1.0).params == PLTParams(threads=2, C=1.0, tree={"threads": 2})
    assert PLTLinear(PLTParams(C=2.0), seed=1).params == PLTParams(C=2.0, seed=1, tree={"seed": 1})
    assert PLTLinear(tree__max_leaf_size=50).params.tree.max_leaf_size == 50
    assert Pipeline(C=1.0, tfidf__min_df=2).params == LinearParams(C=1.0, tfidf={"min_df": 2})
    assert Pipeline(PLTParams(C=3.0)).params == PLTParams(C=3.0)
    with pytest.raises(ValueError, match="Cee: no such field in PLTParams"):
        PLTLinear(Cee=1.0)
    with pytest.raises(TypeError, match="PLTLinear takes PLTParams"):
        PLTLinear(LinearParams().tfidf)


def test_scikit_learn_clones_an_unfitted_copy(sparse):
    base = pytest.importorskip("sklearn.base")
    X, Y, *_ = sparse
    model = PLTLinear(threads=1, C=1.0).fit(X, Y)
    copy = base.clone(model)
    assert copy.params == model.params and copy.tree is None
    assert copy.set_params(C=2.0).params.C == 2.0


def test_string_labels_round_trip_through_fit_predict_save_and_load(texts, tmp_path):
    train_texts, train_labels, test_texts, test_labels = texts
    model = Pipeline(threads=1).fit(train_texts, train_labels)
    assert list(model.classes_) == sorted({label for labels in train_labels for label in labels})
    predicted = model.predict(test_texts, k=2)
    assert all(len(row) == 2 and all(isinstance(label, str) for label in row) for row in predicted)
    # Most documents' best label is one of theirs: the labels are the original strings.
    assert np.mean([row[0] in labels for row, labels in zip(predicted, test_labels)]) > 0.6
    model.save(tmp_path / "m")
    assert Pipeline.load(tmp_path / "m").predict(test_texts, k=2) == predicted


def test_a_feature_matrix_with_int_or_string_labels(sparse, tmp_path):
    X, Y, Xt, Yt = sparse
    ids = [list(np.flatnonzero(row) * 10 + 3) for row in Y.toarray()]  # labels 3, 13, 23, ...
    for model in (Pipeline(threads=1), PLTLinear(threads=1)):
        model.fit(X, ids)
        assert list(model.classes_) == [10 * j + 3 for j in range(30)] and model.classes_.dtype == np.int64
        predicted = model.predict(Xt, k=3)
        assert all(type(label) is int for label in predicted[0])
        model.save(tmp_path / type(model).__name__)
        again = type(model).load(tmp_path / type(model).__name__)
        assert again.predict(Xt, k=3) == predicted and list(again.classes_) == list(model.classes_)
    names = [[f"tag{j}" for j in np.flatnonzero(row)] for row in Y.toarray()]
    model = PLTLinear(threads=1).fit(X, names)
    truth = [[f"tag{j}" for j in np.flatnonzero(row)] for row in Yt.toarray()]
    assert np.mean([row[0] in labels for row, labels in zip(model.predict(Xt, k=1), truth)]) > 0.5
    # A 0/1 indicator matrix: the columns are the labels, also when saved where named labels were.
    PLTLinear(threads=1).fit(X, Y).save(tmp_path / "PLTLinear")
    assert list(PLTLinear.load(tmp_path / "PLTLinear").classes_) == list(range(30))


def test_bad_labels_are_refused_with_what_was_found(sparse):
    X, Y, *_ = sparse
    with pytest.raises(TypeError, match="mixes int and str"):
        PLTLinear().fit(X[:2], [[1], ["a"]])
    with pytest.raises(TypeError, match=r"y\[1\]: expected a list of labels, found 'ab'"):
        PLTLinear().fit(X[:2], [["a"], "ab"])
    with pytest.raises(ValueError, match="X has 5 documents but y has 2"):
        Pipeline().fit(X[:5], [["a"], ["b"]])


def test_predict_proba_and_decision_function_hold_the_top_k_by_classes(sparse):
    X, Y, Xt, Yt = sparse
    model = PLTLinear(threads=1).fit(X, [[f"t{j}" for j in np.flatnonzero(r)] for r in Y.toarray()])
    raw = model.decision_function(Xt, k=4)
    ids, scores = model.predict_topk(Xt, k=4)
    assert raw.shape == (300, 30) and np.all(np.diff(raw.indptr) == 4)
    np.testing.assert_allclose(np.sort(raw[0].data)[::-1], scores[0])
    model.tune_thresholds(Xt[:150], [[f"t{j}" for j in np.flatnonzero(r)] for r in Yt[:150].toarray()])
    probs = model.predict_proba(Xt, k=4)
    assert probs.shape == (300, 30) and 0 <= probs.data.min() and probs.data.max() <= 1
    best = model.classes_[probs[0].indices[np.argmax(probs[0].data)]]
    assert best == model.predict(Xt[:1], k=1)[0][0]
    # With thresholds, predict returns the sets: as many labels per document as pass, not always k.
    sizes = {len(row) for row in model.predict(Xt[150:], k=4)}
    assert len(sizes) > 1 and max(sizes) <= 4


def test_a_deep_model_takes_texts_and_label_lists(texts, tmp_path):
    pytest.importorskip("torch")
    from xmc.models.attentionxml import AttentionXML

    train_texts, train_labels, test_texts, test_labels = texts
    model = AttentionXML(embedding__source="random", embedding__dim=16, hidden=16, fc_sizes=[16], epochs=2,
                         batch_size=32, lr=1e-2, threads=2)
    assert model.params.training.lr == 1e-2 and model.params.embedding.dim == 16
    assert model.params.training.threads == model.params.tree.threads == 2
    model.fit(train_texts, train_labels, progress=False, log=None)
    assert set(model.classes_) == {label for labels in train_labels for label in labels}
    probs = model.predict_proba(test_texts, k=3)  # sigmoid outputs: probabilities without calibration
    assert probs.shape == (200, 12) and probs.data.max() <= 1
    model.tune_thresholds(test_texts[:100], test_labels[:100])
    assert model.thresholds.calibration is None  # "auto": a deep model's scores are probabilities already
    model.save(tmp_path / "m")
    loaded = AttentionXML.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.thresholds.per_label, model.thresholds.per_label)
    assert loaded.predict(test_texts[100:], k=3) == model.predict(test_texts[100:], k=3)


def test_the_readme_example_of_the_scikit_learn_style_api_runs(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    example = next(block for block in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
                   if "classes_" in block)
    c = make_text_corpus(SyntheticParams(n_labels=10, n_train=300, n_test=100, n_features=200, seed=6))
    monkeypatch.chdir(tmp_path)
    from xmc.data import write_jsonl

    Path("demo").mkdir()
    for split, texts_, labels in (("train", c.train_texts, c.train_labels), ("dev", c.test_texts[:50],
                                                                             c.test_labels[:50]),
                                  ("test", c.test_texts[50:], c.test_labels[50:])):
        write_jsonl(Path("demo") / f"{split}.jsonl", TextData(texts_, labels))
    exec(compile(example, "README.md", "exec"), {})
