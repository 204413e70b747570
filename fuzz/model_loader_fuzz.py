"""Fuzz target for the model loader, ``xmc.models.load_model``.

The manifest holds every file's SHA-256, so a plain byte mutation only ever
reaches the checksum check. Each input here therefore crafts a directory whose
manifest was recomputed to match: it picks one file of a seed model saved by
xmc, changes it (raw bytes; for .npz one array's dtype, shape or values, or a
forged .npy header; for .json one value's type or a key), rewrites every
enclosing ``xmc.json`` so the checksums pass, then calls ``load_model`` and,
when that succeeds, ``predict_topk`` on a few tiny documents.

Allowed: the model loads and predicts sane output (ids in [-1, n_labels),
finite scores in [0, 1]), or ``ModelFormatError`` whose message names a path
inside the model directory. Anything else (IndexError, TypeError, a numpy or
native error, a crash, a hang) is a bug.

    # plain mode: seeded mutations, no atheris needed
    nice -n 19 python fuzz/model_loader_fuzz.py --plain 20000
    # atheris (coverage-guided); the data drives every choice
    PYTHONPATH=/tmp/atheris-pkg:. python fuzz/model_loader_fuzz.py -runs=1000000 -rss_limit_mb=4096 /tmp/loader-corpus

Seeds are built once into ``$XMC_LOADER_SEEDS`` (default /tmp/xmc-loader-seeds),
never into the repository. ``--deep`` adds a tiny AttentionXML (imports torch).
"""
from __future__ import annotations

import faulthandler
import io
import json
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import scipy.sparse as sp

# Fuzz the checkout this file lives in (run as a script, sys.path[0] would be fuzz/).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SEED_ROOT = Path(os.environ.get("XMC_LOADER_SEEDS", Path(tempfile.gettempdir()) / "xmc-loader-seeds"))
MANIFEST = "xmc.json"
HANG_SECONDS = 20


# ---- seeds ------------------------------------------------------------------------

def build_seeds(root: Path = SEED_ROOT, deep: bool = False) -> List[Path]:
    """Small valid models of each kind, saved by xmc itself (built once, reused)."""
    from xmc import __version__

    root = Path(root) / __version__
    from xmc.registry import MODELS

    # Every deep kind of the registry (a new model is fuzzed without an edit here).
    deep_kinds = [kind for kind, entry in MODELS.items() if entry.needs_torch] if deep else []
    seeds = [root / "pipeline_sparse", root / "pipeline_text"] + [root / kind for kind in deep_kinds]
    if all((s / MANIFEST).is_file() for s in seeds):
        return seeds
    from xmc.data import TextData, XCData
    from xmc.datasets.synthetic import SyntheticParams, make_corpus, make_text_corpus
    from xmc.linear import PLTParams
    from xmc.linear.pipeline import Pipeline
    from xmc.tree import TreeParams

    small = SyntheticParams(n_labels=24, n_train=120, n_test=4, n_features=60, avg_features_per_doc=8.0)
    tree = TreeParams(branching_factor=2, max_leaf_size=3, threads=1)  # depth 3: inner layers get mutated too
    if not (seeds[0] / MANIFEST).is_file():
        c = make_corpus(small)
        Pipeline(PLTParams(threads=1, tree=tree)).fit(XCData(c.X_train, c.Y_train, 60, 24)).save(seeds[0])
    if not (seeds[1] / MANIFEST).is_file():
        t = make_text_corpus(small)
        Pipeline(PLTParams(threads=1, tree=tree)).fit(TextData(t.train_texts, t.train_labels)).save(seeds[1])
    for kind, seed in zip(deep_kinds, seeds[2:]):
        if not (seed / MANIFEST).is_file():
            _build_deep_seed(seed, small, kind)
    return seeds


