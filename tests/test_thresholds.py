"""Label sets: Platt calibration of the linear PLT's scores, per-label thresholds tuned for F1, and their files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.calibration import PlattCalibration
from xmc.data import XCData
from xmc.datasets.synthetic import SyntheticParams, make_corpus
from xmc.estimator import NotCalibrated
from xmc.linear import Pipeline, PLTLinear
from xmc.metrics import expected_calibration_error, log_loss, set_metrics, topk_outcomes
from xmc.thresholds import PER_LABEL_NPZ, SETTINGS_JSON, Thresholds, tune
from xmc.utils.modeldir import ModelFormatError


@pytest.fixture(scope="module")
def split():
    """A generated corpus: train, and its test split halved into validation and test."""
    c = make_corpus(SyntheticParams(n_labels=100, n_train=3000, n_test=3000, n_features=2000,
                                    avg_labels_per_doc=2, seed=1))
    return c.X_train, c.Y_train, c.X_test[:1500], c.Y_test[:1500], c.X_test[1500:], c.Y_test[1500:]


@pytest.fixture(scope="module")
def tuned(split):
    """A logistic-loss PLT (its sigmoid path products are far from calibrated) tuned on the validation half."""
    X, Y, Xv, Yv, _, _ = split
    return PLTLinear(threads=2, loss="logistic").fit(X, Y).tune_thresholds(Xv, Yv)


def sets_matrix(ids, mask, n_labels):
    rows = np.nonzero(mask)[0]
    return sp.csr_matrix((np.ones(rows.size), (rows, ids[mask])), shape=(ids.shape[0], n_labels))


def test_platt_scaling_recovers_the_parameters_that_made_the_outcomes():
    rng = np.random.default_rng(0)
    scores = np.exp(-rng.exponential(2.0, size=20000))
    truth = 1 / (1 + np.exp(-(1.7 * np.log(scores) + 0.8)))
    outcomes = rng.random(scores.size) < truth
    fitted = PlattCalibration.fit(scores, outcomes)
    assert fitted.a == pytest.approx(1.7, abs=0.1) and fitted.b == pytest.approx(0.8, abs=0.1)
    with pytest.raises(ValueError, match="needs true and false predictions"):
        PlattCalibration.fit(scores[:10], np.ones(10))


def test_calibration_lowers_log_loss_and_ece_on_held_out_documents(split, tuned):
    *_, Xt, Yt = split
    for model in (tuned, PLTLinear(threads=2).fit(*split[:2]).tune_thresholds(split[2], split[3])):
        ids, scores = model.predict_topk(Xt, k=10)
        raw, outcomes = topk_outcomes(Yt, ids, scores)
        calibrated = model.thresholds.calibration(raw)
        assert log_loss(calibrated, outcomes) < 0.9 * log_loss(raw, outcomes)
        assert expected_calibration_error(calibrated, outcomes) < 0.5 * expected_calibration_error(raw, outcomes)
        # Increasing: the ranking is the same.
        probs = model.predict_proba(Xt, k=10)
        assert np.array_equal(np.argsort(-probs[0].toarray()[0], kind="stable")[:10],
                              np.argsort(-model.decision_function(Xt, k=10)[0].toarray()[0], kind="stable")[:10])


def test_per_label_thresholds_beat_a_global_cut_on_held_out_f1(split, tuned):
    *_, Xt, Yt = split
    ids, scores = tuned.predict_topk(Xt, k=10)
    probs = tuned.thresholds.probabilities(scores)
    per_label = set_metrics(Yt, sets_matrix(ids, tuned.thresholds.select(ids, probs), Yt.shape[1]))
    for cut in (0.5, tuned.thresholds.global_threshold):
        one_cut = set_metrics(Yt, sets_matrix(ids, tuned.thresholds.select(ids, probs, cut), Yt.shape[1]))
        assert per_label["micro-F1"] > one_cut["micro-F1"] and per_label["macro-F1"] > one_cut["macro-F1"], cut


def brute_force_best_f1(probs, outcomes, n_true, tp_fixed=0, fp_fixed=0):
    """The best F1 of one label over every threshold at one of its probabilities (or above all of them), with
    ``tp_fixed`` + ``fp_fixed`` pairs in the set whatever the threshold."""
    best = 2 * tp_fixed / max(tp_fixed + fp_fixed + n_true, 1)
    for t in np.unique(probs):
        tp = np.sum(outcomes[probs >= t])
        fp = np.sum(probs >= t) - tp
        best = max(best, 2 * (tp + tp_fixed) / (tp + fp + tp_fixed + fp_fixed + n_true))
    return best


@pytest.mark.parametrize("keep_top", [False, True])
def test_each_label_gets_the_threshold_of_its_best_f1(keep_top):
    rng = np.random.default_rng(3)
    n, k, L = 300, 4, 12
    ids = np.stack([rng.choice(L, size=k, replace=False) for _ in range(n)]).astype(np.int32)
    ids[:5, 3] = -1  # padding is not a prediction
    probs = np.sort(np.round(rng.random((n, k)), 2), axis=1)[:, ::-1].astype(np.float32)  # ties between documents
    truth = sp.csr_matrix((rng.random((n, L)) < 0.15).astype(np.float32))
    thresholds, g = tune(ids, probs, truth, objective="label-F1", keep_top=keep_top, shrinkage=0.0)
    hit = np.take_along_axis(truth.toarray(), np.maximum(ids, 0), axis=1).astype(bool) & (ids >= 0)
    n_true = np.asarray(truth.sum(axis=0)).ravel()
    fixed = np.zeros(ids.shape, dtype=bool)
    fixed[:, 0] = keep_top
    chosen = Thresholds(thresholds, g, keep_top=keep_top).select(ids, probs)
    for label in range(L):
        mine, always = (ids == label) & ~fixed, (ids == label) & fixed
        want = brute_force_best_f1(probs[mine], hit[mine], n_true[label], hit[always].sum(), (~hit[always]).sum())
        taken = chosen & (ids == label)
        assert 2 * np.sum(hit[taken]) / (taken.sum() + n_true[label]) == pytest.approx(want), label


def test_a_hand_made_case_and_the_pull_towards_the_global_threshold():
    # Label 0: probabilities 0.9 (true), 0.8 (false), 0.7 (true), 0.2 (false); label 1: 0.6 and 0.5, both true;
    # label 2 is never proposed. Each document has one candidate.
    ids = np.array([[0], [0], [0], [0], [1], [1]], dtype=np.int32)
    probs = np.array([[0.9], [0.8], [0.7], [0.2], [0.6], [0.5]], dtype=np.float32)
    truth = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 1, 0]],
                                   dtype=np.float32))
    own, global_threshold = tune(ids, probs, truth, objective="label-F1", keep_top=False, shrinkage=0.0)
    # Label 0's best F1 (0.8) cuts between 0.7 and 0.2; label 1's (1.0) keeps both; all pairs: F1 8/9 below 0.5.
    np.testing.assert_allclose(own, [0.45, 0.5, 0.35], rtol=1e-6)
    assert global_threshold == pytest.approx(0.35)
    pulled, _ = tune(ids, probs, truth, objective="label-F1", keep_top=False, shrinkage=2.0)  # two true documents each: halfway to the global one
    np.testing.assert_allclose(pulled, [0.40, 0.425, 0.35], rtol=1e-6)


def reference_micro_ascent(ids, probs, truth, keep_top, sweeps=2):
    """Plain coordinate ascent on micro-F1 over whole-set recomputation: the global threshold first (every
    distinct probability tried, highest on a tie), then each proposed label in id order, twice. Returns the
    chosen (n, k) mask."""
    hit = np.take_along_axis(truth.toarray(), np.maximum(ids, 0), axis=1).astype(bool) & (ids >= 0)
    fixed = np.zeros(ids.shape, dtype=bool)
    if keep_top:
        fixed[:, 0] = ids[:, 0] >= 0
    free = (ids >= 0) & ~fixed
    n_true = truth.nnz

    def micro(cut):
        chosen = fixed | (free & (probs >= cut))
        return 2 * np.sum(chosen & hit) / (chosen.sum() + n_true)

    def best(candidates, cut_with):
        scores = [micro(cut_with(t)) for t in candidates]
        return candidates[int(np.argmax(scores))]

    everything = [np.inf] + sorted(set(probs[free].tolist()), reverse=True)
    g = best(everything, lambda t: np.full(ids.shape, t))
    per_label = {int(label): g for label in np.unique(ids[free])}

    def cut_of(table):
        return np.vectorize(lambda label: table.get(int(label), g))(ids)

    for _ in range(sweeps):
        for label in sorted(per_label):
            mine = [np.inf] + sorted(set(probs[free & (ids == label)].tolist()), reverse=True)
            per_label[label] = best(mine, lambda t: cut_of({**per_label, label: t}))
    return fixed | (free & (probs >= cut_of(per_label)))


@pytest.mark.parametrize("keep_top", [False, True])
def test_micro_f1_ascent_chooses_the_sets_of_the_plain_reference(keep_top):
    rng = np.random.default_rng(11)
    n, k, L = 120, 4, 7
    ids = np.stack([rng.choice(L, size=k, replace=False) for _ in range(n)]).astype(np.int32)
    ids[:4, 3] = -1
    probs = np.sort(np.round(rng.random((n, k)), 2), axis=1)[:, ::-1].astype(np.float32)  # best first
    truth = sp.csr_matrix((rng.random((n, L)) < 0.2).astype(np.float32))
    per_label, global_threshold = tune(ids, probs, truth, keep_top=keep_top)
    sets = Thresholds(per_label, global_threshold, keep_top=keep_top)
    np.testing.assert_array_equal(sets.select(ids, probs), reference_micro_ascent(ids, probs, truth, keep_top))
    # Never below the global threshold's validation micro-F1, which it starts from.
    ours = set_metrics(truth, sets_matrix(ids, sets.select(ids, probs), L))["micro-F1"]
    one_cut = set_metrics(truth, sets_matrix(ids, sets.select(ids, probs, global_threshold), L))["micro-F1"]
    assert ours >= one_cut


def test_keep_top_puts_the_best_label_in_every_set():
    ids = np.array([[2, 0], [1, -1], [-1, -1]], dtype=np.int32)
    probs = np.array([[0.1, 0.05], [0.2, 0.0], [0.0, 0.0]], dtype=np.float32)
    cuts = np.full(3, 0.5, dtype=np.float32)
    np.testing.assert_array_equal(Thresholds(cuts, 0.5).select(ids, probs), [[True, False], [True, False],
                                                                            [False, False]])
    np.testing.assert_array_equal(Thresholds(cuts, 0.5, keep_top=False).select(ids, probs), np.zeros((3, 2), bool))


def test_probabilities_of_an_uncalibrated_linear_model_are_refused_with_the_way_out(split):
    X, Y, *_ = split
    model = PLTLinear(threads=2).fit(X[:500], Y[:500])
    with pytest.raises(NotCalibrated, match="xmc tune-thresholds --model-dir DIR --valid FILE"):
        model.predict_proba(X[:5])
    with pytest.raises(NotCalibrated, match="tune_thresholds"):
        model.predict(X[:5], threshold=0.5)
    assert len(model.predict(X[:5], k=3)[0]) == 3  # top k needs no probability


def test_thresholds_and_calibration_survive_save_and_load_and_tampering_is_caught(split, tmp_path):
    X, Y, Xv, Yv, Xt, _ = split
    pipe = Pipeline(threads=2).fit(XCData(X, Y, X.shape[1], Y.shape[1])).tune_thresholds(Xv, Yv)
    pipe.save(tmp_path / "m")
    loaded = Pipeline.load(tmp_path / "m")
    assert loaded.thresholds.calibration == pipe.thresholds.calibration
    np.testing.assert_array_equal(loaded.thresholds.per_label, pipe.thresholds.per_label)
    assert loaded.predict(Xt, k=10) == pipe.predict(Xt, k=10)
    assert loaded.thresholds.report["documents"] == 1500
    # A forged threshold file is caught by the manifest, named.
    np.savez(tmp_path / "m" / PER_LABEL_NPZ, thresholds=np.zeros(100, dtype=np.float32))
    with pytest.raises(ModelFormatError, match="per_label.npz"):
        Pipeline.load(tmp_path / "m")
    # Thresholds added to a finished model (as `xmc tune-thresholds` does) are listed and checked the same way.
    PLTLinear(threads=2).fit(X, Y).save(tmp_path / "plain")
    plain = PLTLinear.load(tmp_path / "plain").tune_thresholds(Xv, Yv)
    plain.thresholds.add_to(tmp_path / "plain")
    assert PLTLinear.load(tmp_path / "plain").thresholds.global_threshold == plain.thresholds.global_threshold
    settings = json.loads((tmp_path / "plain" / SETTINGS_JSON).read_text())
    settings["calibration"]["a"] = -1.0
    (tmp_path / "plain" / SETTINGS_JSON).write_text(json.dumps(settings))
    with pytest.raises(ModelFormatError, match="thresholds.json"):
        PLTLinear.load(tmp_path / "plain")


def test_a_model_saved_again_without_thresholds_loses_them(split, tmp_path):
    X, Y, Xv, Yv, _, _ = split
    model = PLTLinear(threads=2).fit(X[:1000], Y[:1000]).tune_thresholds(Xv, Yv)
    model.save(tmp_path / "m")
    model.fit(X[:1000], Y[:1000])  # a new fit drops thresholds tuned on the old weights
    assert model.thresholds is None
    model.save(tmp_path / "m")
    assert PLTLinear.load(tmp_path / "m").thresholds is None


def test_a_forged_thresholds_file_is_refused_even_when_the_manifest_matches(split, tmp_path):
    X, Y, Xv, Yv, _, _ = split
    model = PLTLinear(threads=2).fit(X[:1000], Y[:1000]).tune_thresholds(Xv, Yv)
    model.thresholds = Thresholds(np.full(100, 2.0, dtype=np.float32), 0.5, model.thresholds.calibration)
    model.save(tmp_path / "m")
    with pytest.raises(ModelFormatError, match=r"per_label.npz: every threshold must be in \[0, 1\]"):
        PLTLinear.load(tmp_path / "m")
