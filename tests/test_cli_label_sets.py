"""Label sets through the CLI: xmc tune-thresholds, xmc predict --threshold, and the set metrics of xmc evaluate;
and the prediction files that carry the sets."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from xmc.cli.main import cli
from xmc.data import LabelVocab, read_xc, write_xc
from xmc.data.predictions import read_predictions, write_predictions
from xmc.utils.modeldir import MANIFEST


def run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A linear model, and the generated test split halved into validation and test files."""
    d = tmp_path_factory.mktemp("sets")
    run("generate", "--out", d, "--labels", 60, "--train-docs", 1500, "--test-docs", 800, "--features", 1500,
        "--seed", 2)
    test = read_xc(d / "test.txt")
    write_xc(d / "valid.txt", test.X[:400], test.Y[:400])
    write_xc(d / "test2.txt", test.X[400:], test.Y[400:])
    run("train", "--train", d / "train.txt", "--model-dir", d / "m", "--threads", 2)
    return d


def test_a_threshold_on_an_uncalibrated_linear_model_says_how_to_calibrate(trained, tmp_path):
    d = trained
    out = run("predict", "--model-dir", d / "m", "--input", d / "test2.txt", "--out", tmp_path / "p.txt",
              "--threshold", 0.5, code=2)
    assert "error:" in out and "xmc tune-thresholds --model-dir DIR --valid FILE" in out
    assert not (tmp_path / "p.txt").exists()


def test_tuned_thresholds_give_label_sets_that_evaluate_scores(trained, tmp_path):
    d = trained
    m = tmp_path / "m"
    run("train", "--train", d / "train.txt", "--model-dir", m, "--threads", 2)
    out = run("tune-thresholds", "--model-dir", m, "--valid", d / "valid.txt", "--threads", 2)
    assert "Platt scaling: probability = sigmoid(" in out and "per label: validation" in out
    manifest = json.loads((m / MANIFEST).read_text())["files"]
    assert {"thresholds/thresholds.json", "thresholds/per_label.npz"} <= set(manifest)
    run("predict", "--model-dir", m, "--input", d / "test2.txt", "--out", tmp_path / "p.txt", "-k", 8)
    lines = (tmp_path / "p.txt").read_text().splitlines()
    assert len(lines) == 400 and all(line.split().count("|") == 1 for line in lines)
    npz = np.load(tmp_path / "p.npz", allow_pickle=False)
    assert npz["in_set"].shape == (400, 8) and npz["in_set"].dtype == bool
    assert 0 < npz["in_set"].sum() < npz["in_set"].size and npz["scores"].max() <= 1
    txt = run("evaluate", "--predictions", tmp_path / "p.txt", "--truth", d / "test2.txt", "--json",
              tmp_path / "m.json")
    assert txt.splitlines()[1].split() == ["metric", "%"]
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert 0.5 < metrics["micro-F1"] < 1 and 0 < metrics["HL"] < 0.1 and 0 < metrics["subset-acc"] < 1
    assert f"micro-F1    {metrics['micro-F1'] * 100:6.2f}" in txt
    # The .npz says the same, and with the model's labels in the label space of macro-F1.
    npz_out = run("evaluate", "--predictions", tmp_path / "p.npz", "--truth", d / "test2.txt")
    assert f"{metrics['micro-F1'] * 100:6.2f}" in npz_out and "subset-acc" in npz_out
    # A global threshold instead of the per-label ones: each set is a prefix of the ranking.
    run("predict", "--model-dir", m, "--input", d / "test2.txt", "--out", tmp_path / "g.txt", "-k", 8,
        "--threshold", 0.5)
    in_set = np.load(tmp_path / "g.npz", allow_pickle=False)["in_set"]
    assert np.array_equal(in_set, np.sort(in_set, axis=1)[:, ::-1])


def test_evaluate_without_sets_reports_ranking_metrics_only(trained, tmp_path):
    d = trained
    run("predict", "--model-dir", d / "m", "--input", d / "test2.txt", "--out", tmp_path / "p.txt")
    out = run("evaluate", "--predictions", tmp_path / "p.txt", "--truth", d / "test2.txt")
    assert "P@1" in out and "micro-F1" not in out


def test_a_line_with_a_set_is_ranked_by_score_when_read(tmp_path):
    vocab = LabelVocab(["a", "b", "c", "d"])
    ids = np.array([[0, 1, 2, 3], [3, 2, -1, -1]], dtype=np.int32)
    scores = np.array([[0.9, 0.6, 0.5, 0.1], [0.7, 0.2, 0, 0]], dtype=np.float32)
    in_set = np.array([[True, False, True, False], [False, False, False, False]])
    write_predictions(tmp_path / "p.txt", ids, scores, vocab, in_set)
    assert (tmp_path / "p.txt").read_text().splitlines() == ["a:0.9 c:0.5 | b:0.6 d:0.1", "| d:0.7 c:0.2"]
    for path in (tmp_path / "p.txt", tmp_path / "p.npz"):
        read = read_predictions(path)
        assert read.labels == [["a", "b", "c", "d"], ["d", "c"]], path
        assert read.in_set == [[True, False, True, False], [False, False]], path
    (tmp_path / "mixed.txt").write_text("a:0.9 | b:0.5\nc:0.4\n")
    with pytest.raises(ValueError, match=r"mixed.txt:2: lacks the '\|' that ends a label set, unlike line 1"):
        read_predictions(tmp_path / "mixed.txt")
    (tmp_path / "two.txt").write_text("a:0.9 | b:0.5 | c:0.1\n")
    with pytest.raises(ValueError, match="two.txt:1: expected one '|'"):
        read_predictions(tmp_path / "two.txt")