def _build_deep_seed(directory: Path, small, kind: str) -> None:
    """A tiny deep model of ``kind``: attentionxml, lightattention, ldgn (both graphs), seq2seq-mdc (hybrid
    attention), lwpt (HLW-LSTM, a few pre-training steps), laco (both auxiliary tasks), or an ensemble of
    two AttentionXMLs."""
    import torch

    from xmc.data import TextData
    from xmc.datasets.synthetic import make_text_corpus
    from xmc import registry
    from xmc.models.ensemble import Ensemble, EnsembleParams

    torch.set_num_threads(1)
    t = make_text_corpus(small)
    # One flat object of every kind's fields; each kind keeps its own (the format-1 reading).
    flat = dict({"epochs": 1, "hidden": 8, "fc_sizes": [8], "batch_size": 32, "device": "cpu",
                                   "threads": 1, "top_k": 4, "embedding": {"dim": 8},
                                   "text": {"max_len": 16, "max_vocab": 200},
                                   "tree": {"branching_factor": 4, "max_leaf_size": 4, "threads": 1},
                                   "flat_max_labels": 8, "gcn_dim": 8, "graph_width": 4, "label_embedding_dim": 8,
                                   "encoder": "hlw", "pretrain_steps": 3, "sentence_len": 4, "transformer_dim": 8,
                                   "attention_heads": 2, "transformer_layers": 1, "aux_tasks": "both"})
    member_kind = "attentionxml" if kind == "ensemble" else kind
    params = registry.get(member_kind).params_class().from_saved(flat)
    model = (Ensemble(EnsembleParams(model=member_kind, n_models=2, member=params)) if kind == "ensemble"
             else registry.get(kind).model_class()(params))
    model.fit(TextData(t.train_texts, t.train_labels), progress=False, log=None).save(directory)


def snapshot(seed: Path) -> Dict[str, bytes]:
    """Every file of a seed directory by relative path: the pristine bytes each input starts from."""
    return {p.relative_to(seed).as_posix(): p.read_bytes() for p in sorted(seed.rglob("*")) if p.is_file()}


# ---- choices: atheris' data or a seeded RNG drive the same mutation code ---------------

class RandomChoices:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def below(self, n: int) -> int:
        return self.r.randrange(n) if n > 1 else 0

    def blob(self, max_len: int) -> bytes:
        return self.r.randbytes(self.r.randrange(max_len + 1))


class FdpChoices:
    def __init__(self, fdp) -> None:
        self.fdp = fdp

    def below(self, n: int) -> int:
        return self.fdp.ConsumeIntInRange(0, n - 1) if n > 1 else 0

    def blob(self, max_len: int) -> bytes:
        return self.fdp.ConsumeBytes(min(max_len, self.fdp.remaining_bytes()))


# ---- mutations ----------------------------------------------------------------------

INT_SPECIALS = [-1, 0, 1, 2, 3, 7, 23, 24, 25, 60, 61, 2**31 - 1, 2**31, -2**31, 2**32, 2**62, 2**63 - 1, -2**63]
FLOAT_SPECIALS = [np.nan, np.inf, -np.inf, -1.0, 0.0, 1e30, -1e30, 5e-324, 0.5]
DTYPES = ["float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "uint32", "uint64",
          "bool", "complex64", "<U4", "S3", "datetime64[s]", "V4"]
JSON_SPECIALS = [None, True, False, 0, -1, 1, 2, 3, 2**20, 2**31, 2**63, -2**63, 10**30, 0.5, -0.0, 1e308, float("nan"),
                 float("inf"), "", "x", "sigmoid", "squared_hinge", "cuda", "pipeline", "text", "sparse",
                 [], [1, 2], ["a", "a"], {}, {"a": 1}, [[0, 1]]]


def _byte_mutation(c, original: bytes) -> bytes:
    op = c.below(5)
    if op == 0:
        return c.blob(4096)
    b = bytearray(original)
    if op == 1 and b:  # flip a few bytes: a damaged but plausible file
        for _ in range(1 + c.below(8)):
            b[c.below(len(b))] = c.below(256)
        return bytes(b)
    if op == 2:
        return bytes(b[:c.below(len(b) + 1)])
    if op == 3:
        at = c.below(len(b) + 1)
        return bytes(b[:at]) + c.blob(64) + bytes(b[at:])
    at, n = c.below(len(b) + 1), c.below(64)
    return bytes(b[:at] + b[at + n:])


