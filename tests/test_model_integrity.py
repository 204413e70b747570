"""Saved models refuse to load when any file is missing, truncated, corrupted, forged or too new.

Each corruption runs on a fresh copy of one saved model. Every load must raise
ModelFormatError naming the damaged file and what is wrong, and nothing in a
planted pickle may ever run (a marker file would appear if it did).
"""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from xmc.data import TextData, XCData
from xmc.datasets.synthetic import SyntheticParams, make_corpus, make_text_corpus
from xmc.linear import PLTLinear, PLTParams
from xmc.linear.pipeline import Pipeline
from xmc.utils.modeldir import MANIFEST, ModelFormatError, file_digest, verify_model_dir

PARAMS = SyntheticParams(n_labels=50, n_train=500, n_test=50, n_features=300)
MARKER = "pickle_ran.marker"
REFUSES_PICKLE = r"pickled \(object\) data, which xmc never writes; refusing"
TRUNCATED = "truncated: [0-9,]+ bytes, manifest says [0-9,]+"


class _RunsCodeOnUnpickle:
    """Unpickling this calls Path.touch(marker): proof that a loader executed pickle."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _pickle_payload(marker: Path) -> bytes:
    return pickle.dumps(np.array([_RunsCodeOnUnpickle(str(marker))], dtype=object))


def _npz_with_object_array(marker: Path) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, layer_0_data=np.array([_RunsCodeOnUnpickle(str(marker))], dtype=object))
    return buf.getvalue()


@pytest.fixture(scope="module")
def corpus():
    c = make_corpus(PARAMS)
    return XCData(c.X_train, c.Y_train, PARAMS.n_features, PARAMS.n_labels), c.X_test


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory, corpus):
    train, X_test = corpus
    pipe = Pipeline(PLTParams(threads=2)).fit(train)
    d = tmp_path_factory.mktemp("pipe") / "model"
    pipe.save(d)
    return d, pipe.predict_topk(X_test, k=5)


@pytest.fixture(scope="module")
def saved_plt(tmp_path_factory, corpus):
    train, X_test = corpus
    model = PLTLinear(PLTParams(threads=2)).fit(train.X, train.Y)
    d = tmp_path_factory.mktemp("plt") / "model"
    model.save(d)
    return d, model.predict_topk(X_test, k=5)


# ---- corruptions: each takes a model directory and damages it in place --------------

def truncate(rel):
    def corrupt(d: Path) -> None:
        p = d / rel
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return corrupt


def flip_byte(rel):
    def corrupt(d: Path) -> None:
        p = d / rel
        b = bytearray(p.read_bytes())
        b[len(b) // 2] ^= 0x40
        p.write_bytes(bytes(b))
    return corrupt


def delete(rel):
    return lambda d: (d / rel).unlink()


def set_version(rel, version):
    def corrupt(d: Path) -> None:
        info = json.loads((d / rel).read_text())
        info["format_version"] = version
        (d / rel).write_text(json.dumps(info))
    return corrupt


def replace_by_pickle(rel):
    return lambda d: (d / rel).write_bytes(_pickle_payload(d.parent / MARKER))


def add_extra_array(rel):
    def corrupt(d: Path) -> None:
        with np.load(d / rel) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["backdoor"] = np.arange(3)
        np.savez(d / rel, **arrays)
    return corrupt


def forge_manifests(d: Path) -> None:
    """Recompute every manifest's hashes (inner first) as an attacker who edits files would."""
    for manifest in sorted(d.rglob(MANIFEST), key=lambda p: -len(p.parts)):
        info = json.loads(manifest.read_text())
        root = manifest.parent
        info["files"] = {rel: dict(zip(("bytes", "sha256"), file_digest(root / rel))) for rel in info["files"]}
        manifest.write_text(json.dumps(info))


def edit_files(change):
    """Rewrite the top manifest's file list with ``change(files)``."""
    def corrupt(d: Path) -> None:
        info = json.loads((d / MANIFEST).read_text())
        info["files"] = change(info["files"])
        (d / MANIFEST).write_text(json.dumps(info))
    return corrupt


def then_forge(corrupt):
    def both(d: Path) -> None:
        corrupt(d)
        forge_manifests(d)
    return both


