"""Short CI version of the model-loader fuzzing (fuzz/model_loader_fuzz.py has the long runs).

Every crafted directory here has its manifests recomputed, so the checksums
pass and the loader's own checks are what is tested. A load must either give a
model whose predictions are sane or raise ModelFormatError naming a file of the
directory. The regression cases are what the fuzzer found. Most were bugs:
the load raised something else (TypeError, IndexError, OverflowError, a torch
allocation failure) or gave a model that then crashed or predicted NaN. Cases
marked "was refused" were already refused, but with a message that did not say
what was expected; they pin the clearer message.
"""
from __future__ import annotations

import importlib.util
import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from xmc.registry import load_model
from xmc.utils.modeldir import ModelFormatError, load_arrays, save_arrays, verify_model_dir

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore")  # forged values warn when cast; outcomes are asserted


def _harness():
    spec = importlib.util.spec_from_file_location("model_loader_fuzz", REPO / "fuzz" / "model_loader_fuzz.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fz = _harness()


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    sparse, text = fz.build_seeds(tmp_path_factory.mktemp("seeds"))
    return {"sparse": sparse, "text": text}


def crafted(seed: Path, tmp_path: Path, rel: str, change) -> Path:
    """A copy of ``seed`` with ``rel`` changed by ``change(path)`` and every manifest recomputed to match."""
    d = tmp_path / "model"
    shutil.copytree(seed, d)
    change(d / rel)
    fz.rewrite_manifests(d, rel, fz.snapshot(seed))
    return d


def edit_json(update):
    def change(path: Path) -> None:
        obj = json.loads(path.read_text())
        obj = update(obj) or obj
        path.write_text(json.dumps(obj))
    return change


def edit_array(name, make):
    def change(path: Path) -> None:
        arrays = load_arrays(path)
        arrays[name] = make(arrays[name])
        save_arrays(path, arrays)
    return change


def assert_refused(d: Path, rel: str, pattern: str) -> None:
    with pytest.raises(ModelFormatError) as err:
        load_model(d)
    message = str(err.value)
    assert str(d / rel) in message, message
    assert re.search(pattern, message), message


# ---- the harness itself ------------------------------------------------------------

def test_recomputed_manifests_are_what_write_manifest_writes(seeds, tmp_path):
    # Unchanged content: the recomputed manifests must equal, byte for byte, those xmc saved.
    for seed in seeds.values():
        d = tmp_path / seed.name
        shutil.copytree(seed, d)
        for rel in ("labels.json", "linear/weights.npz"):
            fz.rewrite_manifests(d, rel, fz.snapshot(seed))
            assert fz.snapshot(d) == fz.snapshot(seed)
    # Changed content: the checksums pass, so the loader's own checks are reached.
    d = crafted(seeds["sparse"], tmp_path / "changed", "linear/tree.json", edit_json(lambda o: {**o, "depth": "2"}))
    verify_model_dir(d)
    verify_model_dir(d / "linear")
    assert_refused(d, "linear/tree.json", r"integer 'depth'")


def test_seeded_mutations_load_or_are_refused_by_name(seeds, tmp_path):
    runner = fz.Runner(list(seeds.values()), tmp_path / "work")
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(300):
        outcome, where = runner.one(fz.RandomChoices(i))
        outcomes[outcome] += 1
    # Both outcomes in numbers: a harness that only hit checksums or never changed a file would fail here.
    assert outcomes["loaded"] > 25 and outcomes["refused"] > 150, outcomes


def test_prediction_check_reports_nan_scores(seeds, tmp_path):
    # The check behind every loaded input must fail on a model that predicts NaN, not pass it.
    model = load_model(seeds["sparse"])
    fz.check_predictions(model)
    model.model.weights[-1].data[:] = np.nan
    model.model._cached_searcher = None
    with pytest.raises(fz.LoaderBug, match="not finite"):
        fz.check_predictions(model)


# ---- regression cases: what the fuzzer found -----------------------------------------

LINEAR_CASES = {
    # tree.json: TypeError (string indexed by 'depth') and OverflowError (int(inf))
    "tree.json not an object": ("linear/tree.json", edit_json(lambda o: "x"), r"integer 'depth'"),
    "tree depth infinite": ("linear/tree.json", edit_json(lambda o: {**o, "depth": float("inf")}), r"integer 'depth'"),
    "tree depth huge": (  # was refused (KeyError text)
        "linear/tree.json", edit_json(lambda o: {**o, "depth": 2**40}), r"in \[1, 64\]"),
    # tree.npz: NaN or complex indptr was cast to int64 silently; label ids past int32 wrapped into range
    "tree indptr NaN": (  # was refused after a silent NaN cast
        "linear/tree.npz", edit_array("layer_0", lambda a: np.array([0.0, np.nan])),
                        r"'layer_0' must be 1-d integers"),
    "tree indptr complex": ("linear/tree.npz", edit_array("layer_0", lambda a: a.astype(np.complex64)),
                            r"must be 1-d integers"),
    "label id wraps in int32": ("linear/tree.npz", edit_array("label_order", lambda a: a.astype(np.int64) + 2**32),
                                r"'label_order' holds .*expected values in \[0, 2147483647\]"),
    "tree extra array": ("linear/tree.npz", edit_array("label_order", lambda a: a), None),
    # params.json: '' and 1.5 threads reached int() and pybind11 at predict time; 2**31 reached OpenMP
    "threads empty string": ("linear/params.json", edit_json(lambda o: {**o, "threads": ""}),
                             r"threads: expected int, found ''"),
    "threads float": ("linear/params.json", edit_json(lambda o: {**o, "threads": 1.5}), r"threads: expected int"),
    "threads huge": ("linear/params.json", edit_json(lambda o: {**o, "threads": 2**31}), r"threads must be in"),
    "nested tree params wrong type": ("linear/params.json", edit_json(lambda o: {**o, "tree": 3}),
                                      r"tree: expected TreeParams"),
    # weights.npz: NaN weights loaded and predicted NaN scores; float indices were cast
    "weights NaN": ("linear/weights.npz", edit_array("layer_0_data", lambda a: np.full_like(a, np.nan)),
                    r"non-finite value"),
    "weights overflow float32": ("linear/weights.npz",
                                 edit_array("layer_0_data", lambda a: a.astype(np.float64) * 1e300),
                                 r"non-finite value"),
    "weight indices float": ("linear/weights.npz", edit_array("layer_0_indices", lambda a: a.astype(np.float32)),
                             r"layer_0_indices must be 1-d integers"),
    "weight row out of range": (  # was refused by scipy
        "linear/weights.npz", edit_array("layer_0_indices", lambda a: a + 10**6),
                                r"layer_0_indices holds .*expected ids in \[0, 61\)"),
    "weight shape 2-d": (  # was refused (numpy conversion text)
        "linear/weights.npz", edit_array("layer_0_shape", lambda a: a.reshape(1, 2)),
                         r"layer_0_shape must be the integers"),
    "weights array missing": (  # was refused (KeyError text)
        "linear/weights.npz", None, r"are missing"),
    # the inner manifest: a string n_features was int()-ed
    "n_features string": ("linear/xmc.json", edit_json(lambda o: {**o, "n_features": "60"}),
                          r"integer 'n_features'"),
}


@pytest.mark.parametrize("case", sorted(LINEAR_CASES))
def test_linear_regressions(case, seeds, tmp_path):
    rel, change, pattern = LINEAR_CASES[case]
    if case == "tree extra array":
        def change(path: Path) -> None:
            save_arrays(path, {**load_arrays(path), "layer_7": np.arange(3)})
        pattern = r"expected arrays .* found"
    elif case == "weights array missing":
        def change(path: Path) -> None:
            arrays = load_arrays(path)
            del arrays["layer_1_data"]
            save_arrays(path, arrays)
    assert_refused(crafted(seeds["sparse"], tmp_path, rel, change), rel, pattern)


TEXT_CASES = {
    # tfidf_idf.npz holding strings: np.isfinite raised TypeError
    "idf strings": ("featurizer/tfidf_idf.npz", edit_array("idf", lambda a: a.astype("<U4")), r"finite idf values"),
    # an invalid regex failed with re.error at prediction; a non-string one with TypeError
    "token pattern invalid": ("featurizer/tfidf.json",
                              edit_json(lambda o: o["params"].update(token_pattern="(")), r"not a valid regex"),
    "token pattern not a string": ("featurizer/tfidf.json",
                                   edit_json(lambda o: o["params"].update(token_pattern=5)), r"token_pattern: expected str"),
    "ngram range of strings": (  # was refused (int() text)
        "featurizer/tfidf.json",
                               edit_json(lambda o: o["params"].update(ngram_range=[1, "a"])),
                               r"ngram_range: expected Tuple\[int, int\]"),
    # fewer terms than the model's features: X had the wrong width and predict_topk raised ValueError
    "vocabulary shorter than the model": ("featurizer/tfidf_vocab.json", edit_json(lambda o: o[:-1]),
                                          r"holds (\d+) terms but the model .* expects (?!\1)\d+ features"),
}


@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_text_regressions(case, seeds, tmp_path):
    rel, change, pattern = TEXT_CASES[case]
    if case == "vocabulary shorter than the model":
        def change(path: Path) -> None:  # idf shortened too, so the featurizer alone is consistent
            path.write_text(json.dumps(json.loads(path.read_text())[:-1]))
            idf = path.parent / "tfidf_idf.npz"
            save_arrays(idf, {"idf": load_arrays(idf)["idf"][:-1]})
        d = tmp_path / "model"
        shutil.copytree(seeds["text"], d)
        change(d / rel)
        fz.rewrite_manifests(d, rel, fz.snapshot(seeds["text"]))
        assert_refused(d, rel, pattern)
        return
    assert_refused(crafted(seeds["text"], tmp_path, rel, change), rel, pattern)


def test_texts_without_a_known_term_predict_nothing(seeds, tmp_path):
    # A valid pattern that matches nothing (found as 'cuda'): transform raised IndexError on the all-empty batch.
    d = crafted(seeds["text"], tmp_path, "featurizer/tfidf.json",
                edit_json(lambda o: o["params"].update(token_pattern="cuda")))
    model = load_model(d)
    assert fz.check_outcome(d) == "loaded"
    X = model.featurizer.transform(["alpha beta", ""])
    assert X.shape == (2, model.model.n_features) and X.nnz == 0


def _npz_bytes(members, compression=zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return out.getvalue()


def test_forged_npy_header_cannot_ask_for_terabytes(seeds, tmp_path):
    def change(path: Path) -> None:
        members = {f"{k}.npy": fz._npy_bytes(v) for k, v in load_arrays(path).items()}
        header = b"{'descr': '<i8', 'fortran_order': False, 'shape': (1000000000000,), }"
        header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
        members["label_order.npy"] = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 8
        path.write_bytes(_npz_bytes(members))
    d = crafted(seeds["sparse"], tmp_path, "linear/tree.npz", change)
    assert_refused(d, "linear/tree.npz", r"'label_order' claims shape \(1000000000000,\) of int64 "
                                         r"\(8,000,000,000,000 bytes\) but its member holds 8")


def test_compressed_member_is_refused(seeds, tmp_path):
    # A deflated member could expand a small forged file into gigabytes; xmc never compresses.
    def change(path: Path) -> None:
        members = {f"{k}.npy": fz._npy_bytes(v) for k, v in load_arrays(path).items()}
        path.write_bytes(_npz_bytes(members, zipfile.ZIP_DEFLATED))
    d = crafted(seeds["sparse"], tmp_path, "linear/weights.npz", change)
    assert_refused(d, "linear/weights.npz", r"is compressed; xmc stores arrays uncompressed")


def test_load_arrays_round_trips_what_save_arrays_writes(tmp_path):
    arrays = {"i": np.arange(7, dtype=np.int32), "f": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
              "empty": np.zeros((0, 3), np.float32), "scalar": np.array(2.5), "s": np.array(["ab", "c"])}
    save_arrays(tmp_path / "a.npz", arrays)
    back = load_arrays(tmp_path / "a.npz")
    assert sorted(back) == sorted(arrays)
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and np.array_equal(back[k], v)
        assert back[k].flags.writeable


# ---- deep models ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def deep_seeds(tmp_path_factory):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return {p.name: p for p in fz.build_seeds(tmp_path_factory.mktemp("deep"), deep=True)[2:]}


@pytest.fixture(scope="module")
def deep_seed(deep_seeds):
    return deep_seeds["attentionxml"]


DEEP_CASES = {
    # Networks were built from params.json before any shape check: torch tried to allocate 16 TB and 512 GB.
    "hidden 2**20": (edit_json(lambda o: {**o, "hidden": 2**20}), "params.json", r"has shape .* expected"),
    "hidden 2**31": (edit_json(lambda o: {**o, "hidden": 2**31}), "params.json", r"cannot be built|has shape"),
    "fc size 2**33": (edit_json(lambda o: {**o, "fc_sizes": [2**33]}), "params.json", r"has shape .* expected"),
    "embedding dim 2**30": (edit_json(lambda o: o["embedding"].update(dim=2**30)), "params.json",
                            r"has shape .* expected"),
    "hidden 10**30": (edit_json(lambda o: {**o, "hidden": 10**30}), "params.json", r"cannot be built"),
    "threads 2**20": (edit_json(lambda o: o["training"].update(threads=2**20)), "params.json", r"threads: expected an integer"),
    "lstm layers 10**9": (edit_json(lambda o: {**o, "lstm_layers": 10**9}), "params.json", r"lstm_layers"),
    # Loaded, then numpy overflowed cutting documents at prediction (fuzz input 140,778)
    "text max_len 10**30": (edit_json(lambda o: o["text"].update(max_len=10**30)), "params.json", r"max_len must be"),
    # The params' own TypeError and ValueError escaped the loader
    "params not an object": (edit_json(lambda o: 3), "params.json", r"expected an object of fields"),
    "dropout out of range": (edit_json(lambda o: {**o, "dropout": -1}), "params.json", r"dropout: expected a rate in"),
    "embedding params wrong type": (edit_json(lambda o: {**o, "embedding": "x"}), "params.json",
                                    r"embedding: expected EmbeddingParams"),
    # datetime weights reached torch.from_numpy; NaN weights would predict NaN
    "weights as datetimes": (edit_array("level1.scorer.fc.0.bias", lambda a: a.astype("datetime64[s]")),
                             "weights.npz", r"must hold finite real numbers"),
    "weights NaN": (edit_array("level1.scorer.queries", lambda a: np.full_like(a, np.nan)), "weights.npz",
                    r"non-finite"),
}


@pytest.mark.parametrize("case", sorted(DEEP_CASES))
def test_deep_regressions(case, deep_seed, tmp_path):
    import resource

    change, rel, pattern = DEEP_CASES[case]
    d = crafted(deep_seed, tmp_path, rel, change)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert_refused(d, rel, pattern)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, f"refusing it took {grown_mb:.0f} MB more peak memory"


def test_deep_seed_loads_and_predicts(deep_seed):
    assert fz.check_outcome(deep_seed) == "loaded"


def test_deep_padding_scores_are_zero(deep_seed, tmp_path):
    # Level-1 probabilities of exactly 0 left no candidate: the padded slots came back with score -1.0.
    # (A bias of -1e4, the largest magnitude a weight may have, makes sigmoid underflow to exactly 0.)
    d = crafted(deep_seed, tmp_path, "weights.npz",
                edit_array("level1.scorer.fc.3.bias", lambda a: np.full_like(a, -1e4)))
    model = load_model(d)
    fz.check_predictions(model)
    ids, scores = model.predict_topk(["anything at all"], k=4)
    assert np.all(ids == -1) and np.all(scores == 0.0)


@pytest.mark.parametrize("kind", ["attentionxml", "lightattention", "ensemble", "ldgn"])
def test_each_deep_seed_loads_and_predicts(kind, deep_seeds):
    assert fz.check_outcome(deep_seeds[kind]) == "loaded"


@pytest.mark.parametrize("kind", [["attentionxml"], 7, None, "linear"])
def test_ensemble_manifest_with_a_bad_member_kind_is_refused(kind, deep_seeds, tmp_path):
    # A list as the kind raised TypeError (unhashable) before it was checked (fuzz input 502,788).
    d = crafted(deep_seeds["ensemble"], tmp_path, "xmc.json", edit_json(lambda o: {**o, "model": kind}))
    assert_refused(d, "xmc.json", r"expected a model kind of")


def test_ensemble_members_with_other_label_order_are_refused(deep_seeds, tmp_path):
    # Members' scores are summed by label id: a member numbering the labels otherwise would mix labels up.
    # Its own labels.json, tree and weights stay consistent (the tree maps positions to ids), so only
    # the ensemble can see the mismatch.
    def swap_first_two(o):
        o["labels"][0], o["labels"][1] = o["labels"][1], o["labels"][0]

    d = crafted(deep_seeds["ensemble"], tmp_path, "member1/labels.json", edit_json(swap_first_two))
    assert_refused(d, "member1", r"labels differ from member0's")


def test_lightattention_pads_with_zero_scores_when_clusters_differ_in_size(deep_seeds, tmp_path):
    # Fuzz input 35,030 moved one label between clusters (sizes 3 and 3 became 1 and 5): a valid
    # tree, and asking for more labels than the beam's clusters hold gave padded slots score -1.0.
    def uneven(path):
        arrays = load_arrays(path)
        last = f"layer_{len(arrays) - 2}"
        leaves = arrays[last].copy()
        leaves[4] = leaves[3] + 1
        arrays[last] = leaves
        save_arrays(path, arrays)

    d = crafted(deep_seeds["lightattention"], tmp_path, "tree/tree.npz", uneven)
    model = load_model(d)
    fz.check_predictions(model)
    ids, scores = model.predict_topk(["anything at all"], k=len(model.vocab), beam=4)
    assert np.all(scores[ids == -1] == 0.0) and np.all(scores >= 0)


def test_seeded_mutations_of_an_ldgn_model_load_or_are_refused_by_name(deep_seeds, tmp_path):
    # The LDGN seed alone through the harness (the long runs mix it with the others): 150 inputs.
    runner = fz.Runner([deep_seeds["ldgn"]], work=tmp_path / "work")
    outcomes = [runner.one(fz.RandomChoices(i))[0] for i in range(150)]
    assert set(outcomes) <= {"loaded", "refused"} and "refused" in outcomes
