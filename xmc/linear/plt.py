"""Linear probabilistic label tree (PLT): the XR-Linear / Parabel / napkinXC model.

Layer t of the label tree holds one binary classifier per child of the level-t
nodes, trained on the documents positive at the parent; a label's score is the
product of the node probabilities along its path, found by beam search.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import scipy.sparse as sp

from xmc import _core
from xmc.data.vocab import LABELS_JSON, LabelVocab
from xmc.estimator import Estimator, label_matrix
from xmc.linear.params import PLTParams
from xmc.search import BeamSearcher
from xmc.training import distributed
from xmc.training.checkpoint import (STATE_JSON, CheckpointError, find_checkpoint, fingerprint, open_checkpoint,
                                     params_changes, write_checkpoint)
from xmc.tree.build import build_label_tree
from xmc.tree.label_tree import TREE_ARRAYS, TREE_JSON, LabelTree
from xmc.utils.modeldir import (MANIFEST, ModelFormatError, begin_save, load_arrays, load_json, read_manifest, reading,
                                save_arrays, save_json, write_manifest)
from xmc.utils.progress import progress as show_progress
from xmc.utils.resources import StageTimes
from xmc.utils.sparse import as_csr, compressed_problem, csr_arrays, l2_normalize_rows

KIND = "plt-linear"
PARAMS_JSON = "params.json"
WEIGHTS_NPZ = "weights.npz"
REQUIRED_FILES = (PARAMS_JSON, WEIGHTS_NPZ, TREE_JSON, TREE_ARRAYS)


def _check_binary(Y: sp.csr_matrix) -> sp.csr_matrix:
    Y = as_csr(Y)
    if Y.nnz and not np.all(Y.data != 0):
        Y = Y.copy()  # never mutate the caller's matrix (it may be a read-only map of a cache)
        Y.eliminate_zeros()
    bad = np.flatnonzero(Y.data != 1)
    if bad.size:
        row = int(np.searchsorted(Y.indptr, bad[0], side="right") - 1)
        raise ValueError(f"Y must be binary (0/1): row {row}, label {int(Y.indices[bad[0]])} "
                         f"holds {float(Y.data[bad[0]])!r}")
    return Y


def _children_of_this_rank(tree: LabelTree, t: int, parent_ptr: Optional[np.ndarray], n_docs: int) -> Tuple[int, int]:
    """This rank's contiguous range of the layer's children, (0, -1) for all outside torchrun.

    Ranges hold about equal cost: a child's cost is the number of documents of its parent,
    which its solver scans."""
    if not distributed.is_distributed():
        return 0, -1
    children_per_parent = np.diff(tree.layer_indptr[t])
    docs = np.diff(parent_ptr) if parent_ptr is not None else np.array([n_docs])
    return distributed.share_of_columns(np.repeat(docs + 1, children_per_parent))


class PLTLinear(Estimator):
    """A label tree with a sparse linear classifier per node.

    ``weights[t]`` is a CSC float32 matrix of shape (n_features + 1, nodes of
    level t+1) whose last row is the bias weight; in the last layer column j
    scores label ``tree.label_order[j]``. A label's score is the product of the
    node scores on its path: not a probability until calibrated
    (:meth:`~xmc.estimator.Estimator.tune_thresholds`).
    """

    PARAMS = PLTParams
    CALIBRATE_SCORES = True

    def __init__(self, params: Optional[PLTParams] = None, **settings) -> None:
        """``PLTLinear(PLTParams(C=1.0))``, ``PLTLinear(C=1.0, threads=2)`` or both (see :mod:`xmc.estimator`)."""
        self.params = self._params_from(params, settings)
        self.vocab: Optional[LabelVocab] = None  # the labels of Y's columns when fit was given lists of labels
        self.tree: Optional[LabelTree] = None
        self.weights: List[sp.csc_matrix] = []
        self.n_features: Optional[int] = None
        self._cached_searcher = None
        self.stage_seconds = StageTimes()  # of the last fit: tree, training

    # ---- training -------------------------------------------------------------
    def fit(self, X, Y, tree: Optional[LabelTree] = None, progress: bool = False,
            checkpoint_dir: Optional[Union[str, Path]] = None, resume: bool = False) -> "PLTLinear":
        """Train every layer of the tree. ``Y``: a 0/1 (n_docs, n_labels) matrix, or one list of labels per
        document (strings or ints; ``classes_`` then names the columns). With ``checkpoint_dir``, the tree and
        each finished layer are checkpointed there; with ``resume``, the layers already there are kept and
        training goes on from the next one (the per-node solver is deterministic, so the model equals an
        uninterrupted run's)."""
        p = self.params
        p.validate()
        self.stage_seconds = stages = StageTimes()
        X = self.prepare_rows(X)
        Y, vocab = label_matrix(Y)
        Y = _check_binary(Y)
        if X.shape[0] != Y.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but Y has {Y.shape[0]}; they must describe the same documents")
        ckpt = _LayerCheckpoint(Path(checkpoint_dir), p, X, Y) if checkpoint_dir is not None else None
        weights: List[sp.csc_matrix] = []
        if ckpt is not None and resume:
            restored = ckpt.load()
            if restored is not None:
                tree, weights = restored
        if tree is None:
            # Under torchrun rank 0 builds it and the others receive it: a tree built on each rank
            # could differ in the last bits of its k-means and split labels otherwise.
            with stages.stage("tree"), show_progress(f"label tree of {Y.shape[1]:,} labels",
                                                     enabled=progress and distributed.is_main()):
                tree = distributed.tree_from_main(lambda: build_label_tree(X, Y, p.tree))
            if ckpt is not None and distributed.is_main():
                ckpt.write(tree, [])
        if tree.n_labels != Y.shape[1]:
            raise ValueError(f"the label tree holds {tree.n_labels} labels but Y has {Y.shape[1]} columns")

        x_arrays = csr_arrays(X)
        with stages.stage("training"), show_progress("training PLT layers", total=tree.depth, unit="layer",
                                                     initial=len(weights),
                                                     enabled=progress and distributed.is_main()) as bar:
            for t in range(len(weights), tree.depth):
                weights.append(self._train_layer(tree, t, x_arrays, Y))
                if ckpt is not None and distributed.is_main():
                    ckpt.write(tree, weights)
                bar.update(1)
        n_features = x_arrays[3]
        self.tree, self.weights, self.n_features, self.vocab = tree, weights, n_features, vocab
        self._cached_searcher = None
        self.thresholds = None  # tuned for the weights they were tuned with
        return self

    @property
    def n_labels(self) -> int:
        if self.tree is None:
            raise RuntimeError("this PLTLinear is not trained: call fit() or PLTLinear.load() first")
        return self.tree.n_labels

    def _train_layer(self, tree: LabelTree, t: int, x_arrays: tuple, Y: sp.csr_matrix) -> sp.csc_matrix:
        """The weights of the nodes of level ``t + 1`` (this rank's share of them, merged across ranks)."""
        p = self.params
        x_indptr, x_indices, x_data, n_features = x_arrays
        if t == 0:
            parent_ptr, parent_docs = None, None  # the root holds every document, labelled or not
        else:
            P = tree.node_targets(Y, t).tocsc()
            P.sort_indices()
            parent_ptr = np.ascontiguousarray(P.indptr, dtype=np.int64)
            parent_docs = np.ascontiguousarray(P.indices, dtype=np.int32)
        T = tree.node_targets(Y, t + 1)
        T.sort_indices()
        begin, end = _children_of_this_rank(tree, t, parent_ptr, x_indptr.size - 1)
        indptr, indices, data, shape = _core.linear_train_layer(
            x_indptr, x_indices, x_data, n_features, parent_ptr, parent_docs,
            tree.layer_indptr[t], np.ascontiguousarray(T.indptr, dtype=np.int64),
            np.ascontiguousarray(T.indices, dtype=np.int32), T.shape[1],
            p.loss, float(p.C), float(p.eps), int(p.max_iter), float(p.bias),
            float(p.weight_threshold), int(p.seed), t, int(p.threads), begin, end)
        W = distributed.gather_columns(sp.csc_matrix((data, indices, indptr), shape=shape))
        if p.bias != 1.0:
            # Fold the bias value into its weight: scorers use an implicit feature of 1.0.
            last = W.indices == n_features
            W.data[last] *= np.float32(p.bias)
        return W

    # ---- prediction -------------------------------------------------------------
    def prepare_rows(self, X) -> sp.csr_matrix:
        """``X`` as the node classifiers read it (rows at unit L2 norm with ``normalize_rows``)."""
        X = as_csr(X)
        return l2_normalize_rows(X) if self.params.normalize_rows else X

    def prepare_search(self) -> "PLTLinear":
        """Re-lay the weights for beam search now rather than in the first prediction.

        The layout costs time in proportion to the model's size; a server (or a benchmark that
        times predictions alone, as PECOS's ``is_predict_only`` load does) pays it at load time.
        """
        self._searcher()
        return self

    def _searcher(self):
        if self.tree is None:
            raise RuntimeError("this PLTLinear is not trained: call fit() or PLTLinear.load() first")
        # The searcher re-lays the weights per parent once; batches of predictions reuse it.
        if self._cached_searcher is None:
            self._cached_searcher = BeamSearcher(self.tree, self.weights, self.params.resolved_activation)
        return self._cached_searcher

    def _check_features(self, X) -> sp.csr_matrix:
        if self.tree is None:
            raise RuntimeError("this PLTLinear is not trained: call fit() or PLTLinear.load() first")
        X = as_csr(X)
        if X.shape[1] != self.n_features:
            raise ValueError(f"X has {X.shape[1]} features but the model was trained on {self.n_features}")
        return self.prepare_rows(X)

    def predict_topk(self, X, k: int = 5, beam: int = 10,
                     threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(ids, scores), each (n_docs, k), best label first."""
        X = self._check_features(X)
        searcher = self._searcher()
        threads = self.params.threads if threads is None else threads
        return searcher.search(X, k=k, beam=beam, threads=threads)

    def decision_function(self, X, k: int = 5, beam: int = 10, threads: Optional[int] = None) -> sp.csr_matrix:
        """Raw scores (path products) of each document's top k labels as a CSR (n_docs, n_labels)."""
        X = self._check_features(X)
        threads = self.params.threads if threads is None else threads
        return self._searcher().search_csr(X, k=k, beam=beam, threads=threads)

    # ---- persistence -----------------------------------------------------------
    def save(self, directory: Union[str, Path]) -> None:
        """Write the model into ``directory``; its manifest (sizes and SHA-256 of every file) goes last."""
        if self.tree is None:
            raise RuntimeError("nothing to save: the model is not trained")
        directory = begin_save(Path(directory))
        self.tree.save(directory)
        arrays = {}
        for t, W in enumerate(self.weights):
            arrays[f"layer_{t}_indptr"] = W.indptr.astype(np.int64)
            arrays[f"layer_{t}_indices"] = W.indices.astype(np.int32)
            arrays[f"layer_{t}_data"] = W.data.astype(np.float32)
            arrays[f"layer_{t}_shape"] = np.asarray(W.shape, dtype=np.int64)
        save_arrays(directory / WEIGHTS_NPZ, arrays)
        save_json(directory / PARAMS_JSON, self.params.to_dict())
        if self.vocab is not None:
            self.vocab.save(directory)
        else:
            (directory / LABELS_JSON).unlink(missing_ok=True)  # an earlier save's labels are not this model's
        self._save_thresholds(directory)
        write_manifest(directory, KIND, {"n_features": int(self.n_features), "n_labels": self.tree.n_labels,
                                         "depth": self.tree.depth})

    @classmethod
    def load(cls, directory: Union[str, Path], verify: bool = True) -> "PLTLinear":
        """Load a saved model. Every file is checked against the manifest before any is parsed;
        ``verify=False`` is for callers that already checked an enclosing manifest."""
        directory = Path(directory)
        info = read_manifest(directory, KIND, required=REQUIRED_FILES, verify=verify)
        with reading(directory, info):
            return cls._load_listed(directory, info)

    @classmethod
    def _load_listed(cls, directory: Path, info: dict) -> "PLTLinear":
        n_features = info.get("n_features")
        if not isinstance(n_features, int) or isinstance(n_features, bool) or not 0 <= n_features < 2**31 - 1:
            # Feature ids are int32 in the native search, and the bias row is one past the last.
            raise ModelFormatError(f"{directory / MANIFEST}: needs an integer 'n_features' in [0, 2**31 - 1), "
                                   f"found {n_features!r}")
        params = load_json(directory / PARAMS_JSON)
        if not isinstance(params, dict):
            raise ModelFormatError(f"{directory / PARAMS_JSON}: expected a JSON object of PLT parameters")
        try:
            model = cls(PLTParams.from_dict(params, strict=False))
        except (ValueError, TypeError) as e:
            raise ModelFormatError(f"{directory / PARAMS_JSON}: invalid PLT parameters ({e})") from e
        model.tree = LabelTree.load(directory)
        arrays = load_arrays(directory / WEIGHTS_NPZ)
        expected_names = {f"layer_{t}_{part}" for t in range(model.tree.depth)
                          for part in ("indptr", "indices", "data", "shape")}
        unknown = sorted(set(arrays) - expected_names)
        if unknown:
            raise ModelFormatError(f"{directory / WEIGHTS_NPZ}: unexpected arrays {unknown}; a depth-"
                                   f"{model.tree.depth} PLT holds only layer_<t>_{{indptr,indices,data,shape}}")
        missing = sorted(expected_names - set(arrays))
        if missing:
            raise ModelFormatError(f"{directory / WEIGHTS_NPZ}: arrays {missing} are missing")
        try:
            weights = [_layer_from_arrays(arrays, t, (n_features + 1, model.tree.level_size(t + 1)))
                       for t in range(model.tree.depth)]
        except ValueError as e:
            raise ModelFormatError(f"{directory / WEIGHTS_NPZ}: damaged PLT weights: {e}") from e
        model.weights, model.n_features = weights, n_features
        if LABELS_JSON in info["files"]:
            model.vocab = LabelVocab.load(directory)
            if len(model.vocab) != model.tree.n_labels:
                raise ModelFormatError(f"{directory / LABELS_JSON}: holds {len(model.vocab)} labels but the tree "
                                       f"has {model.tree.n_labels}")
        model._load_thresholds(directory, info)
        return model

    def __repr__(self) -> str:
        return f"PLTLinear({self.tree!r}, n_features={self.n_features}, params={self.params})"


def _layer_from_arrays(arrays: dict, t: int, expected: Tuple[int, int]) -> sp.csc_matrix:
    """Layer ``t``'s CSC weights from saved arrays, every dtype, shape and index checked first:
    the native search would read out of bounds on a bad index, and NaN weights give NaN scores."""
    shape, indptr, indices, data = (arrays[f"layer_{t}_{part}"] for part in ("shape", "indptr", "indices", "data"))
    if shape.dtype.kind not in "iu" or shape.shape != (2,) or tuple(int(s) for s in shape) != expected:
        raise ValueError(f"layer_{t}_shape must be the integers {list(expected)}, found {shape!r}"[:200])
    problem = compressed_problem(tuple(f"layer_{t}_{part}" for part in ("indptr", "indices", "data")),
                                 indptr, indices, data, n_outer=expected[1], n_inner=expected[0])
    if problem is not None:
        raise ValueError(problem)
    data = data.astype(np.float32)
    return sp.csc_matrix((data, indices.astype(np.int32), indptr.astype(np.int64)), shape=expected)


def _layer_arrays(W: sp.csc_matrix) -> dict:
    return {"indptr": W.indptr.astype(np.int64), "indices": W.indices.astype(np.int32),
            "data": W.data.astype(np.float32), "shape": np.asarray(W.shape, dtype=np.int64)}


class _LayerCheckpoint:
    """The tree and the finished layers of a PLT being trained, in a crash-safe checkpoint directory.

    Each layer is its own ``layer_<t>.npz``; a new checkpoint hard-links the files of
    layers the previous one already holds, so checkpointing a layer costs that layer only.
    """

    FORMAT = 1

    def __init__(self, path: Path, params: PLTParams, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
        self.path, self.params = path, params
        self.data = fingerprint([X.indptr.astype(np.int64).tobytes(), X.indices.astype(np.int64).tobytes(),
                                 X.data.astype(np.float32).tobytes(), np.asarray(X.shape).tobytes(),
                                 Y.indptr.astype(np.int64).tobytes(), Y.indices.astype(np.int64).tobytes(),
                                 np.asarray(Y.shape).tobytes()])

    def _params(self) -> dict:
        d = self.params.to_dict()
        d.pop("threads", None)
        d.get("tree", {}).pop("threads", None)
        return d

    def write(self, tree: LabelTree, weights: List[sp.csc_matrix]) -> None:
        import os

        previous = find_checkpoint(self.path)

        def fill(folder: Path) -> None:
            tree.save(folder)
            for t, W in enumerate(weights):
                name = f"layer_{t}.npz"
                if previous is not None and t < len(weights) - 1 and (previous / name).is_file():
                    try:
                        os.link(previous / name, folder / name)
                        continue
                    except OSError:
                        pass  # no hard links here (another file system): write it again
                save_arrays(folder / name, _layer_arrays(W))
            save_json(folder / STATE_JSON, {"format": self.FORMAT, "params": self._params(), "data": self.data,
                                            "layers_done": len(weights)})

        write_checkpoint(self.path, KIND, fill, {"layers_done": len(weights), "depth": tree.depth})

    def load(self) -> Optional[Tuple[LabelTree, List[sp.csc_matrix]]]:
        found = find_checkpoint(self.path)
        if found is None:
            return None
        info = open_checkpoint(found, KIND, required=[STATE_JSON, TREE_JSON, TREE_ARRAYS])
        with reading(found, info):
            return self._read(found)

    def _read(self, found: Path) -> Tuple[LabelTree, List[sp.csc_matrix]]:
        state = load_json(found / STATE_JSON)
        if not isinstance(state, dict) or state.get("format") != self.FORMAT:
            raise CheckpointError(f"{found / STATE_JSON}: not a PLT checkpoint format this xmc reads ({self.FORMAT})")
        if state.get("data") != self.data:
            raise CheckpointError(f"{found}: was written while training on other data; resume with the same "
                                  f"files, or start over without --resume")
        changes = params_changes(state.get("params", {}), self._params())
        if changes:
            raise CheckpointError(f"{found}: was written with other options; resume with the same command "
                                  f"(or start over without --resume). Differences: " + "; ".join(changes))
        tree = LabelTree.load(found)
        weights = []
        for t in range(int(state["layers_done"])):
            arrays = load_arrays(found / f"layer_{t}.npz")
            W = sp.csc_matrix((arrays["data"], arrays["indices"], arrays["indptr"]),
                              shape=tuple(int(x) for x in arrays["shape"]))
            weights.append(W)
        return tree, weights