def _mutate_array(c, a: np.ndarray, others: List[np.ndarray]) -> np.ndarray:
    op = c.below(8)
    with np.errstate(all="ignore"):
        if op == 0:  # another dtype
            try:
                return a.astype(DTYPES[c.below(len(DTYPES))])
            except (TypeError, ValueError):
                return a.astype(np.float64)
        if op == 1:  # another ndim
            kind = c.below(4)
            if kind == 0:
                return a.reshape(1, -1)
            if kind == 1:
                return a.reshape(-1, 1)
            if kind == 2:
                return np.asarray(a.flat[0] if a.size else 0, dtype=a.dtype)
            return a.reshape(1, 1, -1)
        if op == 2:  # fewer or more entries
            if c.below(2) and a.size:
                return a.reshape(-1)[:c.below(a.size)]
            extra = a.reshape(-1)[:1] if a.size else np.zeros(1, a.dtype)
            return np.concatenate([a.reshape(-1), np.repeat(extra, 1 + c.below(5))])
        if op in (3, 4):  # one or a few special values: out-of-range ids, negatives, NaN, huge sizes
            flat = a.reshape(-1).copy()
            if not flat.size:
                flat = np.zeros(1, dtype=a.dtype)
            specials = INT_SPECIALS + [flat.size, flat.size - 1, flat.size + 1]
            if flat.dtype.kind == "f":
                specials = specials + FLOAT_SPECIALS
            for _ in range(1 + c.below(3)):
                v = specials[c.below(len(specials))]
                i = c.below(flat.size)
                try:
                    flat[i] = v
                    if flat[i] != v and not (isinstance(v, float) and np.isnan(v)):
                        raise OverflowError
                except (OverflowError, ValueError):
                    flat = flat.astype(np.float64 if isinstance(v, float) else object)
                    if flat.dtype == object:
                        flat = flat.astype(np.float64)
                    flat[i] = v
            return flat.reshape(a.shape)
        if op == 5:  # order broken: shuffled, reversed or sorted
            flat = a.reshape(-1).copy()
            kind = c.below(3)
            if kind == 0 and flat.size > 1:
                i, j = c.below(flat.size), c.below(flat.size)
                flat[i], flat[j] = flat[j].copy(), flat[i].copy()
                return flat.reshape(a.shape)
            return (flat[::-1] if kind == 1 else np.sort(flat)).reshape(a.shape)
        if op == 6 and others:  # another array of the same file in its place
            return others[c.below(len(others))]
        return a + np.asarray(c.below(5) - 2).astype(a.dtype) if a.dtype.kind in "iuf" else a


def _forged_member(c, a: np.ndarray) -> bytes:
    """An .npy whose header claims a huge or odd shape over the real (small) data."""
    claims = [(10**12,), (2**62,), (2**31,), (a.size + 1,), (0,), (-1,), (3, 2**40)]
    shape = claims[c.below(len(claims))]
    dtype = np.lib.format.dtype_to_descr(a.dtype) if a.dtype.kind != "V" else "<f4"
    header = repr({"descr": dtype, "fortran_order": bool(c.below(2)), "shape": shape})
    buf = io.BytesIO()
    buf.write(b"\x93NUMPY\x01\x00")
    pad = 64 - (10 + len(header) + 1) % 64
    body = (header + " " * pad + "\n").encode("latin1")
    buf.write(len(body).to_bytes(2, "little") + body + a.tobytes())
    return buf.getvalue()


