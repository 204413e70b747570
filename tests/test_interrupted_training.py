"""An interrupted deep training leaves a usable model: Ctrl-C (or SIGTERM) saves the best weights validated so
far as the model directory, `xmc save-best` does it for a run that was killed, and --resume still finishes
the training."""
from __future__ import annotations

import os
import shutil
import signal

import numpy as np
import pytest
from cli_checks import invoke

pytest.importorskip("torch")

from xmc.data import TextData, read_jsonl, write_jsonl  # noqa: E402
from xmc.datasets.synthetic import SyntheticParams, make_text_corpus  # noqa: E402
from xmc.registry import load_model  # noqa: E402
from xmc.training import checkpoint as ckpt  # noqa: E402
from xmc.utils.modeldir import MANIFEST  # noqa: E402

TINY = ["--set", "embedding.source=random", "--set", "embedding.dim=16", "--set", "hidden=16", "--threads", "1",
        "--set", "training.batch_size=32", "--set", "training.swa_start=0"]



@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("interrupt")
    c = make_text_corpus(SyntheticParams(n_labels=10, n_train=300, n_test=60, n_features=300, seed=5))
    write_jsonl(d / "train.jsonl", TextData(c.train_texts, c.train_labels))
    write_jsonl(d / "test.jsonl", TextData(c.test_texts, c.test_labels))
    return d


def stop_after(monkeypatch, epoch: int, step: int = 0) -> None:
    """Ctrl-C as the checkpoint of (``epoch``, ``step``) is written: the loop stops right after it."""
    original = ckpt.LevelCheckpoint.save

    def save(self, loop, optimizer, weights):
        original(self, loop, optimizer, weights)
        if (loop.epoch, loop.step) == (epoch, step):
            os.kill(os.getpid(), signal.SIGINT)  # the handler only sets the flag the loop reads
    monkeypatch.setattr(ckpt.LevelCheckpoint, "save", save)


def predict(model_dir, corpus):
    return load_model(model_dir).predict_topk(read_jsonl(corpus / "test.jsonl"), k=5, threads=1)


def train_args(corpus, model_dir, epochs):
    return ["train", "--model", "lightattention", "--train", corpus / "train.jsonl", "--valid",
            corpus / "test.jsonl", "--model-dir", model_dir, "--epochs", epochs, "--set", "training.patience=9", *TINY]


def test_ctrl_c_saves_the_best_weights_so_far_as_the_model_and_resume_finishes(corpus, tmp_path, monkeypatch):
    invoke(*train_args(corpus, tmp_path / "one_epoch", 1))
    stop_after(monkeypatch, epoch=2)  # as epoch 1 ends
    r = invoke(*train_args(corpus, tmp_path / "m", 3), code=130)
    assert "interrupted: the best weights so far (epoch 1, validation score" in r.stderr, r.output
    assert "saved as the model in" in r.stderr and "--resume" in r.stderr and "Traceback" not in r.output
    # The saved model is epoch 1's: the same as a run of one epoch.
    for a, b in zip(predict(tmp_path / "m", corpus), predict(tmp_path / "one_epoch", corpus)):
        np.testing.assert_array_equal(a, b)
    assert ckpt.find_checkpoint(tmp_path / "m" / "checkpoint") == tmp_path / "m" / "checkpoint"
    monkeypatch.undo()
    r = invoke(*train_args(corpus, tmp_path / "m", 3), "--resume")
    assert "resuming from the checkpoint" in r.stdout and "epoch 3:" in r.stdout
    assert not (tmp_path / "m" / "checkpoint").exists()
    load_model(tmp_path / "m")


def test_an_interruption_before_any_validation_saves_no_model(corpus, tmp_path, monkeypatch):
    stop_after(monkeypatch, epoch=1, step=2)
    r = invoke(*train_args(corpus, tmp_path / "m", 2), "--set", "training.checkpoint_every=2", code=130)
    assert "No model saved" in r.stderr and "no epoch has been validated yet" in r.stderr, r.output
    assert not (tmp_path / "m" / MANIFEST).exists()


def test_save_best_turns_the_checkpoint_of_a_killed_run_into_the_model(corpus, tmp_path, monkeypatch):
    stop_after(monkeypatch, epoch=2)
    invoke(*train_args(corpus, tmp_path / "m", 3), code=130)
    expected = predict(tmp_path / "m", corpus)
    killed = tmp_path / "killed"  # what kill -9 leaves: the checkpoint alone
    (killed / "checkpoint").parent.mkdir()
    shutil.copytree(tmp_path / "m" / "checkpoint", killed / "checkpoint")
    r = invoke("save-best", "--model-dir", killed)
    assert "the best weights so far (epoch 1" in r.stdout and "for --resume" in r.stdout
    for a, b in zip(predict(killed, corpus), expected):
        np.testing.assert_array_equal(a, b)
    assert (killed / "checkpoint" / MANIFEST).is_file()
    r = invoke("save-best", "--model-dir", tmp_path, code=2)
    assert "no checkpoint there" in r.output


def test_sigterm_stops_training_as_ctrl_c_does(tmp_path):
    """Job schedulers send SIGTERM at a time limit: it sets the same stop flag as the first Ctrl-C."""
    checkpoint = ckpt.DeepCheckpoint(model=None, path=tmp_path / "c", data_hash="")
    with checkpoint.stop_on_sigint():
        assert not checkpoint.interrupted()
        os.kill(os.getpid(), signal.SIGTERM)
        assert checkpoint.interrupted()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
