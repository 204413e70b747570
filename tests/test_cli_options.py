"""Options that mean one thing everywhere: --set checked against the chosen model, a model directory never
overwritten unasked, -k alike on predict and evaluate, unseen test labels counted alike, paths as given,
time per stage and the model's own throughput."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_checks import invoke

from xmc.data import TextData, write_jsonl
from xmc.datasets.synthetic import SyntheticParams, make_text_corpus

ROOT = Path(__file__).resolve().parents[1]



@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("options")
    invoke("generate", "--out", d, "--labels", 60, "--train-docs", 600, "--test-docs", 80, "--features", 500)
    invoke("train", "--train", d / "train.txt", "--model-dir", d / "m", "--threads", 1)
    return d


def test_a_set_field_the_model_lacks_names_the_field_and_the_model(corpus, tmp_path):
    r = invoke("train", "--model", "linear", "--set", "training.epochs=3", "--train", corpus / "train.txt",
               "--model-dir", tmp_path / "m", code=2)
    assert "--model linear: training.epochs: no such field in LinearParams" in r.output
    assert not (tmp_path / "m").exists()


def test_a_model_directory_that_holds_something_needs_overwrite(corpus, tmp_path):
    train = ["train", "--train", corpus / "train.txt", "--threads", 1, "--model-dir"]
    invoke(*train, tmp_path / "m")
    r = invoke(*train, tmp_path / "m", code=2)
    assert "is not empty: it holds a model. Add --overwrite" in r.output and "--resume" in r.output
    r = invoke(*train, tmp_path / "m", "--overwrite", "--set", "C=0.5")
    assert json.loads((tmp_path / "m" / "linear" / "params.json").read_text())["C"] == 0.5
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    assert "holds 1 entries (todo.txt)" in invoke(*train, tmp_path / "notes", code=2).output
    invoke(*train, tmp_path / "m", "--resume")  # continues what is there: nothing to refuse


def test_a_model_saved_over_another_lists_only_its_own_files(corpus, tmp_path):
    from xmc.registry import load_model

    train = ["train", "--train", corpus / "train.txt", "--threads", 1, "--model-dir", tmp_path / "m"]
    invoke(*train, "--set", "trees=2")
    (tmp_path / "m" / "notes.txt").write_text("mine")
    invoke(*train, "--overwrite")  # one tree now: linear1/ is the old model's leftover
    listed = json.loads((tmp_path / "m" / "xmc.json").read_text())["files"]
    assert (tmp_path / "m" / "linear1").is_dir() and not any(rel.startswith("linear1/") for rel in listed)
    assert "notes.txt" not in listed and "linear/weights.npz" in listed
    assert len(load_model(tmp_path / "m").trees) == 1
    invoke(*train, "--overwrite", "--set", "C=0.5")  # the same files rewritten: all listed again
    assert set(json.loads((tmp_path / "m" / "xmc.json").read_text())["files"]) == set(listed)


def test_k_means_the_same_on_predict_and_evaluate(corpus, tmp_path):
    r = invoke("predict", "--model-dir", corpus / "m", "--input", corpus / "test.txt", "--out", tmp_path / "p.txt",
               "-k", 10)
    predicted = dict(re.findall(r"(P@\d+|nDCG@\d+)=([\d.]+)", r.stdout))
    assert sorted(k for k in predicted if k.startswith("P@")) == ["P@1", "P@10", "P@3", "P@5"]
    r = invoke("evaluate", "--predictions", tmp_path / "p.txt", "--truth", corpus / "test.txt", "-k", 10)
    evaluated = dict(re.findall(r"^(P@\d+|nDCG@\d+)\s+([\d.]+)$", r.stdout, re.M))
    assert evaluated == predicted
    r = invoke("evaluate", "--predictions", tmp_path / "p.txt", "--truth", corpus / "test.txt", "-k", 2)
    assert re.findall(r"^P@\d+", r.stdout, re.M) == ["P@1", "P@2"]
    r = invoke("evaluate", "--predictions", tmp_path / "p.txt", "--truth", corpus / "test.txt", "-k", "1,3,10")
    assert re.findall(r"^P@\d+", r.stdout, re.M) == ["P@1", "P@3", "P@10"]  # the list form still works


def test_unseen_test_labels_count_as_misses_in_predict_and_evaluate(tmp_path):
    c = make_text_corpus(SyntheticParams(n_labels=12, n_train=300, n_test=60, n_features=300, seed=2))
    write_jsonl(tmp_path / "train.jsonl", TextData(c.train_texts, c.train_labels))
    test_labels = [labels + ["never-seen"] if i % 3 == 0 else labels for i, labels in enumerate(c.test_labels)]
    write_jsonl(tmp_path / "test.jsonl", TextData(c.test_texts, test_labels))
    invoke("train", "--train", tmp_path / "train.jsonl", "--model-dir", tmp_path / "m", "--threads", 1)
    r = invoke("predict", "--model-dir", tmp_path / "m", "--input", tmp_path / "test.jsonl", "--out",
               tmp_path / "p.txt")
    assert "labels never seen in training" in r.stderr and "count as misses" in r.stderr
    predicted = dict(re.findall(r"(nDCG@\d+)=([\d.]+)", r.stdout))
    r = invoke("evaluate", "--predictions", tmp_path / "p.txt", "--truth", tmp_path / "test.jsonl",
               "--train", tmp_path / "train.jsonl")
    assert "count as misses" in r.stderr
    evaluated = dict(re.findall(r"^(nDCG@\d+)\s+([\d.]+)$", r.stdout, re.M))
    assert evaluated == predicted and len(predicted) == 3


def test_xc_files_are_named_in_messages_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("bad.txt").write_text("2 5 3\n0 1:1 x\n")
    r = invoke("train", "--train", "bad.txt", "--model-dir", "m", code=2)
    assert r.output.startswith("error: bad.txt:2: expected a feature"), r.output
    monkeypatch.setenv("XMC_CACHE_MIN_BYTES", "0")  # the cached reader names it the same way
    monkeypatch.setenv("XMC_CACHE_DIR", str(tmp_path / "cache"))
    r = invoke("train", "--train", "bad.txt", "--model-dir", "m", code=2)
    assert r.output.startswith("error: bad.txt:2: expected a feature"), r.output


def test_train_prints_the_time_of_each_stage_and_predict_the_model_s_own_speed(corpus, tmp_path):
    r = invoke("train", "--train", corpus / "train.txt", "--model-dir", tmp_path / "m", "--threads", 1,
               "--valid", corpus / "test.txt")
    stages = re.search(r"^done in [\d.]+ s \((.*)\), peak memory", r.stdout, re.M).group(1)
    assert [s.rsplit(" ", 2)[0] for s in stages.split(", ")] == ["reading", "featurising", "tree", "training",
                                                                 "saving", "validation"], stages
    r = invoke("predict", "--model-dir", tmp_path / "m", "--input", corpus / "test.txt", "--out", tmp_path / "p.txt")
    assert re.search(r"80 documents at [\d,]+ docs/s end to end \(reading and featurising included\), "
                     r"[\d,]+ docs/s for the model alone", r.stdout), r.stdout


def test_every_tfidf_setting_has_help_and_a_place_in_the_params():
    from xmc.data.tfidf import TfidfParams
    from xmc.linear.params import LinearParams

    rows = {path: help_text for path, _, help_text in LinearParams.describe() if path.startswith("tfidf.")}
    fields = {f"tfidf.{name}" for name in TfidfParams.__dataclass_fields__}
    assert set(rows) == fields and all(len(text) > 10 for text in rows.values()), rows
    explained = invoke("params", "linear", "--explain").stdout
    assert re.search(r"^tfidf.ngram_range\s+\[1, 1\]\s+shortest and longest word n-grams$", explained, re.M)
    assert json.loads(invoke("params", "linear").stdout)["tfidf"]["ngram_range"] == [1, 1]


def test_importing_the_unbuilt_source_tree_says_what_to_do(tmp_path):
    """Python started in a source checkout whose core is not built: the error says to run from elsewhere or
    to build in place."""
    (tmp_path / "setup.py").write_text("")
    (tmp_path / "xmc").mkdir()
    (tmp_path / "xmc" / "__init__.py").write_text((ROOT / "xmc" / "__init__.py").read_text())
    # -S: no site packages, so no installed (or editable) xmc can stand in for the folder's.
    out = subprocess.run([sys.executable, "-S", "-c", "import xmc"], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 1
    assert "xmc's C++ core (xmc._core) is not built" in out.stderr
    assert "run Python from another folder, or build it in place with `pip install -e .`" in out.stderr