def _npz_mutation(c, original: bytes) -> bytes:
    try:
        with np.load(io.BytesIO(original), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception:
        return _byte_mutation(c, original)
    names = sorted(arrays)
    op = c.below(10)
    name = names[c.below(len(names))] if names else "x"
    if op == 0 and names:
        del arrays[name]
    elif op == 1:
        arrays[["layer_9_data", "layer_0_extra", "idf2", name + "_x"][c.below(4)]] = np.zeros(2, np.float32)
    elif op in (2, 3) and names:
        out = io.BytesIO()
        compression = zipfile.ZIP_DEFLATED if op == 3 else zipfile.ZIP_STORED
        with zipfile.ZipFile(out, "w", compression) as zf:
            for k in names:
                member = _forged_member(c, arrays[k]) if k == name and op == 2 else _npy_bytes(arrays[k])
                zf.writestr(k + ".npy", member)
        return out.getvalue()
    elif names:
        arrays[name] = _mutate_array(c, arrays[name], [arrays[k] for k in names if k != name])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=False)
    return buf.getvalue()


def _json_mutation(c, original: bytes) -> bytes:
    try:
        obj = json.loads(original)
    except ValueError:
        return _byte_mutation(c, original)
    for _ in range(1 + c.below(2)):
        obj = _mutate_json_value(c, obj, depth=0)
    return json.dumps(obj, indent=1).encode()


def _mutate_json_value(c, obj, depth: int):
    # Walk down to a random node, then replace, drop or add something there.
    if isinstance(obj, dict) and obj and depth < 6 and c.below(3):
        keys = sorted(obj)
        k = keys[c.below(len(keys))]
        op = c.below(6)
        if op == 0:
            return {key: v for key, v in obj.items() if key != k}
        if op == 1:
            return {**obj, ["extra", "n_features", "depth", "kind", "format_version"][c.below(5)]:
                    JSON_SPECIALS[c.below(len(JSON_SPECIALS))]}
        return {**obj, k: _mutate_json_value(c, obj[k], depth + 1)}
    if isinstance(obj, list) and obj and depth < 6 and c.below(3):
        i = c.below(len(obj))
        op = c.below(5)
        if op == 0:
            return obj[:i] + obj[i + 1:]
        if op == 1:
            return obj + [obj[i]]
        if op == 2:
            return obj[::-1]
        return obj[:i] + [_mutate_json_value(c, obj[i], depth + 1)] + obj[i + 1:]
    if isinstance(obj, (int, float)) and not isinstance(obj, bool) and c.below(2):
        return [obj + 1, obj - 1, -obj, obj * 1000, str(obj), float(obj)][c.below(6)]
    return JSON_SPECIALS[c.below(len(JSON_SPECIALS))]


def mutate(c, files: Dict[str, bytes]) -> Tuple[str, bytes, str]:
    """(relative path, new bytes, description) for one input."""
    names = sorted(files)
    rel = names[c.below(len(names))]
    original = files[rel]
    structured = c.below(4) != 0  # mostly structure-aware; raw bytes a quarter of the time
    if structured and rel.endswith(".npz"):
        return rel, _npz_mutation(c, original), "npz"
    if structured and rel.endswith(".json"):
        return rel, _json_mutation(c, original), "json"
    return rel, _byte_mutation(c, original), "bytes"


# ---- one input --------------------------------------------------------------------

def rewrite_manifests(model_dir: Path, changed: str, pristine: Dict[str, bytes]) -> None:
    """Recompute every manifest enclosing ``changed`` (innermost first), as write_manifest would.

    A changed manifest keeps its new content; manifests above it are recomputed.
    No fsync here (write_manifest's atomic save costs ms per input); the test
    suite checks this equals write_manifest's output.
    """
    from xmc.utils.modeldir import _model_files, file_digest

    parts = changed.split("/")
    for depth in range(len(parts) - 1, -1, -1):
        rel = "/".join(parts[:depth] + [MANIFEST])
        if rel == changed or rel not in pristine:
            continue
        info = json.loads(pristine[rel])
        sub = model_dir.joinpath(*parts[:depth])
        info["files"] = {}
        for f in _model_files(sub):
            size, digest = file_digest(sub / f)
            info["files"][f] = {"bytes": size, "sha256": digest}
        (sub / MANIFEST).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


