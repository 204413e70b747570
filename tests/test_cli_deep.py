"""The CLI runs the deep models end to end on raw text, exactly as the linear one."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

from xmc.cli.main import cli  # noqa: E402
from xmc.data import TextData, write_jsonl  # noqa: E402
from xmc.datasets.synthetic import SyntheticParams, make_text_corpus  # noqa: E402

TINY = ["--embedding", "random", "--embedding-dim", "16", "--hidden", "16", "--epochs", "2", "--threads", "2",
        "--transformer-dim", "32",
        "--batch-size", "32"]


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
              "--model-dir", tmp_path / "m", *TINY)
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
    out = run("train", "--model", "lwpt", "--pretrain-steps", 20, "--train", d / "train.jsonl", "--valid",
              d / "test.jsonl", "--model-dir", tmp_path / "m", *TINY)
    assert "pre-training step 20" in out and "fine-tuning epoch 1" in out
    assert "P@1=" in out and "micro-F1=" in out and "HL=" in out
    out = run("predict", "--model-dir", tmp_path / "m", "--input", d / "test.jsonl", "--out", tmp_path / "p.txt")
    assert len((tmp_path / "p.txt").read_text().splitlines()) == 60


def test_default_threads_mean_every_core_for_the_skipgram_vectors_too(text_files, tmp_path):
    # --threads defaults to 0 (every core); skip-gram's worker count refused 0 and no deep model trained
    # without an explicit --threads.
    d = text_files
    out = run("train", "--model", "attentionxml", "--train", d / "train.jsonl", "--model-dir", tmp_path / "m",
              "--embedding-dim", 16, "--hidden", 16, "--epochs", 1, "--batch-size", 32)
    assert "epoch 1" in out
    assert json.loads((tmp_path / "m" / "params.json").read_text())["embedding"]["threads"] >= 1


def test_deep_model_on_sparse_input_is_a_clear_error(tmp_path):
    from xmc.datasets.export import write_corpus

    write_corpus(SyntheticParams(n_labels=5, n_train=20, n_test=5, n_features=30), tmp_path)
    train = tmp_path / "train.txt"
    result = CliRunner().invoke(cli, ["train", "--model", "attentionxml", "--train", str(train),
                                      "--model-dir", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "reads raw text" in result.output and "--model linear" in result.output


def test_ldgn_over_linear_candidates_from_the_cli(tmp_path):
    # xmc train --model ldgn --candidates DIR, then predict and evaluate as for every model.
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
    result = runner.invoke(cli, [*train, "--model", "ldgn", "--candidates", str(tmp_path / "linear"),
                                 "--n-candidates", "6", "--embedding", "random", "--embedding-dim", "16",
                                 "--hidden", "16", "--epochs", "1", "--model-dir", str(tmp_path / "ldgn")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["predict", "--model-dir", str(tmp_path / "ldgn"), "--input",
                                 str(tmp_path / "test.jsonl"), "--out", str(tmp_path / "pred.txt")])
    assert result.exit_code == 0, result.output
    assert "P@1=" in result.output and len((tmp_path / "pred.txt").read_text().splitlines()) == 60
    bad = runner.invoke(cli, [*train, "--model", "attentionxml", "--candidates", str(tmp_path / "linear"),
                              "--model-dir", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "--candidates is for --model ldgn" in bad.output


def test_cli_deep_defaults_are_the_python_api_defaults():
    """`xmc train` and DeepParams() must train the same model: a default set in one place only drifts."""
    import dataclasses

    from xmc.models import DeepParams

    api = DeepParams()
    nested = {"embedding": api.embedding.source, "embedding_dim": api.embedding.dim, "max_len": api.text.max_len,
              "branching_factor": api.tree.branching_factor}
    fields = {f.name for f in dataclasses.fields(DeepParams)}
    train = cli.commands["train"]
    compared = []
    for option in train.params:
        if option.name in nested:
            expected = nested[option.name]
        elif option.name in fields and option.default is not None:
            expected = getattr(api, option.name)
        else:
            continue
        compared.append(option.name)
        assert option.default == expected, f"xmc train --{option.name.replace('_', '-')}: {option.default!r} " \
                                           f"but DeepParams: {expected!r}"
    assert {"embedding", "epochs", "lr", "hidden", "dropout", "graph"} <= set(compared)
