"""The CLI runs the deep models end to end on raw text, exactly as the linear one."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

from xmc.cli.main import cli  # noqa: E402
from xmc.data import TextData, write_jsonl  # noqa: E402
from xmc.datasets.synthetic import SyntheticParams, make_text_corpus  # noqa: E402

def tiny(model: str) -> list:
    """Small networks for each kind (LACO has a transformer where the others have a BiLSTM)."""
    width = ["--set", "transformer_dim=32"] if model == "laco" else ["--set", "hidden=16"]
    return ["--set", "embedding.source=random", "--set", "embedding.dim=16", "--epochs", "2", "--threads", "2",
            "--set", "training.batch_size=32", *width]


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def text_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("deepcli")
    c = make_text_corpus(SyntheticParams(n_labels=10, n_train=300, n_test=60, n_features=300, seed=5))
    write_jsonl(d / "train.jsonl", TextData(c.train_texts, c.train_labels))
    write_jsonl(d / "test.jsonl", TextData(c.test_texts, c.test_labels))
    return d


@pytest.mark.parametrize("model", ["attentionxml", "lightattention", "seq2seq-mdc", "laco"])
def test_train_predict_evaluate(text_files, tmp_path, model):
    d = text_files
    out = run("train", "--model", model, "--train", d / "train.jsonl", "--valid", d / "test.jsonl",
              "--model-dir", tmp_path / "m", *tiny(model))
    assert f"{model}" in out and "epoch 1" in out and "P@1=" in out
    if model in ("seq2seq-mdc", "laco"):  # models of label sets: the set metrics of their papers too
        assert "micro-F1=" in out and "macro-F1=" in out and "HL=" in out
    out = run("predict", "--model-dir", tmp_path / "m", "--input", d / "test.jsonl", "--out", tmp_path / "p.txt")
    assert "P@1=" in out
    lines = (tmp_path / "p.txt").read_text().splitlines()
    # (a label the decoder gave no probability at all has no score to rank it by)
    assert len(lines) == 60 and all(len(line.split()) == 5 or (model == "seq2seq-mdc" and 1 <= len(line.split()) <= 5)
                                    for line in lines)
    out = run("evaluate", "--predictions", tmp_path / "p.txt", "--truth", d / "test.jsonl",
              "--json", tmp_path / "m.json")
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert 0.0 <= metrics["P@1"] <= 1.0


def test_lwpt_pretrains_then_fine_tunes_from_the_cli(text_files, tmp_path):
    d = text_files
    out = run("train", "--model", "lwpt", "--set", "pretrain_steps=20", "--train", d / "train.jsonl", "--valid",
              d / "test.jsonl", "--model-dir", tmp_path / "m", *tiny("lwpt"))
    assert "pre-training step 20" in out and "fine-tuning epoch 1" in out
    assert "P@1=" in out and "micro-F1=" in out and "HL=" in out
    out = run("predict", "--model-dir", tmp_path / "m", "--input", d / "test.jsonl", "--out", tmp_path / "p.txt")
    assert len((tmp_path / "p.txt").read_text().splitlines()) == 60


def test_default_threads_mean_every_core_for_the_skipgram_vectors_too(text_files, tmp_path):
    # embedding.threads defaults to 0 (every core), as the other thread counts do; skip-gram's own worker
    # count must be a number, so 0 is resolved where skip-gram runs.
    d = text_files
    out = run("train", "--model", "attentionxml", "--train", d / "train.jsonl", "--model-dir", tmp_path / "m",
              "--set", "embedding.dim=16", "--set", "hidden=16", "--epochs", 1, "--set", "training.batch_size=32")
    assert "epoch 1" in out
    assert json.loads((tmp_path / "m" / "params.json").read_text())["embedding"]["threads"] == 0


def test_deep_model_on_sparse_input_is_a_clear_error(tmp_path):
    from xmc.datasets.export import write_corpus

    write_corpus(SyntheticParams(n_labels=5, n_train=20, n_test=5, n_features=30), tmp_path)
    train = tmp_path / "train.txt"
    result = CliRunner().invoke(cli, ["train", "--model", "attentionxml", "--train", str(train),
                                      "--model-dir", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "reads raw text" in result.output and "--model linear" in result.output


def test_deep_models_over_linear_candidates_from_the_cli(tmp_path):
    # xmc train --model ldgn|attentionxml --set candidates=DIR, then predict and evaluate as for every model.
    from click.testing import CliRunner

    from cli.main import cli
    from xmc.data import TextData, write_jsonl
    from xmc.datasets.synthetic import SyntheticParams, make_text_corpus

    t = make_text_corpus(SyntheticParams(n_labels=20, n_train=300, n_test=60, n_features=200,
                                         avg_features_per_doc=15.0))
    write_jsonl(tmp_path / "train.jsonl", TextData(t.train_texts, t.train_labels))
    write_jsonl(tmp_path / "test.jsonl", TextData(t.test_texts, t.test_labels))
    runner = CliRunner()
    train = ["train", "--train", str(tmp_path / "train.jsonl"), "--threads", "1"]
    assert runner.invoke(cli, [*train, "--model-dir", str(tmp_path / "linear")]).exit_code == 0
    result = runner.invoke(cli, [*train, "--model", "ldgn", "--set", f"candidates={tmp_path / 'linear'}",
                                 "--set", "n_candidates=6", "--set", "embedding.source=random", "--set",
                                 "embedding.dim=16", "--set", "hidden=16", "--epochs", "1",
                                 "--model-dir", str(tmp_path / "ldgn")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["predict", "--model-dir", str(tmp_path / "ldgn"), "--input",
                                 str(tmp_path / "test.jsonl"), "--out", str(tmp_path / "pred.txt")])
    assert result.exit_code == 0, result.output
    assert "P@1=" in result.output and len((tmp_path / "pred.txt").read_text().splitlines()) == 60
    result = runner.invoke(cli, [*train, "--model", "attentionxml", "--set", f"candidates={tmp_path / 'linear'}",
                                 "--set", "n_candidates=6", "--set", "embedding.source=random", "--set",
                                 "embedding.dim=16", "--set", "hidden=16", "--epochs", "1",
                                 "--model-dir", str(tmp_path / "axml")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "axml" / "candidates" / "xmc.json").is_file()
    bad = runner.invoke(cli, [*train, "--model", "attentionxml", "--set", f"candidates={tmp_path / 'missing'}",
                              "--model-dir", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "missing" in bad.output


def test_train_flags_hold_no_defaults_of_their_own():
    """A model's defaults live in its params class only: a flag left out changes nothing (a default kept in
    two places drifts)."""
    train = cli.commands["train"]
    for name in ("epochs", "seed", "threads", "device"):
        option = next(o for o in train.params if o.name == name)
        assert option.default is None, name


def test_a_run_learning_only_the_label_prior_says_so(text_files, tmp_path):
    d = text_files
    out = run("train", "--model", "attentionxml", "--train", d / "train.jsonl", "--valid", d / "test.jsonl",
              "--model-dir", tmp_path / "m", *tiny("attentionxml"), "--epochs", 1, "--set", "training.lr=1e-9")
    assert "the label prior (the 5 most frequent training labels for every document): valid P@1" in out
    assert "has learned only the label prior so far" in out and "Try a larger training.lr" in out
