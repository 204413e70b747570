"""Choosing the PLT's C on held-out training documents: the split, the choice, the pipeline that uses it."""
from __future__ import annotations

import numpy as np
import pytest

from xmc.data import TextData
from xmc.datasets.synthetic import SyntheticParams, make_text_corpus
from xmc.linear import LinearParams
from xmc.linear.params import PLTParams, TuneParams
from xmc.linear.pipeline import Pipeline
from xmc.linear.tuning import holdout_split, tune_C
from xmc.registry import load_model
from xmc.tree.params import TreeParams


@pytest.fixture(scope="module")
def corpus():
    t = make_text_corpus(SyntheticParams(n_labels=40, n_train=900, n_test=150, n_features=300,
                                         avg_features_per_doc=20.0))
    return TextData(t.train_texts, t.train_labels), TextData(t.test_texts, t.test_labels)


def test_holdout_split_is_a_seeded_partition():
    kept, held = holdout_split(1000, 0.1, seed=3)
    assert len(held) == 100 and len(kept) == 900
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(1000))
    assert np.array_equal(held, holdout_split(1000, 0.1, seed=3)[1])
    assert not np.array_equal(held, holdout_split(1000, 0.1, seed=4)[1])
    assert [len(part) for part in holdout_split(2, 0.01, seed=0)] == [1, 1]  # at least one document each side
    with pytest.raises(ValueError, match="at least 2 training documents"):
        holdout_split(1, 0.5, seed=0)


def test_tune_C_keeps_the_best_held_out_C(corpus):
    pipe = Pipeline(LinearParams(threads=1))
    X, Y = pipe.prepare(corpus[0])
    # C=1e-4 prunes every weight below the threshold: its ranking is the bias alone and must lose.
    params = PLTParams(threads=1, tree=TreeParams(max_leaf_size=8, branching_factor=2))
    lines = []
    best, results = tune_C(X, Y, params, [1e-4, 1.0], holdout=0.2, metric="P@1", log=lines.append)
    assert best == 1.0
    assert results[1.0]["P@1"] > results[1e-4]["P@1"] + 0.1
    assert set(results) == {1e-4, 1.0} and len(lines) == 2 and "held-out P@1" in lines[0]
    # A tie goes to the smaller C.
    best, _ = tune_C(X, Y, params, [2.0, 2.0 + 1e-9], holdout=0.2)
    assert best == 2.0


def test_pipeline_trains_on_all_documents_with_the_chosen_C(corpus, tmp_path):
    params = LinearParams(threads=1, tune=TuneParams(C=[1e-4, 1.0], holdout=0.2))
    lines = []
    model = Pipeline(params).fit(corpus[0], log=lines.append)
    assert model.params.C == 1.0 and model.model.params.C == 1.0
    assert any("chose C=1" in line for line in lines)
    fixed = Pipeline(LinearParams(threads=1, C=1.0)).fit(corpus[0])
    np.testing.assert_array_equal(model.predict_topk(corpus[1])[0], fixed.predict_topk(corpus[1])[0])
    # A copy trains with the chosen C without choosing again (the candidate refits of LDGN use it).
    copy = model.unfitted_copy()
    assert copy.params.C == 1.0 and copy.params.tune.C == []
    model.save(tmp_path / "m")
    assert load_model(tmp_path / "m").params.C == 1.0


def test_tune_params_are_checked():
    for bad in ({"C": [0.0, 1.0]}, {"holdout": 1.0}, {"metric": "PSP@5"}):
        with pytest.raises(ValueError):
            TuneParams(**bad)
    with pytest.raises(ValueError, match="P@k or nDCG@k"):  # refused before any training
        tune_C(np.eye(4), np.eye(4), PLTParams(), [1.0], metric="PSP@5")
    with pytest.raises(ValueError, match="tune.C"):
        LinearParams().with_settings(["tune.C=[-1]"])
