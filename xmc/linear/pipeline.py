"""A trained model with everything needed to go from a raw input file to labels.

``Pipeline`` bundles the label vocabulary, the TF-IDF featurizer (for raw
text) and the linear PLT, and saves them together in one self-describing
directory. The CLI, tests and benchmarks all use it.

Directory layout::

    MODEL_DIR/xmc.json         format version, kind "pipeline", input kind, and the
                               size + SHA-256 of every file below MODEL_DIR
    MODEL_DIR/labels.json      label vocabulary (strings <-> ids)
    MODEL_DIR/featurizer/      TF-IDF vocabulary and idf (text input only)
    MODEL_DIR/linear/          the PLT: params.json, weights.npz, tree
    MODEL_DIR/linear1/, ...    the PLTs of the other trees (only with trees > 1)
    MODEL_DIR/reranker/        the per-label re-ranker (only with rerank.candidates > 0)
    MODEL_DIR/neighbours/      the training rows and labels (only with neighbours.k > 0)
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional, Tuple, Union

import numpy as np
import scipy.sparse as sp

from xmc.data import LabelVocab, TextData, TfidfFeaturizer, TfidfParams, XCData
from xmc.data.checks import UNSEEN, check_training_labels, nonempty_rows, warn_unknown_labels
from xmc.data.tfidf import IDF_NPZ as TFIDF_IDF
from xmc.data.tfidf import PARAMS_JSON as TFIDF_PARAMS
from xmc.data.tfidf import VOCAB_JSON as TFIDF_VOCAB
from xmc.data.vocab import LABELS_JSON
from xmc.estimator import Estimator, training_corpus
from xmc.linear.neighbours import REQUIRED_FILES as NEIGHBOUR_FILES
from xmc.linear.neighbours import NeighbourParams, NeighbourScorer
from xmc.linear.params import MAX_TREES, LinearParams, PLTParams
from xmc.linear.plt import KIND as PLT_KIND
from xmc.linear.plt import REQUIRED_FILES as PLT_REQUIRED
from xmc.linear.plt import PLTLinear
from xmc.linear.rerank import REQUIRED_FILES as RERANKER_FILES
from xmc.linear.rerank import LabelReranker, RerankParams
from xmc.linear.tuning import tune_C
from xmc.params import check_choice
from xmc.search.merge import mean_topk
from xmc.training import distributed
from xmc.tree import LabelTree
from xmc.utils.modeldir import (MANIFEST, ModelFormatError, begin_save, read_manifest, reading, verify_model_dir,
                                write_manifest)
from xmc.utils.progress import progress as show_progress
from xmc.utils.resources import StageTimes

Corpus = Union[XCData, TextData]

KIND = "pipeline"
LINEAR_DIR = "linear"
FEATURIZER_DIR = "featurizer"
NEIGHBOURS_DIR = "neighbours"
RERANKER_DIR = "reranker"


def tree_dir(i: int) -> str:
    """The folder of the i-th tree's PLT: ``linear`` for the first, as in a one-tree model."""
    return LINEAR_DIR if i == 0 else f"{LINEAR_DIR}{i}"


