"""Progress that reaches logs: plain lines on a stderr that is not a terminal, tqdm on one, nothing with --quiet."""
from __future__ import annotations

import re
import sys
import time

import pytest
from cli_checks import invoke

from xmc.utils.progress import INTERVAL_ENV, format_duration, interval, progress

# done/total unit (share), rate, time left
COUNTED = re.compile(r"^training PLT layers: \d+/\d+ layer \(\d+%\), [\d.,]+ layer/s, \d+ s left$", re.M)



@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("progress")
    invoke("generate", "--out", d, "--labels", 60, "--train-docs", 600, "--test-docs", 50, "--features", 500)
    return d


def test_lines_at_every_update_with_interval_zero(monkeypatch, capsys):
    monkeypatch.setenv(INTERVAL_ENV, "0")
    with progress("step", total=4, unit="batch") as bar:
        for _ in range(4):
            bar.set_postfix("loss 0.5")
            bar.update(1)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "step: 0/4 batch (0%), 0 s elapsed"
    assert re.fullmatch(r"step: 2/4 batch \(50%\), [\d.,]+ batch/s, \d+ s left; loss 0.5", lines[2]), lines
    assert re.fullmatch(r"step: 4/4 batch \(100%\), [\d.,]+ batch/s, done in \d+ s; loss 0.5", lines[-1]), lines
    assert len(lines) == 6


def test_a_step_without_updates_shows_it_is_running_at_the_interval(monkeypatch, capsys):
    """A native call (tree building) reports nothing: the line comes from a thread, every interval."""
    monkeypatch.setenv(INTERVAL_ENV, "0.05")
    with progress("label tree of 9 labels"):
        time.sleep(0.3)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 3 and lines[0] == "label tree of 9 labels: 0 s elapsed", lines
    assert lines[-1] == "label tree of 9 labels: done in 0 s"


def test_short_steps_and_disabled_progress_write_nothing(monkeypatch, capsys):
    monkeypatch.delenv(INTERVAL_ENV, raising=False)
    assert interval() == 30.0
    with progress("quick", total=3) as bar:  # done well before the first 30 s line
        bar.update(3)
    monkeypatch.setenv(INTERVAL_ENV, "0")
    with progress("quiet", total=3, enabled=False) as bar:
        bar.update(3)
    assert capsys.readouterr().err == ""


def test_on_a_terminal_the_bar_is_tqdm(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with progress("step", total=2) as bar:
        assert type(bar).__name__ == "_Bar"


def test_a_bad_interval_names_the_variable(monkeypatch):
    monkeypatch.setenv(INTERVAL_ENV, "soon")
    with pytest.raises(ValueError, match=r"\$XMC_PROGRESS_INTERVAL: expected a number of seconds, found 'soon'"):
        interval()


def test_durations_read_as_a_person_would_say_them():
    assert [format_duration(s) for s in (4.4, 65, 3725)] == ["4 s", "1 min 05 s", "1 h 02 min"]


def test_linear_training_and_prediction_print_progress_lines_to_a_log(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv(INTERVAL_ENV, "0")
    r = invoke("train", "--train", corpus / "train.txt", "--model-dir", tmp_path / "m", "--threads", 1,
               "--set", "tree.branching_factor=2", "--set", "tree.max_leaf_size=4")
    assert COUNTED.search(r.stderr), r.stderr
    assert re.search(r"^label tree of 60 labels: done in \d+ s$", r.stderr, re.M), r.stderr
    r = invoke("predict", "--model-dir", tmp_path / "m", "--input", corpus / "test.txt", "--out", tmp_path / "p.txt")
    assert re.search(r"^predict: 50 doc, [\d.,]+ doc/s, done in \d+ s$", r.stderr, re.M), r.stderr
    r = invoke("build-tree", "--train", corpus / "train.txt", "--out", tmp_path / "tree")
    assert re.search(r"^PIFA embeddings .* of 60 labels: done in \d+ s$", r.stderr, re.M), r.stderr


def test_quiet_prints_only_the_summary(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv(INTERVAL_ENV, "0")
    summary = re.compile(r"done in [\d.]+ s.*, peak memory [\d.]+ \w+")
    for args in (["train", "--train", corpus / "train.txt", "--model-dir", tmp_path / "m", "--threads", 1,
                  "--valid", corpus / "test.txt"],
                 ["predict", "--model-dir", tmp_path / "m", "--input", corpus / "test.txt", "--out", tmp_path / "p.txt"],
                 ["build-tree", "--train", corpus / "train.txt", "--out", tmp_path / "tree"],
                 ["generate", "--out", tmp_path / "gen", "--labels", 20, "--train-docs", 50, "--test-docs", 10]):
        r = invoke(*args, "--quiet")
        assert r.stderr == "", (args[0], r.stderr)
        lines = r.stdout.splitlines()
        assert len(lines) == 1 and summary.match(lines[0]), (args[0], r.stdout)
        assert ("P@1=" in lines[0]) == (args[0] in ("train", "predict")), lines[0]
    r = invoke("evaluate", "--predictions", tmp_path / "p.txt", "--truth", corpus / "test.txt", "-q")
    assert r.stderr == "" and not r.stdout.startswith("read ") and summary.match(r.stdout.splitlines()[-1])


@pytest.mark.slow
def test_deep_training_prints_progress_of_each_step(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("gensim")
    from xmc.data import TextData, write_jsonl
    from xmc.datasets.synthetic import SyntheticParams, make_text_corpus

    monkeypatch.setenv(INTERVAL_ENV, "0")
    c = make_text_corpus(SyntheticParams(n_labels=10, n_train=200, n_test=40, n_features=200, seed=3))
    write_jsonl(tmp_path / "train.jsonl", TextData(c.train_texts, c.train_labels))
    r = invoke("train", "--model", "attentionxml", "--train", tmp_path / "train.jsonl", "--model-dir", tmp_path / "m",
               "--set", "embedding.source=skipgram", "--set", "embedding.dim=8", "--set", "embedding.epochs=2",
               "--set", "hidden=8", "--epochs", 1, "--threads", 1, "--set", "training.batch_size=64")
    log = r.stderr
    assert re.search(r"^word vectors \(skipgram\): 2/2 epoch \(100%\), [\d.,]+ epoch/s, done in \d+ s$", log, re.M), log
    assert re.search(r"^attentionxml level 1/1 epoch 1: 2/3 batch \(67%\), [\d.,]+ batch/s, \d+ s left; loss [\d.]+$",
                     log, re.M), log
    assert re.search(r"^attentionxml level 1/1 epoch 1 validation: done in \d+ s$", log, re.M), log
    assert "Traceback" not in r.output