class LoaderBug(AssertionError):
    """The loader let something through or failed with an error a user cannot act on."""


def _docs_for(model, rng: np.random.Generator):
    if getattr(model, "input_kind", None) == "sparse":
        n = model.model.n_features
        X = sp.random(3, n, density=min(1.0, 4.0 / max(n, 1)), format="csr", dtype=np.float32, random_state=rng)
        return sp.vstack([X, sp.csr_matrix((1, n), dtype=np.float32)]).tocsr()
    from xmc.data import TextData
    from xmc.datasets.synthetic import pseudo_words

    words = pseudo_words(60)[:6].tolist()  # the seed corpora's own words
    return TextData([" ".join(words), "", "unseen words only", " ".join(reversed(words))], [[]] * 4)


def check_outcome(model_dir: Path) -> str:
    """Load and predict; 'loaded' or 'refused', or raise LoaderBug / the unexpected exception."""
    from xmc.registry import load_model
    from xmc.utils.modeldir import ModelFormatError

    try:
        model = load_model(model_dir)
    except ModelFormatError as e:
        if str(model_dir) not in str(e):
            raise LoaderBug(f"ModelFormatError names no file of the model: {e}") from e
        return "refused"
    check_predictions(model)
    return "loaded"


def check_predictions(model) -> None:
    """A loaded model must predict sane output on a few tiny documents, else LoaderBug."""
    docs = _docs_for(model, np.random.default_rng(0))
    n_labels = len(model.vocab)
    for k, beam in ((3, 2), (n_labels + 2, 4)):
        ids, scores = model.predict_topk(docs, k=k, beam=beam)
        if ids.shape != (4, k) or scores.shape != (4, k):
            raise LoaderBug(f"predict_topk gave shapes {ids.shape}, {scores.shape}; expected (4, {k})")
        if ids.min() < -1 or ids.max() >= n_labels:
            raise LoaderBug(f"predicted label id outside [-1, {n_labels}): {ids.min()}..{ids.max()}")
        if not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1:
            raise LoaderBug(f"scores outside [0, 1] or not finite: {scores}")
        model.vocab.decode(ids[ids >= 0])


