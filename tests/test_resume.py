"""Resumable training: SIGKILL at random moments, --resume until done, same model as an uninterrupted run.

Training runs as a ``python -m``-like subprocess of the worktree's CLI (with one
torch thread, so the floating-point work is the same in every process); the
uninterrupted reference runs in-process through the same CLI. After every kill,
the model directory must not load (it is written only when training is complete)
or load completely, and the checkpoint left must pass its manifest check.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

from conftest import REPO  # noqa: E402
from xmc.data import TextData, write_jsonl  # noqa: E402
from xmc.datasets.synthetic import SyntheticParams, make_text_corpus  # noqa: E402
from xmc.models import load_model  # noqa: E402
from xmc.utils.checkpoint import find_checkpoint, open_checkpoint  # noqa: E402
from xmc.utils.modeldir import ModelFormatError  # noqa: E402

TINY = ["--embedding", "random", "--embedding-dim", "16", "--hidden", "16", "--threads", "1", "--batch-size", "32",
        "--checkpoint-every", "2"]
# The worktree's own CLI (under an editable install from another checkout, xmc.cli points there).
LAUNCH = [sys.executable, "-c", "import sys; from cli.main import main; main(sys.argv[1:])"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(REPO)}


def _cli():
    from cli.main import cli

    return cli


def run_inprocess(*args) -> str:
    result = CliRunner().invoke(_cli(), [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    c = make_text_corpus(SyntheticParams(n_labels=40, n_train=300, n_test=60, n_features=300, seed=5))
    write_jsonl(d / "train.jsonl", TextData(c.train_texts, c.train_labels))
    write_jsonl(d / "test.jsonl", TextData(c.test_texts, c.test_labels))
    return d


def predictions(model_dir: Path, test: Path):
    from xmc.data import load_corpus
    from xmc.metrics import evaluate

    model = load_model(model_dir)
    data = load_corpus(test, **model.reader_kwargs())
    ids, scores = model.predict_topk(data, k=5, threads=1)
    return ids, scores, evaluate(model.labels(data), ids, ks=(1,))["P@1"]


def phase_of(checkpoint: Path) -> str:
    """Where the killed run was, read from what it left on disk."""
    parent, name = checkpoint.parent, checkpoint.name
    if any(parent.glob(f".{name}.tmp-*")) or (parent / f".{name}.old").exists():
        return "during a checkpoint write"
    if (parent / f".{name}.done").exists():
        return "while saving the model"
    found = find_checkpoint(checkpoint)
    if found is None:
        return "before the first checkpoint"
    position = json.loads((found / "state.json").read_text())["position"]
    loop = position.get("loop")
    if position.get("complete"):
        return "after training, before the save"
    if "layers_done" in json.loads((found / "state.json").read_text()):
        return "between layers"
    if loop is None:
        return "after the preparation"
    if loop["finished"]:
        return "between levels"
    return "mid-epoch" if loop["step"] > 0 else "at an epoch end"


def check_consistent(model_dir: Path, checkpoint: Path) -> None:
    """No half-written model (it loads fully or is refused as unfinished) and no half-written checkpoint."""
    try:
        load_model(model_dir)
    except ModelFormatError as e:
        assert "xmc.json" in str(e) or "not a directory" in str(e), e
    found = find_checkpoint(checkpoint)
    if found is not None:
        open_checkpoint(found, json.loads((found / "xmc.json").read_text())["model"])


def kill_and_resume(args, root: Path, kills: int, rng: np.random.Generator, max_delay: float, on_done):
    """SIGKILL runs at random delays after the data is read, --resume after each, ``kills`` kills in all.

    A run that finishes before its delay is checked (``on_done(model_dir)``) and a fresh one starts in a
    new model directory, so the number of kills does not depend on the machine's speed.
    """
    phases, finished, run = [], 0, 0
    log = root / "child.log"
    model_dir = root / f"m{run}"
    resume = False
    while True:
        checkpoint = model_dir / "checkpoint"
        command = LAUNCH + [str(a) for a in args] + ["--model-dir", str(model_dir)] + (["--resume"] if resume else [])
        with open(log, "w") as out:
            child = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=out, stderr=subprocess.STDOUT)
        if len(phases) < kills:
            deadline = time.monotonic() + 60
            while "read " not in log.read_text() and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(float(rng.uniform(0.0, max_delay)))
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                child.wait()
                phases.append(phase_of(checkpoint))
                check_consistent(model_dir, checkpoint)
                resume = True
                continue
        assert child.wait(timeout=120) == 0, log.read_text()
        assert not checkpoint.exists(), "the checkpoint is removed once the model is saved"
        on_done(model_dir)
        finished += 1
        if len(phases) >= kills:
            return phases, finished
        run += 1
        model_dir, resume = root / f"m{run}", False


@pytest.mark.parametrize("model,extra,kills,max_delay", [
    # 40 labels, at most 8 on a flat level: a 3-level tree (4, 16, 40 nodes), so kills also land between levels.
    ("attentionxml", ["--epochs", "2", "--branching-factor", "4", "--max-leaf-size", "4",
                      "--flat-max-labels", "8"], 15, 5.0),
    ("lightattention", ["--epochs", "2", "--branching-factor", "4", "--max-leaf-size", "4"], 5, 4.0),
])
def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(corpus, tmp_path, model, extra, kills,
                                                                     max_delay):
    args = ["train", "--model", model, "--train", corpus / "train.jsonl", *TINY, *extra]
    run_inprocess(*args, "--model-dir", tmp_path / "ref")
    ids0, scores0, p1_ref = predictions(tmp_path / "ref", corpus / "test.jsonl")

    def same_as_reference(model_dir: Path) -> None:
        ids, scores, p1 = predictions(model_dir, corpus / "test.jsonl")
        assert abs(p1 - p1_ref) <= 0.005
        np.testing.assert_array_equal(ids, ids0)  # one torch thread: the same arithmetic, the same model
        np.testing.assert_allclose(scores, scores0, atol=1e-6)

    phases, finished = kill_and_resume(args, tmp_path, kills, np.random.default_rng(7), max_delay, same_as_reference)
    print(f"{model}: {kills} kills over {finished} completed runs; phases hit: {dict(Counter(phases))}")
    assert finished >= 1 and len(set(phases)) >= 2, phases