# (corruption, file the message must name, what the message must say)
PIPELINE_CASES = {
    "truncate weights": (truncate("linear/weights.npz"), "linear/weights.npz", TRUNCATED),
    "truncate tree": (truncate("linear/tree.npz"), "linear/tree.npz", "truncated"),
    "truncate params": (truncate("linear/params.json"), "linear/params.json", "truncated"),
    "truncate labels": (truncate("labels.json"), "labels.json", "truncated"),
    "truncate manifest": (truncate(MANIFEST), f"model/{MANIFEST}", "corrupted or truncated manifest: not valid JSON"),
    "truncate inner manifest": (truncate(f"linear/{MANIFEST}"), f"linear/{MANIFEST}", "truncated"),
    "flip byte in weights": (flip_byte("linear/weights.npz"), "linear/weights.npz", "corrupted: SHA-256 differs"),
    "flip byte in tree": (flip_byte("linear/tree.npz"), "linear/tree.npz", "corrupted: SHA-256 differs"),
    "delete weights": (delete("linear/weights.npz"), "linear/weights.npz", "missing"),
    "delete labels": (delete("labels.json"), "labels.json", "missing"),
    "delete manifest": (delete(MANIFEST), f"model/{MANIFEST}", "missing.*not a finished xmc model"),
    "newer version": (set_version(MANIFEST, 7), f"model/{MANIFEST}",
                      r"format version 7 \(written by xmc [^)]+\) is newer than this xmc reads \(1 to 2\); upgrade xmc"),
    "newer inner version, manifests forged": (then_forge(set_version(f"linear/{MANIFEST}", 7)),
                                              f"linear/{MANIFEST}", "format version 7 .* is newer"),
    "version zero": (set_version(MANIFEST, 0), f"model/{MANIFEST}", "format version 0 is not one xmc wrote"),
    "weights replaced by pickle": (replace_by_pickle("linear/weights.npz"), "linear/weights.npz",
                                   "(truncated|grew|corrupted)"),
    "weights replaced by pickle, manifests forged": (then_forge(replace_by_pickle("linear/weights.npz")),
                                                     "linear/weights.npz", REFUSES_PICKLE),
    "object array in npz, manifests forged": (
        then_forge(lambda d: (d / "linear/weights.npz").write_bytes(_npz_with_object_array(d.parent / MARKER))),
        "linear/weights.npz", REFUSES_PICKLE),
    "extra array": (add_extra_array("linear/weights.npz"), "linear/weights.npz", "(grew|corrupted)"),
    "extra array, manifests forged": (then_forge(add_extra_array("linear/weights.npz")), "linear/weights.npz",
                                      r"unexpected arrays \['backdoor'\]"),
    "label map of another model, manifests forged": (
        then_forge(lambda d: (d / "labels.json").write_text(json.dumps({"format_version": 1, "labels": ["a", "b"]}))),
        "labels.json", "holds 2 labels but the model"),
}

PLT_CASES = {
    "truncate weights": (truncate("weights.npz"), "model/weights.npz", "truncated"),
    "truncate tree": (truncate("tree.npz"), "model/tree.npz", "truncated"),
    "truncate params": (truncate("params.json"), "model/params.json", "truncated"),
    "truncate manifest": (truncate(MANIFEST), f"model/{MANIFEST}", "corrupted or truncated manifest: not valid JSON"),
    "flip byte in weights": (flip_byte("weights.npz"), "model/weights.npz", "corrupted: SHA-256 differs"),
    "delete tree": (delete("tree.json"), "model/tree.json", "missing"),
    "newer version": (set_version(MANIFEST, 7), f"model/{MANIFEST}", "newer than this xmc reads"),
    "weights replaced by pickle": (replace_by_pickle("weights.npz"), "model/weights.npz",
                                   "(truncated|grew|corrupted)"),
    "weights replaced by pickle, manifest forged": (then_forge(replace_by_pickle("weights.npz")),
                                                    "model/weights.npz", REFUSES_PICKLE),
    "extra array, manifest forged": (then_forge(add_extra_array("weights.npz")), "model/weights.npz",
                                     "unexpected arrays"),
    "manifest points outside the model": (
        edit_files(lambda files: {**files, "../secret": {"bytes": 1, "sha256": "0" * 64}}),
        f"model/{MANIFEST}", "'../secret', which is not a path inside the model"),
    "required file dropped from manifest": (
        edit_files(lambda files: {k: v for k, v in files.items() if k != "weights.npz"}),
        "model/weights.npz", "missing: present but not listed in the manifest"),
}


def _check_refused(src: Path, tmp_path: Path, load, corrupt, names: str, problem: str) -> None:
    d = tmp_path / "model"
    shutil.copytree(src, d)
    corrupt(d)
    with pytest.raises(ModelFormatError) as err:
        load(d)
    message = str(err.value)
    assert names in message.replace("\\", "/"), message
    assert re.search(problem, message), message
    assert not (tmp_path / MARKER).exists(), "a pickle planted in the model ran while loading"