class Pipeline(Estimator):
    """Label vocabulary + featurizer + linear PLT, trained and saved as one."""

    KIND = KIND
    PARAMS = PLTParams  # LinearParams, or the PLT's own params
    CALIBRATE_SCORES = True

    def __init__(self, params: Optional[PLTParams] = None,
                 tfidf: Optional[TfidfParams] = None, **settings) -> None:
        """``params``: a ``LinearParams`` (PLT and TF-IDF) or a ``PLTParams``; ``tfidf`` overrides the TF-IDF
        settings either carries; keyword ``settings`` set fields (``Pipeline(C=1.0, tfidf__ngram_range=[1, 2])``,
        see :mod:`xmc.estimator`)."""
        self.params = self._params_from(params or LinearParams(), settings)
        self.tfidf_params = tfidf or getattr(self.params, "tfidf", None) or TfidfParams()
        self.neighbour_params = getattr(self.params, "neighbours", None) or NeighbourParams()
        self.rerank_params = getattr(self.params, "rerank", None) or RerankParams()
        self.n_trees = getattr(self.params, "trees", 1)
        self.trees: List[PLTLinear] = []  # one PLT per tree; their mean score ranks the labels
        self.reranker: Optional[LabelReranker] = None  # with rerank_params.candidates > 0
        self.neighbours: Optional[NeighbourScorer] = None  # with neighbour_params.k > 0
        self.vocab: Optional[LabelVocab] = None
        self.featurizer: Optional[TfidfFeaturizer] = None
        self.input_kind: Optional[str] = None  # "sparse" or "text"
        self.stage_seconds = StageTimes()  # of the last fit: featurising, tree, training, neighbours

    def unfitted_copy(self) -> "Pipeline":
        """A new, untrained pipeline with these settings (PLT and TF-IDF)."""
        copy = Pipeline(self.params, self.tfidf_params)
        copy.neighbour_params = self.neighbour_params
        copy.rerank_params = self.rerank_params
        copy.n_trees = self.n_trees
        return copy

    @property
    def model(self) -> Optional[PLTLinear]:
        """The first tree's PLT (the only one unless trees > 1); None before training."""
        return self.trees[0] if self.trees else None

    # ---- training ---------------------------------------------------------
    def prepare(self, corpus: Corpus) -> Tuple[sp.csr_matrix, sp.csr_matrix]:
        """Fit the label vocabulary (and TF-IDF for text) and return the training (X, Y).

        Empty documents are left out and documents without labels counted, each
        with a :class:`~xmc.data.DataWarning`; no label at all is an error."""
        if isinstance(corpus, XCData):
            self.input_kind = "sparse"
            self.vocab = LabelVocab.identity(corpus.n_labels)
            X, Y = corpus.X, corpus.Y
            keep = nonempty_rows(np.diff(X.indptr) == 0, "documents without features")
            if keep is not None:
                X, Y = X[keep], Y[keep]
            check_training_labels(Y)
            return X, Y
        self.input_kind = "text"
        keep = nonempty_rows(np.array([not t.strip() for t in corpus.texts], dtype=bool), "empty texts")
        if keep is not None:
            corpus = TextData([corpus.texts[i] for i in keep], [corpus.labels[i] for i in keep])
        self.vocab = LabelVocab().fit(corpus.labels)
        Y = self.vocab.encode(corpus.labels)
        check_training_labels(Y)
        self.featurizer = TfidfFeaturizer(self.tfidf_params)
        return self.featurizer.fit_transform(corpus.texts), Y

    def fit(self, corpus: Corpus, y=None, valid: Optional[Corpus] = None, tree: Optional[LabelTree] = None,
            progress: bool = False, log: Optional[Callable[[str], None]] = None,
            checkpoint_dir: Optional[Union[str, Path]] = None, resume: bool = False) -> "Pipeline":
        """Fit the vocabulary and featurizer (deterministic, so redone on resume) and the PLT, whose tree and
        finished layers are checkpointed in ``checkpoint_dir`` (see :meth:`PLTLinear.fit`).

        ``corpus``: an :class:`XCData` or :class:`TextData`, or with ``y`` a feature matrix or a list of texts
        (scikit-learn style, :mod:`xmc.estimator`). ``valid`` and ``log`` are there so every model trains
        through one call (:mod:`xmc.registry`); the linear PLT has no early stopping and reports through
        ``progress``, so it reads neither."""
        corpus, label_names = training_corpus(corpus, y)
        stages = StageTimes()
        with stages.stage("featurising"):
            X, Y = self.prepare(corpus)
        if label_names is not None:
            self.vocab = label_names  # the columns of Y are these labels, not label ids
        self.thresholds = None
        if tree is not None and tree.n_labels != Y.shape[1]:
            raise ValueError(f"the given tree has {tree.n_labels} labels but the training data has {Y.shape[1]}")
        plt_params = self.params.plt() if isinstance(self.params, LinearParams) else self.params
        if isinstance(self.params, LinearParams) and self.params.tune.C:
            with stages.stage("tuning C"):
                plt_params = self._tuned(X, Y, plt_params, log)
        # Only the first tree is checkpointed: the others are retrained on resume, which gives the same
        # model (each is deterministic given its seeds).
        self.trees = [PLTLinear(plt_params).fit(X, Y, tree=tree, progress=progress, checkpoint_dir=checkpoint_dir,
                                                resume=resume)]
        for i in range(1, self.n_trees):
            seeded = plt_params.with_values({"seed": plt_params.seed + i, "tree.seed": plt_params.tree.seed + i})
            self.trees.append(PLTLinear(seeded).fit(X, Y, progress=progress))
        for plt in self.trees:
            stages.add(plt.stage_seconds)
        self.reranker = None
        if self.rerank_params.candidates > 0:
            with stages.stage("re-ranker"), show_progress("re-ranker: proposals for the training documents, "
                                                          "then one classifier per label", enabled=progress):
                # Under torchrun only rank 0 holds every tree's whole weights; the ranks share its proposals.
                proposed = distributed.array_from_main(
                    lambda: self._proposals(X, self.rerank_params.candidates, beam=10, threads=None)[0])
                self.reranker = LabelReranker.fit(self.rerank_params, plt_params, self.model.prepare_rows(X), Y,
                                                  proposed)
        if self.neighbour_params.k > 0:
            with stages.stage("neighbours"):
                self.neighbours = NeighbourScorer(self.neighbour_params, X, Y)
        else:
            self.neighbours = None
        self.stage_seconds = stages
        return self

    def _tuned(self, X: sp.csr_matrix, Y: sp.csr_matrix, plt_params: PLTParams,
               log: Optional[Callable[[str], None]]) -> PLTParams:
        """``plt_params`` with the C that ranks held-out training documents best; the pipeline keeps it too."""
        tune = self.params.tune
        best, _ = tune_C(X, Y, plt_params, tune.C, holdout=tune.holdout, metric=tune.metric, log=log)
        if log is not None:
            log(f"chose C={best:g} on {tune.holdout:.0%} of the training documents ({tune.metric})")
        # What the pipeline trained with: a copy of it (unfitted_copy) trains with this C without choosing again.
        self.params = self.params.with_values({"C": best, "tune.C": []})
        return plt_params.with_values({"C": best})

    # ---- inputs -------------------------------------------------------------
    def features(self, corpus: Corpus) -> sp.csr_matrix:
        self._check_fitted()
        if isinstance(corpus, XCData):
            if self.input_kind != "sparse":
                raise ValueError("this model was trained on raw text; give it text input, not sparse features")
            return corpus.X
        if self.input_kind != "text":
            raise ValueError("this model was trained on sparse features; give it an XC-format file, not raw text")
        return self.featurizer.transform(corpus.texts)

    def labels(self, corpus: Corpus, unseen: str = "drop") -> sp.csr_matrix:
        """Ground-truth labels in the model's id space. Labels never seen in training cannot be predicted;
        they are counted in a :class:`~xmc.data.DataWarning` and dropped, or with ``unseen="keep"`` kept as
        ids past the model's labels, so that metrics count them as misses (what ``xmc predict`` does)."""
        self._check_fitted()
        check_choice(unseen, "unseen", tuple(UNSEEN))
        n = len(self.vocab)
        if isinstance(corpus, XCData):
            Y = corpus.Y.tocsr()
            if Y.shape[1] > n:  # test files may name labels never seen in training
                extra = Y[:, n:]
                warn_unknown_labels(([str(n + j) for j in extra.indices[extra.indptr[r]:extra.indptr[r + 1]]]
                                     for r in range(extra.shape[0])), (), UNSEEN[unseen])
                return Y if unseen == "keep" else Y[:, :n]
            return sp.csr_matrix((Y.data, Y.indices, Y.indptr), shape=(Y.shape[0], n))
        warn_unknown_labels(corpus.labels, self.vocab, UNSEEN[unseen])
        return self.vocab.encode(corpus.labels, unknown="extend" if unseen == "keep" else "skip")

    def reader_kwargs(self) -> dict:
        """Arguments for ``load_corpus`` so test files are read in the training feature
        space. Not the label count: test labels beyond it are counted and dropped
        by :meth:`labels`, not refused while reading."""
        self._check_fitted()
        if self.input_kind == "sparse":
            return {"n_features": self.model.n_features}
        return {}

    # ---- prediction ------------------------------------------------------------
    def predict_topk(self, corpus_or_X: Union[Corpus, sp.csr_matrix], k: int = 5, beam: int = 10,
                     threads: Optional[int] = None, batch_size: int = 65536,
                     on_batch: Optional[Callable[[int], None]] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Top-k label ids (model id space, -1 = none) and scores, in batches to bound memory. With several
        trees, a label's score is the mean of the trees' (0 from a tree whose beam did not propose it). With the
        re-ranker, the best ``rerank.candidates`` labels are re-scored by its blend; with neighbours, the best
        ``neighbours.pool`` then by the blend with the neighbours' votes."""
        self._check_fitted()
        X = corpus_or_X if sp.issparse(corpus_or_X) else self.features(corpus_or_X)
        ids = np.full((X.shape[0], k), -1, dtype=np.int32)
        scores = np.zeros((X.shape[0], k), dtype=np.float32)
        proposals = max([k] + ([self.reranker.params.candidates] if self.reranker is not None else [])
                        + ([self.neighbour_params.pool] if self.neighbours is not None else []))
        for start in range(0, X.shape[0], batch_size):
            stop = min(start + batch_size, X.shape[0])
            batch = X[start:stop]
            batch_ids, batch_scores = self._proposals(batch, proposals, beam, threads)
            if self.reranker is not None:
                batch_ids, batch_scores = self.reranker.rerank(self.model.prepare_rows(batch), batch_ids,
                                                               batch_scores)
            if self.neighbours is not None:
                batch_ids, batch_scores = self.neighbours.rerank(batch, batch_ids, batch_scores, k)
            ids[start:stop], scores[start:stop] = batch_ids[:, :k], batch_scores[:, :k]
            if on_batch is not None:
                on_batch(stop - start)
        return ids, scores

    def _proposals(self, X: sp.csr_matrix, n: int, beam: int, threads: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
        """The trees' best ``n`` labels of each row of ``X`` (their mean score with several trees)."""
        found = [plt.predict_topk(X, k=n, beam=beam, threads=threads) for plt in self.trees]
        return found[0] if len(found) == 1 else mean_topk(found, n)

    # ---- persistence -----------------------------------------------------------
    def save(self, directory: Union[str, Path]) -> None:
        """Write into ``directory``; the outer manifest, covering every file below it
        (the inner ``linear/xmc.json`` included), is written last."""
        self._check_fitted()
        directory = begin_save(Path(directory))
        for i, plt in enumerate(self.trees):
            plt.save(directory / tree_dir(i))
        self.vocab.save(directory)
        if self.featurizer is not None:
            self.featurizer.save(directory / FEATURIZER_DIR)
        if self.reranker is not None:
            self.reranker.save(directory / RERANKER_DIR)
        if self.neighbours is not None:
            self.neighbours.save(directory / NEIGHBOURS_DIR)
        self._save_thresholds(directory)
        write_manifest(directory, KIND, {"input_kind": self.input_kind, "model": PLT_KIND,
                                         "neighbours": self.neighbours is not None,
                                         "reranker": self.reranker is not None, "trees": len(self.trees)})

    @classmethod
    def load(cls, directory: Union[str, Path]) -> "Pipeline":
        """Load a saved pipeline; every file below ``directory`` is checked against the manifest first."""
        directory = Path(directory)
        # Kind and version first (cheap, and the clearest message); the hashes follow once the required list is known.
        info = read_manifest(directory, KIND, verify=False)
        input_kind = info.get("input_kind")
        if input_kind not in ("sparse", "text"):
            raise ModelFormatError(f"{directory / MANIFEST}: unknown input kind {input_kind!r}; "
                                   f"expected 'sparse' or 'text'")
        has_neighbours, has_reranker = info.get("neighbours", False), info.get("reranker", False)
        for name, value in (("neighbours", has_neighbours), ("reranker", has_reranker)):
            if not isinstance(value, bool):
                raise ModelFormatError(f"{directory / MANIFEST}: '{name}' must be true or false, found {value!r}"[:300])
        n_trees = info.get("trees", 1)
        if type(n_trees) is not int or not 1 <= n_trees <= MAX_TREES:
            raise ModelFormatError(f"{directory / MANIFEST}: 'trees' must be an integer in [1, {MAX_TREES}], "
                                   f"found {n_trees!r}"[:300])
        required = [f"{tree_dir(i)}/{name}" for i in range(n_trees) for name in (MANIFEST,) + PLT_REQUIRED]
        required += [LABELS_JSON]
        if input_kind == "text":
            required += [f"{FEATURIZER_DIR}/{name}" for name in (TFIDF_PARAMS, TFIDF_VOCAB, TFIDF_IDF)]
        if has_neighbours:
            required += [f"{NEIGHBOURS_DIR}/{name}" for name in NEIGHBOUR_FILES]
        if has_reranker:
            required += [f"{RERANKER_DIR}/{name}" for name in RERANKER_FILES]
        info = verify_model_dir(directory, required)
        with reading(directory, info):
            return cls._load_listed(directory, info, input_kind, has_neighbours, has_reranker, n_trees)

    @classmethod
    def _load_listed(cls, directory: Path, info: dict, input_kind: str, has_neighbours: bool, has_reranker: bool,
                     n_trees: int) -> "Pipeline":
        pipe = cls()
        pipe.input_kind = input_kind
        # The outer manifest already vouched for every byte below: skip hashing linear/ twice.
        pipe.trees = [PLTLinear.load(directory / tree_dir(i), verify=False) for i in range(n_trees)]
        pipe.n_trees = n_trees
        pipe.params = pipe.model.params
        for i, plt in enumerate(pipe.trees[1:], start=1):
            if plt.n_features != pipe.model.n_features or plt.tree.n_labels != pipe.model.tree.n_labels:
                raise ModelFormatError(f"{directory / tree_dir(i)}: {plt.n_features} features and "
                                       f"{plt.tree.n_labels} labels, but {directory / LINEAR_DIR} has "
                                       f"{pipe.model.n_features} and {pipe.model.tree.n_labels}")
        pipe.vocab = LabelVocab.load(directory)
        if len(pipe.vocab) != pipe.model.tree.n_labels:
            raise ModelFormatError(f"{directory / LABELS_JSON}: holds {len(pipe.vocab)} labels but the model in "
                                   f"{directory / LINEAR_DIR} predicts {pipe.model.tree.n_labels}")
        if input_kind == "text":
            pipe.featurizer = TfidfFeaturizer.load(directory / FEATURIZER_DIR)
            pipe.tfidf_params = pipe.featurizer.params
            if pipe.featurizer.n_features != pipe.model.n_features:
                raise ModelFormatError(f"{directory / FEATURIZER_DIR / TFIDF_VOCAB}: holds "
                                       f"{pipe.featurizer.n_features} terms but the model in "
                                       f"{directory / LINEAR_DIR} expects {pipe.model.n_features} features")
        if has_reranker:
            pipe.reranker = LabelReranker.load(directory / RERANKER_DIR, n_labels=len(pipe.vocab),
                                               n_features=pipe.model.n_features)
            pipe.rerank_params = pipe.reranker.params
        if has_neighbours:
            pipe.neighbours = NeighbourScorer.load(directory / NEIGHBOURS_DIR, n_labels=len(pipe.vocab),
                                                   n_features=pipe.model.n_features)
            pipe.neighbour_params = pipe.neighbours.params
        pipe._load_thresholds(directory, info)
        return pipe

    @property
    def n_labels(self) -> int:
        self._check_fitted()
        return len(self.vocab)

    def _check_fitted(self) -> None:
        if self.model is None:
            raise RuntimeError("this Pipeline is not trained yet: call fit() or Pipeline.load()")
