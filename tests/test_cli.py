"""The CLI end to end on a small generated corpus, through click's runner."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from xmc.cli.main import cli


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    result = run("generate", "--out", out, "--labels", 300, "--train-docs", 3000, "--test-docs", 600,
                 "--features", 3000, "--seed", 1)
    assert result.exit_code == 0, result.output
    return out


def test_pipeline_end_to_end(corpus, tmp_path):
    tree_dir, model_dir, pred = tmp_path / "tree", tmp_path / "model", tmp_path / "pred.txt"
    r = run("build-tree", "--train", corpus / "train.txt", "--out", tree_dir, "--branching-factor", 4,
            "--max-leaf-size", 20, "--threads", 2)
    assert r.exit_code == 0, r.output
    r = run("train", "--train", corpus / "train.txt", "--tree", tree_dir, "--model-dir", model_dir,
            "--threads", 2, "--valid", corpus / "test.txt")
    assert r.exit_code == 0, r.output
    assert "P@1=" in r.output and "peak memory" in r.output
    r = run("predict", "--model-dir", model_dir, "--input", corpus / "test.txt", "--out", pred, "-k", 5)
    assert r.exit_code == 0, r.output
    lines = pred.read_text().splitlines()
    assert len(lines) == 600
    first = [tok.rsplit(":", 1) for tok in lines[0].split()]
    assert len(first) == 5
    scores = [float(s) for _, s in first]
    assert scores == sorted(scores, reverse=True)
    npz = np.load(pred.with_suffix(".npz"), allow_pickle=False)
    assert npz["ids"].shape == (600, 5)

    metrics_json = tmp_path / "m.json"
    r = run("evaluate", "--predictions", pred, "--truth", corpus / "test.txt", "--train", corpus / "train.txt",
            "--json", metrics_json)
    assert r.exit_code == 0, r.output
    metrics = json.loads(metrics_json.read_text())
    # The generated labels are tied to feature clusters: a working PLT ranks them far above chance (5/300).
    assert metrics["P@1"] > 0.5
    assert metrics["P@1"] >= metrics["P@5"]
    assert 0 < metrics["PSP@5"] <= 1.0
    # The text and .npz prediction files describe the same predictions.
    r2 = run("evaluate", "--predictions", pred.with_suffix(".npz"), "--truth", corpus / "test.txt")
    assert f"{metrics['P@1'] * 100:6.2f}" in r2.output


def test_train_builds_its_own_tree_and_reads_text(tmp_path):
    r = run("generate", "--out", tmp_path, "--labels", 50, "--train-docs", 800, "--test-docs", 200,
            "--features", 500, "--format", "fasttext")
    assert r.exit_code == 0, r.output
    train_file = next(tmp_path.glob("train*"))
    test_file = next(tmp_path.glob("test*"))
    r = run("train", "--train", train_file, "--model-dir", tmp_path / "m", "--valid", test_file)
    assert r.exit_code == 0, r.output
    r = run("predict", "--model-dir", tmp_path / "m", "--input", test_file, "--out", tmp_path / "p.txt")
    assert r.exit_code == 0, r.output
    assert "P@1=" in r.output


def test_tfidf_settings_of_the_linear_model_come_from_set(tmp_path):
    """--set tfidf.*: word bigrams and min_df reach the featurizer the model directory saves."""
    r = run("generate", "--out", tmp_path, "--labels", 20, "--train-docs", 300, "--test-docs", 50,
            "--features", 200, "--format", "fasttext")
    assert r.exit_code == 0, r.output
    train_file = next(tmp_path.glob("train*"))
    for name, extra in (("uni", []), ("bi", ["--set", "tfidf.ngram_range=[1,2]", "--set", "tfidf.min_df=2"])):
        r = run("train", "--train", train_file, "--model-dir", tmp_path / name, "--threads", 1, *extra)
        assert r.exit_code == 0, r.output
    terms = {name: json.loads((tmp_path / name / "featurizer" / "tfidf_vocab.json").read_text())
             for name in ("uni", "bi")}
    assert not any(" " in term for term in terms["uni"])
    assert any(" " in term for term in terms["bi"])
    saved = json.loads((tmp_path / "bi" / "featurizer" / "tfidf.json").read_text())["params"]
    assert saved["ngram_range"] == [1, 2] and saved["min_df"] == 2


def test_lead_block_trains_saves_and_predicts_through_the_cli(tmp_path):
    """--set tfidf.lead_tokens: the saved featurizer holds the lead block, the model has its columns, and the
    CLI predicts with the loaded model."""
    from xmc.linear.pipeline import Pipeline

    r = run("generate", "--out", tmp_path, "--labels", 20, "--train-docs", 300, "--test-docs", 50,
            "--features", 200, "--format", "fasttext")
    assert r.exit_code == 0, r.output
    train_file, test_file = next(tmp_path.glob("train*")), next(tmp_path.glob("test*"))
    r = run("train", "--train", train_file, "--model-dir", tmp_path / "m", "--threads", 1,
            "--set", "tfidf.lead_tokens=4")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "m" / "featurizer" / "lead" / "tfidf_vocab.json").is_file()
    model = Pipeline.load(tmp_path / "m")
    assert model.featurizer.lead is not None and model.model.n_features == model.featurizer.n_features
    assert model.model.n_features > len(model.featurizer.vocabulary)
    r = run("predict", "--model-dir", tmp_path / "m", "--input", test_file, "--out", tmp_path / "p.txt")
    assert r.exit_code == 0 and "P@1=" in r.output, r.output


@pytest.mark.parametrize("command", ["generate", "build-tree", "train", "predict", "evaluate"])
def test_help_has_an_example(command):
    r = run(command, "--help")
    assert r.exit_code == 0
    assert "Example" in r.output and f"xmc {command}" in r.output


def test_malformed_input_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("2 5 3\n0,1 1:0.5 3:1\n2 4:abc\n")
    r = CliRunner().invoke(cli, ["train", "--train", str(bad), "--model-dir", str(tmp_path / "m")])
    assert r.exit_code == 2
    assert f"{bad}:3" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "m").exists()