@pytest.mark.parametrize("case", sorted(PIPELINE_CASES))
def test_pipeline_refuses_damaged_directory(case, saved_pipeline, tmp_path):
    corrupt, names, problem = PIPELINE_CASES[case]
    _check_refused(saved_pipeline[0], tmp_path, Pipeline.load, corrupt, names, problem)


@pytest.mark.parametrize("case", sorted(PLT_CASES))
def test_plt_refuses_damaged_directory(case, saved_plt, tmp_path):
    corrupt, names, problem = PLT_CASES[case]
    _check_refused(saved_plt[0], tmp_path, PLTLinear.load, corrupt, names, problem)


def test_planted_pickle_would_run_if_unpickled(tmp_path):
    # Guards the tests above: the payload really does run code when a loader trusts pickle.
    pickle.loads(_pickle_payload(tmp_path / MARKER))
    assert (tmp_path / MARKER).exists()


def test_intact_saves_load_and_predict_identically(saved_pipeline, saved_plt, corpus, tmp_path):
    _, X_test = corpus
    for src, load, (ids, scores) in ((saved_pipeline[0], Pipeline.load, saved_pipeline[1]),
                                     (saved_plt[0], PLTLinear.load, saved_plt[1])):
        d = tmp_path / src.parent.name
        shutil.copytree(src, d)  # a moved model still verifies: the manifest holds relative paths
        loaded = load(d)
        ids2, scores2 = loaded.predict_topk(X_test, k=5)
        np.testing.assert_array_equal(ids2, ids)
        np.testing.assert_array_equal(scores2, scores)


def test_manifest_matches_an_independent_hash_of_every_file(saved_pipeline):
    d = saved_pipeline[0]
    info = json.loads((d / MANIFEST).read_text())
    on_disk = sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file() and p != d / MANIFEST)
    assert sorted(info["files"]) == on_disk
    assert "linear/xmc.json" in info["files"]  # the outer manifest covers the inner one
    for rel, entry in info["files"].items():
        data = (d / rel).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert verify_model_dir(d)["kind"] == "pipeline"


def test_file_digest_matches_hashlib_across_block_boundaries(tmp_path):
    rng = np.random.default_rng(0)
    for size in (0, 1, (1 << 20) - 1, 1 << 20, (3 << 20) + 17):
        p = tmp_path / f"f{size}"
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        p.write_bytes(data)
        assert file_digest(p) == (size, hashlib.sha256(data).hexdigest())


def test_interrupted_resave_is_not_loadable(saved_plt, corpus, tmp_path):
    train, _ = corpus
    d = tmp_path / "model"
    shutil.copytree(saved_plt[0], d)
    model = PLTLinear(PLTParams(threads=2)).fit(train.X, train.Y)

    def crash(*_args, **_kwargs):
        raise OSError("disk full")

    import xmc.linear.plt as plt_module
    original = plt_module.save_arrays
    plt_module.save_arrays = crash
    try:
        with pytest.raises(OSError, match="disk full"):
            model.save(d)
    finally:
        plt_module.save_arrays = original
    with pytest.raises(ModelFormatError, match="xmc.json: missing.*not a finished xmc model"):
        PLTLinear.load(d)
    model.save(d)  # a completed save over the same directory loads again
    assert PLTLinear.load(d).n_features == PARAMS.n_features


def test_text_pipeline_checks_featurizer_files(tmp_path):
    t = make_text_corpus(SyntheticParams(n_labels=20, n_train=200, n_test=10, n_features=200))
    pipe = Pipeline(PLTParams(threads=2)).fit(TextData(t.train_texts, t.train_labels))
    pipe.save(tmp_path / "m")
    test = TextData(t.test_texts, t.test_labels)
    np.testing.assert_array_equal(Pipeline.load(tmp_path / "m").predict_topk(test)[0], pipe.predict_topk(test)[0])
    idf = next((tmp_path / "m" / "featurizer").glob("*.npz"))
    truncate(idf.relative_to(tmp_path / "m").as_posix())(tmp_path / "m")
    with pytest.raises(ModelFormatError, match=f"featurizer/{idf.name}: truncated"):
        Pipeline.load(tmp_path / "m")


def test_model_without_checksums_says_why_it_cannot_load(saved_plt, tmp_path):
    d = tmp_path / "model"
    shutil.copytree(saved_plt[0], d)
    info = json.loads((d / MANIFEST).read_text())
    del info["files"]
    (d / MANIFEST).write_text(json.dumps(info))
    with pytest.raises(ModelFormatError, match="lists no file checksums.*re-train"):
        PLTLinear.load(d)