class Runner:
    """A working copy of each seed, changed one file per input and restored after it."""

    def __init__(self, seeds: List[Path], work: Optional[Path] = None) -> None:
        self.work = Path(work or tempfile.mkdtemp(prefix="xmc-loader-fuzz-",
                                                  dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
        self.pristine: List[Dict[str, bytes]] = []
        self.dirs: List[Path] = []
        for i, seed in enumerate(seeds):
            d = self.work / f"m{i}"
            if d.exists():
                shutil.rmtree(d)
            shutil.copytree(seed, d)
            self.dirs.append(d)
            self.pristine.append(snapshot(d))

    def one(self, c, on_loaded: Callable[[Path], str] = check_outcome) -> Tuple[str, str]:
        i = c.below(len(self.dirs))
        d, files = self.dirs[i], self.pristine[i]
        rel, payload, how = mutate(c, files)
        touched = [rel] + [r for r in files if r.endswith(MANIFEST) and r != rel]
        try:
            (d / rel).write_bytes(payload)
            rewrite_manifests(d, rel, files)
            return on_loaded(d), f"m{i}/{rel} ({how})"
        finally:
            for r in touched:
                (d / r).write_bytes(files[r])

    def keep(self, dest: Path, c) -> Path:
        """Rebuild one input's directory under ``dest`` for a bug report (same choices as ``one``)."""
        i = c.below(len(self.dirs))
        rel, payload, _ = mutate(c, self.pristine[i])
        out = dest
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(self.dirs[i], out)
        (out / rel).write_bytes(payload)
        rewrite_manifests(out, rel, self.pristine[i])
        return out


# ---- drivers ----------------------------------------------------------------------

def run_plain(n: int, start: int, deep: bool, bugs_dir: Path, stop_after: int) -> int:
    import resource

    limit = 6 << 30  # a forged shape must fail as MemoryError in here, not exhaust the shared machine
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    faulthandler.enable()
    runner = Runner(build_seeds(deep=deep))
    # The input being run, for a crash that kills the process (segfault, abort): one pwrite per input.
    progress = os.open(runner.work / "current_input", os.O_WRONLY | os.O_CREAT, 0o644)
    print(f"a crash leaves its input number in {runner.work / 'current_input'}", flush=True)
    counts = {"loaded": 0, "refused": 0, "bug": 0}
    signatures: Dict[str, int] = {}
    t0 = time.perf_counter()
    for i in range(start, start + n):
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)  # a hang, in Python or native, ends the run
        os.pwrite(progress, f"{i:<20d}\n".encode(), 0)
        try:
            outcome, _ = runner.one(RandomChoices(i))
            counts[outcome] += 1
        except Exception as e:  # noqa: BLE001 - every other exception is what we are looking for
            counts["bug"] += 1
            frame = traceback.extract_tb(e.__traceback__)[-1]
            sig = f"{type(e).__name__} at {Path(frame.filename).name}:{frame.lineno}"
            if sig not in signatures:
                signatures[sig] = i
                kept = runner.keep(bugs_dir / f"input_{i}", RandomChoices(i))
                print(f"BUG input {i}: {sig}: {str(e)[:300]}\n  directory: {kept}\n"
                      f"  reproduce: python fuzz/model_loader_fuzz.py --plain 1 --start {i}", flush=True)
                if len(signatures) >= stop_after:
                    break
        if (i - start + 1) % 5000 == 0:
            rate = (i - start + 1) / (time.perf_counter() - t0)
            print(f"{i - start + 1} inputs, {rate:.0f}/s, {counts}", flush=True)
    faulthandler.cancel_dump_traceback_later()
    elapsed = time.perf_counter() - t0
    done = sum(counts.values())
    print(f"done: {done} inputs in {elapsed:.1f} s ({done / elapsed:.0f} exec/s): {counts}; "
          f"{len(signatures)} distinct bug(s)")
    shutil.rmtree(runner.work, ignore_errors=True)
    return 1 if signatures else 0


def run_atheris(argv: List[str], deep: bool) -> None:
    import atheris

    with atheris.instrument_imports(include=["xmc"]):
        import xmc.models  # noqa: F401
        import xmc.linear.pipeline  # noqa: F401
        if deep:
            import xmc.models.attentionxml  # noqa: F401 - loaded lazily otherwise, so never instrumented
    runner = Runner(build_seeds(deep=deep))

    def test_one_input(data: bytes) -> None:
        runner.one(FdpChoices(atheris.FuzzedDataProvider(data)))

    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


def main(argv: List[str]) -> int:
    # One thread: the seeds are tiny, and OpenMP regions on a busy 2-core machine cost ~0.1 s each.
    # (Set before xmc's first import, which loads OpenMP.)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    warnings.simplefilter("ignore")  # casts of forged values warn; the outcome checks are what count
    deep = "--deep" in argv
    argv = [a for a in argv if a != "--deep"]
    if "--plain" in argv:
        import argparse

        ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        ap.add_argument("--plain", type=int, required=True, help="number of inputs")
        ap.add_argument("--start", type=int, default=0, help="first input's seed (reproduce one with --plain 1)")
        ap.add_argument("--bugs-dir", type=Path, default=Path(tempfile.gettempdir()) / "xmc-loader-bugs")
        ap.add_argument("--stop-after", type=int, default=20, help="stop after this many distinct bugs")
        a = ap.parse_args(argv[1:])
        return run_plain(a.plain, a.start, deep, a.bugs_dir, a.stop_after)
    run_atheris(argv, deep)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
