"""Ensembles of label trees: the merge of top-k lists against a plain reference, and the linear model's trees."""
from __future__ import annotations

import numpy as np
import pytest

from xmc.data import TextData
from xmc.datasets.synthetic import SyntheticParams, make_text_corpus
from xmc.linear import LinearParams
from xmc.linear.pipeline import Pipeline
from xmc.registry import load_model
from xmc.search.merge import mean_topk
from xmc.utils.modeldir import MANIFEST, ModelFormatError, load_json, save_json


def reference_mean_topk(parts, k):
    """Per document: sum each label's scores over the parts, divide by their count, best k (ties: smaller id)."""
    n = parts[0][0].shape[0]
    ids, scores = np.full((n, k), -1), np.zeros((n, k))
    for row in range(n):
        sums = {}
        for part_ids, part_scores in parts:
            for label, score in zip(part_ids[row], part_scores[row]):
                if label >= 0:
                    sums[int(label)] = sums.get(int(label), 0.0) + float(score)
        best = sorted(sums.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        for j, (label, total) in enumerate(best):
            ids[row, j], scores[row, j] = label, total / len(parts)
    return ids, scores


@pytest.mark.parametrize("n_parts,width,k", [(1, 4, 4), (3, 5, 5), (2, 6, 3), (4, 2, 7)])
def test_mean_topk_matches_the_reference(n_parts, width, k):
    rng = np.random.default_rng(n_parts * 10 + k)
    parts = []
    for _ in range(n_parts):
        ids = np.stack([rng.choice(12, size=width, replace=False) for _ in range(30)])
        ids[rng.random(ids.shape) < 0.15] = -1  # empty slots
        scores = rng.choice([0.25, 0.5, 0.75, 1.0], size=ids.shape)  # ties on purpose
        parts.append((ids, np.where(ids >= 0, scores, 0.0)))
    got_ids, got_scores = mean_topk(parts, k)
    want_ids, want_scores = reference_mean_topk(parts, k)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-6)
    assert got_ids.dtype == np.int32 and got_scores.dtype == np.float32


def test_mean_topk_of_nothing():
    ids, scores = mean_topk([(np.full((2, 3), -1), np.zeros((2, 3)))], 2)
    assert (ids == -1).all() and (scores == 0).all()
    with pytest.raises(ValueError):
        mean_topk([], 3)


@pytest.fixture(scope="module")
def corpus():
    t = make_text_corpus(SyntheticParams(n_labels=40, n_train=600, n_test=100, n_features=300,
                                         avg_features_per_doc=20.0))
    return TextData(t.train_texts, t.train_labels), TextData(t.test_texts, t.test_labels)


def small_trees(trees: int) -> LinearParams:
    return LinearParams(threads=1, trees=trees).with_values({"tree.max_leaf_size": 4, "tree.branching_factor": 2})


def test_trees_differ_and_the_model_ranks_by_their_mean(corpus, tmp_path):
    model = Pipeline(small_trees(3)).fit(corpus[0])
    assert len(model.trees) == 3
    assert [plt.params.tree.seed for plt in model.trees] == [0, 1, 2]
    assert not np.array_equal(model.trees[0].tree.label_order, model.trees[1].tree.label_order)
    X = model.features(corpus[1])
    want = reference_mean_topk([plt.predict_topk(X, k=5) for plt in model.trees], 5)
    ids, scores = model.predict_topk(corpus[1], k=5)
    np.testing.assert_array_equal(ids, want[0])
    np.testing.assert_allclose(scores, want[1], rtol=1e-6)

    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "linear2").is_dir() and not (tmp_path / "m" / "linear3").exists()
    again = load_model(tmp_path / "m")
    assert again.n_trees == 3 and again.unfitted_copy().n_trees == 3
    np.testing.assert_array_equal(again.predict_topk(corpus[1], k=5)[0], ids)


def test_one_tree_is_the_plain_plt(corpus):
    model = Pipeline(small_trees(1)).fit(corpus[0])
    X = model.features(corpus[1])
    np.testing.assert_array_equal(model.predict_topk(corpus[1], k=5)[0], model.model.predict_topk(X, k=5)[0])


@pytest.mark.parametrize("count", [0, 65, "2", 2.0])
def test_a_forged_tree_count_is_refused(corpus, tmp_path, count):
    model = Pipeline(small_trees(2)).fit(corpus[0])
    model.save(tmp_path / "m")
    manifest = load_json(tmp_path / "m" / MANIFEST)
    manifest["trees"] = count
    save_json(tmp_path / "m" / MANIFEST, manifest)
    with pytest.raises(ModelFormatError, match="'trees' must be an integer"):
        load_model(tmp_path / "m")


def test_a_manifest_naming_more_trees_than_saved_is_refused(corpus, tmp_path):
    model = Pipeline(small_trees(2)).fit(corpus[0])
    model.save(tmp_path / "m")
    manifest = load_json(tmp_path / "m" / MANIFEST)
    manifest["trees"] = 3
    save_json(tmp_path / "m" / MANIFEST, manifest)
    with pytest.raises(ModelFormatError, match="linear2"):
        load_model(tmp_path / "m")


def test_trees_are_checked():
    for bad in (0, 65, 1.5):
        with pytest.raises(ValueError, match="trees"):
            LinearParams(trees=bad)


def test_best_first_sorts_each_row_by_its_new_scores_and_puts_empty_slots_last():
    from xmc.search.merge import best_first

    rng = np.random.default_rng(5)
    ids = rng.integers(-1, 30, size=(40, 8))
    scores = np.round(rng.random((40, 8)), 1)  # ties: the earlier proposal stays first
    got_ids, got = best_first(ids, scores, k=5)
    for row in range(40):
        slots = sorted((j for j in range(8) if ids[row, j] >= 0), key=lambda j: -scores[row, j])[:5]
        pad = 5 - len(slots)
        np.testing.assert_array_equal(got_ids[row], [ids[row, j] for j in slots] + [-1] * pad)
        np.testing.assert_allclose(got[row], [scores[row, j] for j in slots] + [0.0] * pad, rtol=1e-6)
    assert best_first(ids, scores)[0].shape == (40, 8)
    wide_ids, wide = best_first(ids, scores, k=11)  # more than proposed: padded with empty slots
    np.testing.assert_array_equal(wide_ids[:, 8:], -1)
    np.testing.assert_array_equal(wide[:, 8:], 0.0)
    np.testing.assert_array_equal(wide_ids[:, :5], got_ids)