def test_a_directory_with_only_a_checkpoint_points_at_resume(tmp_path):
    d = tmp_path / "m"
    (d / "checkpoint").mkdir(parents=True)
    with pytest.raises(ModelFormatError, match="only a training checkpoint.*--resume"):
        verify_model_dir(d)


def test_prediction_files_that_are_not_predictions_name_the_file(tmp_path):
    from xmc.data.predictions import read_predictions
    from xmc.utils.modeldir import save_arrays

    binary = tmp_path / "random.bin"
    binary.write_bytes(b"a:1\n\xe5\x00\xff")
    with pytest.raises(ValueError, match=r"random.bin:2: expected UTF-8 text .*0xe5 at column 1"):
        read_predictions(binary)
    npz = tmp_path / "other.npz"
    save_arrays(npz, {"ids": np.zeros((1, 1), dtype=np.int32)})
    with pytest.raises(ValueError, match="other.npz: array 'scores' is missing"):
        read_predictions(npz)


def test_saved_files_honour_the_umask(tmp_path):
    import os
    import stat

    from xmc.data.predictions import PredictionWriter
    from xmc.utils.tempfiles import temp_dir_beside

    t = make_text_corpus(SyntheticParams(n_labels=10, n_train=100, n_test=5, n_features=100))
    pipe = Pipeline(PLTParams(threads=1)).fit(TextData(t.train_texts, t.train_labels))
    old = os.umask(0o027)
    try:
        pipe.save(tmp_path / "m")
        with PredictionWriter(tmp_path / "pred.txt", pipe.vocab) as writer:
            writer.write(np.zeros((1, 2), dtype=np.int32), np.ones((1, 2), dtype=np.float32))
        folder = temp_dir_beside(tmp_path / "c")
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "m").rglob("*") if p.is_file()] + [tmp_path / "pred.txt", tmp_path / "pred.npz"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o640}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750


def test_files_a_user_adds_to_a_model_directory_leave_it_loadable(saved_pipeline, corpus, tmp_path):
    from xmc.registry import load_model

    d = tmp_path / "model"
    shutil.copytree(saved_pipeline[0], d)
    X_test = corpus[1]
    (d / "pred.txt").write_text("0:0.5\n")
    (d / "pred.npz").write_bytes(b"not an npz")
    (d / "notes").mkdir()
    (d / "notes" / "run.md").write_text("trained on Monday")
    (d / "linear" / "weights.npz.bak").write_bytes(b"\x80pickle")
    for load in (Pipeline.load, load_model):
        ids, scores = load(d).predict_topk(X_test, k=5)
        np.testing.assert_array_equal(ids, saved_pipeline[1][0])
        np.testing.assert_array_equal(scores, saved_pipeline[1][1])


def test_a_loader_refuses_a_file_its_manifest_does_not_list(tmp_path):
    """Unlisted files are ignored, never read: inside ``reading`` a loader cannot open one."""
    from xmc.utils.modeldir import load_arrays, load_json, reading, save_arrays, save_json, write_manifest

    d = tmp_path / "m"
    save_json(d / "listed.json", {"a": 1})
    write_manifest(d, "toy")
    save_json(d / "added.json", {"a": 2})
    save_arrays(d / "sub" / "added.npz", {"x": np.zeros(2)})
    info = verify_model_dir(d, required=["listed.json"])
    with reading(d, info):
        assert load_json(d / "listed.json") == {"a": 1}
        with pytest.raises(ModelFormatError, match=r"added.json: not listed in the manifest .*m/xmc.json"):
            load_json(d / "added.json")
        with pytest.raises(ModelFormatError, match=r"sub/added.npz: not listed in the manifest"):
            load_arrays(d / "sub" / "added.npz")
    assert load_json(d / "added.json") == {"a": 2}  # outside a load nothing is checked


def test_a_deep_model_whose_manifest_drops_a_file_it_reads_is_refused(tmp_path):
    """text/ and tree/ are not in the deep loader's required list: the check while reading still covers them."""
    pytest.importorskip("torch")
    from xmc.registry import load_model

    d = tmp_path / "ax"
    shutil.copytree(Path(__file__).parent / "fixtures" / "models_0442351" / "attentionxml", d)
    edit_files(lambda files: {k: v for k, v in files.items() if k != "tree/tree.json"})(d)
    with pytest.raises(ModelFormatError, match=r"tree/tree.json: not listed in the manifest"):
        load_model(d)
