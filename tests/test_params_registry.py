"""Typed params, the model registry and the train command built on them."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from xmc import registry
from xmc.cli.main import cli
from xmc.data import LabelVocab, TextData, write_jsonl
from xmc.datasets.synthetic import SyntheticParams, make_text_corpus
from xmc.linear.params import LinearParams, PLTParams
from xmc.params import Params, check_int, param
from xmc.utils.modeldir import begin_save, load_json, read_manifest, save_json, write_manifest


def run(*args, code: int = 0) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(scope="module")
def text_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("registry")
    c = make_text_corpus(SyntheticParams(n_labels=8, n_train=120, n_test=30, n_features=100, seed=2))
    write_jsonl(d / "train.jsonl", TextData(c.train_texts, c.train_labels))
    write_jsonl(d / "test.jsonl", TextData(c.test_texts, c.test_labels))
    return d


# ---- a toy model: registered by this test alone ---------------------------------------------------------
@dataclass
class PriorParams(Params):
    """Ranks labels by their training frequency, plus one field to show --set reaching a model."""

    FLAGS = {"seed": ("seed",)}
    smoothing: int = param(1, "added to every label's count")
    seed: int = param(0, "unused by the arithmetic; here so --seed has a field")

    def validate(self) -> None:
        check_int(self.smoothing, "smoothing", low=0)


class PriorModel:
    KIND = "prior-toy"
    PARAMS = PriorParams

    def __init__(self, params=None) -> None:
        self.params = params or PriorParams()
        self.vocab, self.counts = None, None

    def fit(self, corpus, valid=None, tree=None, progress=True, log=print, checkpoint_dir=None, resume=False):
        self.vocab = LabelVocab().fit(corpus.labels)
        Y = self.vocab.encode(corpus.labels)
        self.counts = np.asarray(Y.sum(axis=0)).ravel() + self.params.smoothing
        return self

    @property
    def n_labels(self) -> int:
        return len(self.vocab)

    def labels(self, corpus, unseen="drop"):
        return self.vocab.encode(corpus.labels, unknown="extend" if unseen == "keep" else "skip")

    def features(self, corpus):
        return corpus.texts

    def reader_kwargs(self) -> dict:
        return {}

    def predict_topk(self, corpus, k=5, beam=None, threads=None, batch_size=None, on_batch=None):
        n = len(corpus.texts) if isinstance(corpus, TextData) else len(corpus)
        order = np.argsort(-self.counts, kind="stable")[:k]
        scores = (self.counts[order] / self.counts.sum()).astype(np.float32)
        if on_batch is not None:
            on_batch(n)
        return np.tile(order.astype(np.int32), (n, 1)), np.tile(scores, (n, 1))

    def save(self, directory) -> None:
        directory = begin_save(Path(directory))
        save_json(directory / "params.json", self.params.to_dict())
        save_json(directory / "counts.json", [int(c) for c in self.counts])
        self.vocab.save(directory)
        write_manifest(directory, self.KIND, {"input_kind": "text"})

    @classmethod
    def load(cls, directory) -> "PriorModel":
        directory = Path(directory)
        read_manifest(directory, cls.KIND, required=["params.json", "counts.json"])
        model = cls(PriorParams.from_dict(load_json(directory / "params.json"), strict=False))
        model.counts = np.asarray(load_json(directory / "counts.json"), dtype=np.int64)
        model.vocab = LabelVocab.load(directory)
        return model


@pytest.fixture
def toy_kind():
    entry = registry.register(registry.ModelEntry("prior-toy", f"{__name__}:PriorModel", f"{__name__}:PriorParams",
                                                  "label frequencies (a test's toy)", needs_torch=False))
    yield entry
    registry.unregister(entry.kind)


def test_a_registered_toy_model_trains_predicts_saves_and_loads_through_the_cli(text_files, tmp_path, toy_kind):
    d = text_files
    out = run("train", "--model", "prior-toy", "--train", d / "train.jsonl", "--valid", d / "test.jsonl",
              "--model-dir", tmp_path / "m", "--set", "smoothing=3", "--seed", 5)
    assert "model saved" in out and "P@1=" in out
    assert json.loads((tmp_path / "m" / "params.json").read_text()) == {"smoothing": 3, "seed": 5}
    out = run("predict", "--model-dir", tmp_path / "m", "--input", d / "test.jsonl", "--out", tmp_path / "p.txt")
    assert "P@1=" in out and len((tmp_path / "p.txt").read_text().splitlines()) == 30
    loaded = registry.load_model(tmp_path / "m")
    assert isinstance(loaded, PriorModel) and loaded.params.smoothing == 3
    # The manifest check covers the toy's files too: a changed file is refused by name.
    (tmp_path / "m" / "counts.json").write_text("[1]\n")
    with pytest.raises(ValueError, match="counts.json"):
        registry.load_model(tmp_path / "m")
    assert json.loads(run("params", "prior-toy")) == {"smoothing": 1, "seed": 0}
    run("train", "--model", "prior-toy", "--train", d / "train.jsonl", "--model-dir", tmp_path / "x",
        "--epochs", 2, code=2)


def test_the_registry_lists_every_kind_the_cli_offers():
    help_text = run("train", "--help")
    for kind in registry.MODELS:
        assert kind in help_text
    assert {"linear", "attentionxml", "lightattention", "ldgn", "seq2seq-mdc", "lwpt", "laco",
            "ensemble"} <= set(registry.MODELS)


def test_train_help_lists_at_most_17_options():
    # 15 model-independent options, plus --overwrite and --quiet (issue 31): a model's settings are params.
    options = [line for line in run("train", "--help").splitlines() if line.lstrip().startswith("-")]
    assert len(options) <= 17, options


# ---- params -----------------------------------------------------------------------------------------
def test_params_skeleton_round_trips_and_describes_every_field():
    skeleton = json.loads(run("params", "linear"))
    assert LinearParams.from_dict(skeleton) == LinearParams()
    explained = run("params", "linear", "--explain")
    for path in LinearParams().paths():
        assert path in explained
    assert "tfidf.ngram_range" in explained
    assert all(help_text for _, _, help_text in LinearParams.describe())


def test_errors_name_the_field():
    with pytest.raises(ValueError, match=r"^Cx: no such field in PLTParams"):
        PLTParams.from_dict({"Cx": 1})
    with pytest.raises(TypeError, match=r"^tree.max_leaf_size: expected int, found 'a'"):
        PLTParams.from_dict({"tree": {"max_leaf_size": "a"}})
    with pytest.raises(ValueError, match="C must be positive"):
        PLTParams().with_settings(["C=-1"])
    with pytest.raises(ValueError, match="expected FIELD=VALUE"):
        PLTParams().with_settings(["C"])
    assert PLTParams().with_settings(["C=2", "tree.max_leaf_size=7"]).tree.max_leaf_size == 7


def test_linear_params_file_edited_and_passed_back_trains(tmp_path):
    run("generate", "--out", tmp_path, "--labels", 30, "--train-docs", 200, "--test-docs", 20, "--features", 300)
    skeleton = json.loads(run("params", "linear"))
    skeleton["C"], skeleton["tree"]["max_leaf_size"] = 1.0, 8
    (tmp_path / "p.json").write_text(json.dumps(skeleton))
    run("train", "--train", tmp_path / "train.txt", "--model-dir", tmp_path / "m", "--params", tmp_path / "p.json",
        "--threads", 1)
    saved = json.loads((tmp_path / "m" / "linear" / "params.json").read_text())
    assert saved["C"] == 1.0 and saved["tree"]["max_leaf_size"] == 8 and saved["threads"] == 1
    skeleton["Cee"] = 2
    (tmp_path / "bad.json").write_text(json.dumps(skeleton))
    out = run("train", "--train", tmp_path / "train.txt", "--model-dir", tmp_path / "m2", "--params",
              tmp_path / "bad.json", code=2)
    assert "bad.json: Cee: no such field in LinearParams" in out


def test_options_the_model_does_not_use_are_errors(tmp_path):
    run("generate", "--out", tmp_path, "--labels", 20, "--train-docs", 100, "--test-docs", 10, "--features", 200)
    train = ["train", "--train", tmp_path / "train.txt", "--model-dir", tmp_path / "m"]
    assert "--model linear does not use it" in run(*train, "--epochs", 3, code=2)
    assert "--model linear does not use it" in run(*train, "--device", "cpu", code=2)
    assert "hidden: no such field in LinearParams" in run(*train, "--set", "hidden=3", code=2)


def test_deep_params_skeleton_edited_and_passed_back_trains(text_files, tmp_path):
    pytest.importorskip("torch")
    skeleton = json.loads(run("params", "attentionxml"))
    assert {"text", "embedding", "training", "tree", "hidden", "top_k"} <= set(skeleton)
    skeleton["embedding"].update(source="random", dim=8)
    skeleton["training"].update(epochs=1, batch_size=32)
    skeleton.update(hidden=8, fc_sizes=[8])
    (tmp_path / "ax.json").write_text(json.dumps(skeleton))
    out = run("train", "--model", "attentionxml", "--params", tmp_path / "ax.json", "--train",
              text_files / "train.jsonl", "--valid", text_files / "test.jsonl", "--model-dir", tmp_path / "m",
              "--threads", 1, "--set", "training.lr=0.01")
    assert "epoch 1" in out and "P@1=" in out
    saved = json.loads((tmp_path / "m" / "params.json").read_text())
    assert saved["training"]["lr"] == 0.01 and saved["hidden"] == 8 and saved["training"]["threads"] == 1
    assert "graph: no such field in AttentionXMLParams" in run(
        "train", "--model", "attentionxml", "--train", text_files / "train.jsonl", "--model-dir", tmp_path / "x",
        "--set", "graph=static", code=2)
    # seed is in three places: a bare name is ambiguous, a flag sets all of them
    assert "several fields have this name" in run(
        "train", "--model", "attentionxml", "--train", text_files / "train.jsonl", "--model-dir", tmp_path / "x",
        "--set", "seed=1", code=2)


def test_flags_reach_the_member_kind_an_ensemble_is_set_to():
    pytest.importorskip("torch")
    from xmc.cli.main import _train_params

    params = _train_params(registry.get("ensemble"), None, ["model=ldgn", "member.gcn_dim=8"],
                           {"epochs": 1, "seed": 4, "threads": None, "device": None})
    assert type(params.member).__name__ == "LDGNParams" and params.member.gcn_dim == 8
    assert params.member.training.epochs == 1 and params.member.training.seed == 4
    assert params.member.embedding.seed == 4
