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
from xmc.registry import load_model  # noqa: E402
from xmc.training.checkpoint import find_checkpoint, open_checkpoint  # noqa: E402
from xmc.utils.modeldir import ModelFormatError  # noqa: E402

TINY = ["--set", "embedding.source=random", "--set", "embedding.dim=16", "--set", "hidden=16", "--threads", "1",
        "--set", "training.batch_size=32", "--set", "training.checkpoint_every=2"]
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
    ("attentionxml", ["--epochs", "2", "--set", "tree.branching_factor=4", "--set", "tree.max_leaf_size=4",
                      "--set", "flat_max_labels=8"], 15, 3.5),
    ("lightattention", ["--epochs", "2", "--set", "tree.branching_factor=4", "--set", "tree.max_leaf_size=4"],
     5, 3.0),
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


def test_linear_plt_sigkill_then_resume_equals_uninterrupted(corpus, tmp_path):
    args = ["train", "--model", "linear", "--train", corpus / "train.jsonl", "--set", "tree.branching_factor=2",
            "--set", "tree.max_leaf_size=2", "--threads", "1"]
    run_inprocess(*args, "--model-dir", tmp_path / "ref")
    ids0, scores0, _ = predictions(tmp_path / "ref", corpus / "test.jsonl")

    def same_as_reference(model_dir: Path) -> None:
        ids, scores, _ = predictions(model_dir, corpus / "test.jsonl")
        np.testing.assert_array_equal(ids, ids0)
        np.testing.assert_array_equal(scores, scores0)

    phases, finished = kill_and_resume(args, tmp_path, 3, np.random.default_rng(3), 1.5, same_as_reference)
    print(f"linear: 3 kills over {finished} completed runs; phases hit: {dict(Counter(phases))}")


def test_linear_resume_skips_finished_layers(corpus, tmp_path):
    from xmc.linear import PLTLinear, PLTParams
    from xmc.data import load_corpus
    from xmc.linear.pipeline import Pipeline
    from xmc.tree import TreeParams

    params = PLTParams(threads=1, tree=TreeParams(branching_factor=2, max_leaf_size=2))
    data = load_corpus(corpus / "train.jsonl")
    X, Y = Pipeline(params).prepare(data)
    full = PLTLinear(params).fit(X, Y, checkpoint_dir=tmp_path / "ck")
    assert full.tree.depth >= 4
    state = json.loads((tmp_path / "ck" / "state.json").read_text())
    assert state["layers_done"] == full.tree.depth
    # Keep only the first two layers' checkpoint: a resume trains the rest and equals the full run.
    partial = PLTLinear(params)
    calls = []
    import xmc.linear.plt as plt_module
    original = plt_module._core.linear_train_layer

    def counting(*a):
        calls.append(a[-4])  # the layer index (then threads, child_begin, child_end)
        return original(*a)

    plt_module._LayerCheckpoint(tmp_path / "ck2", params, X, Y).write(full.tree, full.weights[:2])
    plt_module._core.linear_train_layer = counting
    try:
        partial.fit(X, Y, checkpoint_dir=tmp_path / "ck2", resume=True)
    finally:
        plt_module._core.linear_train_layer = original
    assert calls == list(range(2, full.tree.depth))
    for a, b in zip(partial.weights, full.weights):
        assert (a != b).nnz == 0


def test_sigint_checkpoints_and_exits_130_then_damaged_checkpoint_is_refused(corpus, tmp_path):
    args = ["train", "--model", "attentionxml", "--train", corpus / "train.jsonl", *TINY, "--epochs", "20",
            "--set", "training.patience=20", "--model-dir", tmp_path / "m"]
    child = subprocess.Popen(LAUNCH + [str(a) for a in args], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    state = tmp_path / "m" / "checkpoint" / "state.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until training is under way (a checkpoint inside an epoch loop)
        try:
            if json.loads(state.read_text())["position"].get("loop"):
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    output, _ = child.communicate(timeout=60)
    assert child.returncode == 130, output
    assert "interrupted" in output and "--resume" in output and "Traceback" not in output
    loop = json.loads(state.read_text())["position"]["loop"]
    assert not loop["finished"] and loop["global_step"] >= 1
    open_checkpoint(tmp_path / "m" / "checkpoint", "attentionxml")
    if "saved as the model" in output:  # an epoch was validated before the signal: its weights are the model
        load_model(tmp_path / "m")
    else:
        assert "no epoch has been validated yet" in output, output
        with pytest.raises(ModelFormatError):
            load_model(tmp_path / "m")

    weights = tmp_path / "m" / "checkpoint" / "arrays.npz"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    result = CliRunner().invoke(_cli(), [str(a) for a in args] + ["--resume"])
    assert result.exit_code == 2, result.output
    assert "cannot resume from the checkpoint" in result.output and "corrupted" in result.output


def test_resume_with_changed_options_is_refused(corpus, tmp_path):
    args = ["train", "--model", "attentionxml", "--train", corpus / "train.jsonl", *TINY, "--epochs", "1",
            "--model-dir", tmp_path / "m"]
    run_inprocess(*args)
    from xmc.models.attentionxml import AttentionXML, AttentionXMLParams
    from xmc.text.embeddings import EmbeddingParams

    model = load_model(tmp_path / "m")
    result = CliRunner().invoke(_cli(), [str(a) for a in args] + ["--resume", "--set", "hidden=32"])
    assert result.exit_code == 0 and "nothing to resume" in result.output
    params = AttentionXMLParams.from_flat(dict(embedding=EmbeddingParams(source="random", dim=16), hidden=16,
                                               epochs=1, threads=1, batch_size=32, checkpoint_every=2))
    from xmc.data import load_corpus

    data = load_corpus(corpus / "train.jsonl")
    AttentionXML(params).fit(data, log=None, progress=False, checkpoint_dir=tmp_path / "ck")
    changed = params.with_values({"hidden": 32, "training.threads": 2})
    with pytest.raises(ModelFormatError, match=r"other options.*hidden: checkpoint 16, now 32"):
        AttentionXML(changed).fit(data, log=None, progress=False, checkpoint_dir=tmp_path / "ck", resume=True)
    other = TextData(data.texts[:-1], data.labels[:-1])
    with pytest.raises(ModelFormatError, match="other data"):
        AttentionXML(params).fit(other, log=None, progress=False, checkpoint_dir=tmp_path / "ck", resume=True)
    # The complete checkpoint resumes to the same model without training (threads may change).
    same = params.with_values({"training.threads": 2})
    resumed = AttentionXML(same).fit(data, log=None, progress=False, checkpoint_dir=tmp_path / "ck", resume=True)
    ids_a, _ = resumed.predict_topk(data, k=3, threads=1)
    assert ids_a.shape == (len(data), 3) and model.n_labels == resumed.n_labels
