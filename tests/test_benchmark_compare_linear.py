"""The pieces of benchmarks/compare_linear.py that decide what is compared: the held-out split, the XC
files every system reads, the ratios against the peers, and xmc's runner with options (--set)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import common  # noqa: E402
import compare_linear  # noqa: E402


def test_holdout_rows_are_disjoint_sorted_and_cover_every_row():
    kept, held = compare_linear.holdout_rows(101, seed=3)
    assert held.size == round(compare_linear.HOLDOUT * 101)
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(101))
    assert np.all(np.diff(kept) > 0) and np.all(np.diff(held) > 0)
    assert np.array_equal(held, compare_linear.holdout_rows(101, seed=3)[1])
    assert not np.array_equal(held, compare_linear.holdout_rows(101, seed=4)[1])


def test_xc_rows_without_features_have_no_trailing_space(tmp_path):
    """omikuji refuses to load a file whose line ends in a space."""
    X = sp.csr_matrix(np.array([[0.5, 0.0], [0.0, 0.0], [0.0, 1.0]], dtype=np.float32))
    Y = sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32))
    path = tmp_path / "a.txt"
    common.write_xc(str(path), X, Y)
    lines = path.read_text().splitlines()
    assert lines == ["3 2 2", "0 0:0.5", "1", "0,1 1:1"]
    X2, Y2 = common.read_xc(str(path))
    assert (X2 != X).nnz == 0 and (Y2 != Y).nnz == 0


def _row(p1, p5, train, dps, rss):
    return {"median": {"P@1": p1, "P@5": p5, "train_seconds": train, "docs_per_second": dps,
                       "peak_rss_bytes": rss}}


def test_ratios_give_every_xmc_row_against_the_fastest_leanest_and_best_peers():
    systems = {"xmc": _row(70.0, 40.0, 1.0, 300.0, 50.0), "pecos": _row(69.0, 41.0, 2.0, 100.0, 200.0),
               "omikuji": _row(69.6, 39.0, 4.0, 150.0, 80.0), "xmc C=1": _row(71.0, 42.0, 3.0, 30.0, 90.0)}
    r = compare_linear.ratios(systems)
    assert set(r) == {"xmc", "xmc C=1"}
    assert r["xmc"] == pytest.approx({
        "train_time_ratio": 0.5, "fastest_train_peer": "pecos", "throughput_ratio": 2.0,
        "fastest_predict_peer": "omikuji", "peak_rss_ratio": 50.0 / 80.0, "leanest_peer": "omikuji",
        "p1_minus_best_peer": 0.4, "best_p1_peer": "omikuji", "p5_minus_best_peer": -1.0, "best_p5_peer": "pecos"})
    assert r["xmc C=1"]["p1_minus_best_peer"] == pytest.approx(1.4)
    assert compare_linear.ratios({"xmc": systems["xmc"]}) == {}


def test_variants_are_xmc_systems_named_by_their_settings(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["x"])
    args = compare_linear.parse_args(["--systems", "xmc", "--variant", "trees=2 C=1", "--split", "valid",
                                      "--datasets", "bibtex"])
    assert list(args.variants) == ["xmc trees=2 C=1"]
    interpreter, cmd = compare_linear.system_command("xmc trees=2 C=1", args)
    assert interpreter == sys.executable
    assert cmd[1:] == ["--set", "trees=2", "--set", "C=1"]
    assert compare_linear.is_xmc("xmc trees=2 C=1") and not compare_linear.is_xmc("pecos")


def test_run_xmc_trains_with_its_settings_and_reports_stage_times(tmp_path):
    rng = np.random.default_rng(0)
    n, d, L = 120, 40, 12
    dense = rng.random((n, L)) < 0.15
    dense[np.arange(n), rng.integers(0, L, n)] = True  # every document has a label
    Y = sp.csr_matrix(dense.astype(np.float32))
    X = sp.csr_matrix(rng.random((n, d)).astype(np.float32) * (rng.random((n, d)) < 0.3) + Y @ rng.random((L, d)))
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    common.write_xc(str(train), X[:90], Y[:90])
    common.write_xc(str(test), X[90:], Y[90:])
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(BENCH / "run_xmc.py"), "--train", str(train), "--test", str(test),
                    "--threads", "1", "--out", str(out), "--set", "trees=2", "--set", "C=1"], check=True)
    result = json.loads((out / "result.json").read_text())
    assert result["settings"]["params"]["trees"] == 2 and result["settings"]["params"]["C"] == 1
    assert result["train_seconds"] >= result["settings"]["stage_seconds"]["training"] > 0
    assert (out / "model" / "linear1").is_dir()
    with np.load(out / "predictions.npz") as p:
        assert p["ids"].shape == (30, 5) and p["ids"].max() < L


def test_tfidf_defaults_scores_each_setting_on_the_held_out_documents():
    import argparse

    import tfidf_defaults
    from xmc.data import TextData

    topics = {"sport": "goal match team score", "money": "bank rate loan price", "food": "bread soup cheese meal"}
    rng = np.random.default_rng(1)
    texts, labels = [], []
    for i in range(60):
        topic = list(topics)[i % 3]
        words = rng.choice(topics[topic].split(), size=4).tolist() + [f"rare{i}"]
        texts.append(" ".join(words))
        labels.append([topic])
    fit, scored = TextData(texts[:45], labels[:45]), TextData(texts[45:], labels[45:])
    args = argparse.Namespace(threads=1, seed=0)
    plain = tfidf_defaults.run_setting(fit, scored, [], args)
    pruned = tfidf_defaults.run_setting(fit, scored, tfidf_defaults.SETTINGS["min_df2"], args)
    assert plain["features"] == 12 + 45 and pruned["features"] == 12  # the rare words appear once each
    assert plain["P@1"] == pytest.approx(100.0) and pruned["P@1"] == pytest.approx(100.0)
    with pytest.raises(SystemExit):
        tfidf_defaults.parse_args(["--settings", "trigrams"])


def test_runners_start_from_another_benchmarks_arguments():
    """scale.py runs these runners with its own arguments, which have no variants."""
    import argparse

    args = argparse.Namespace(xmc_python="py", peers_python="peers", omikuji_trees=3)
    assert compare_linear.system_command("xmc", args) == ("py", [str(BENCH / "run_xmc.py")])
    assert compare_linear.system_command("omikuji", args)[1][1:] == ["--n-trees", "3"]
