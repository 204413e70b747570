"""A trained model with everything needed to go from a raw input file to labels.

``Pipeline`` bundles the label vocabulary, the TF-IDF featurizer (for raw
text) and the linear PLT, and saves them together in one self-describing
directory. The CLI, tests and benchmarks all use it.

Directory layout::

    MODEL_DIR/xmc.json         format version, kind "pipeline", input kind
    MODEL_DIR/labels.json      label vocabulary (strings <-> ids)
    MODEL_DIR/featurizer/      TF-IDF vocabulary and idf (text input only)
    MODEL_DIR/linear/          the PLT: params.json, weights.npz, tree
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Tuple, Union

import numpy as np
import scipy.sparse as sp

from xmc.data import LabelVocab, TextData, TfidfFeaturizer, TfidfParams, XCData
from xmc.linear import PLTLinear, PLTParams
from xmc.tree import LabelTree
from xmc.utils.modeldir import ModelFormatError, read_manifest, write_manifest

Corpus = Union[XCData, TextData]

KIND = "pipeline"


class Pipeline:
    """Label vocabulary + featurizer + linear PLT, trained and saved as one."""

    def __init__(self, params: Optional[PLTParams] = None,
                 tfidf: Optional[TfidfParams] = None) -> None:
        self.params = params or PLTParams()
        self.tfidf_params = tfidf or TfidfParams()
        self.model: Optional[PLTLinear] = None
        self.vocab: Optional[LabelVocab] = None
        self.featurizer: Optional[TfidfFeaturizer] = None
        self.input_kind: Optional[str] = None  # "sparse" or "text"

    # ---- training ---------------------------------------------------------
    def prepare(self, corpus: Corpus) -> Tuple[sp.csr_matrix, sp.csr_matrix]:
        """Fit the label vocabulary (and TF-IDF for text) and return the training (X, Y)."""
        if isinstance(corpus, XCData):
            self.input_kind = "sparse"
            self.vocab = LabelVocab.identity(corpus.n_labels)
            return corpus.X, corpus.Y
        self.input_kind = "text"
        self.vocab = LabelVocab().fit(corpus.labels)
        self.featurizer = TfidfFeaturizer(self.tfidf_params)
        return self.featurizer.fit_transform(corpus.texts), self.vocab.encode(corpus.labels)

    def fit(self, corpus: Corpus, tree: Optional[LabelTree] = None,
            progress: bool = False) -> "Pipeline":
        X, Y = self.prepare(corpus)
        if tree is not None and tree.n_labels != Y.shape[1]:
            raise ValueError(f"the given tree has {tree.n_labels} labels but the training data has {Y.shape[1]}")
        self.model = PLTLinear(self.params).fit(X, Y, tree=tree, progress=progress)
        return self

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

    def labels(self, corpus: Corpus) -> sp.csr_matrix:
        """Ground-truth labels in the model's id space; unknown labels are dropped (they cannot be predicted)."""
        self._check_fitted()
        if isinstance(corpus, XCData):
            Y = corpus.Y.tocsr()
            n = len(self.vocab)
            if Y.shape[1] > n:  # test files may name labels never seen in training
                Y = Y[:, :n]
            elif Y.shape[1] < n:
                Y = sp.csr_matrix((Y.data, Y.indices, Y.indptr), shape=(Y.shape[0], n))
            return Y
        return self.vocab.encode(corpus.labels, unknown="skip")

    def reader_kwargs(self) -> dict:
        """Arguments for ``load_corpus`` so test files are read in the training feature space."""
        self._check_fitted()
        if self.input_kind == "sparse":
            return {"n_features": self.model.n_features, "n_labels": len(self.vocab)}
        return {}

    # ---- prediction ------------------------------------------------------------
    def predict_topk(self, corpus_or_X: Union[Corpus, sp.csr_matrix], k: int = 5, beam: int = 10,
                     threads: Optional[int] = None, batch_size: int = 65536,
                     on_batch: Optional[Callable[[int], None]] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Top-k label ids (model id space, -1 = none) and scores, in batches to bound memory."""
        self._check_fitted()
        X = corpus_or_X if sp.issparse(corpus_or_X) else self.features(corpus_or_X)
        ids = np.full((X.shape[0], k), -1, dtype=np.int32)
        scores = np.zeros((X.shape[0], k), dtype=np.float32)
        for start in range(0, X.shape[0], batch_size):
            stop = min(start + batch_size, X.shape[0])
            ids[start:stop], scores[start:stop] = self.model.predict_topk(
                X[start:stop], k=k, beam=beam, threads=threads)
            if on_batch is not None:
                on_batch(stop - start)
        return ids, scores

    # ---- persistence -----------------------------------------------------------
    def save(self, directory: Union[str, Path]) -> None:
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / "linear")
        self.vocab.save(directory)
        if self.featurizer is not None:
            self.featurizer.save(directory / "featurizer")
        # Written last: a directory without its manifest is never taken for a finished model.
        write_manifest(directory, KIND, {"input_kind": self.input_kind, "model": "plt-linear"})

    @classmethod
    def load(cls, directory: Union[str, Path]) -> "Pipeline":
        directory = Path(directory)
        info = read_manifest(directory, KIND)
        pipe = cls()
        pipe.input_kind = info.get("input_kind")
        if pipe.input_kind not in ("sparse", "text"):
            raise ModelFormatError(f"{directory}: unknown input kind {pipe.input_kind!r}")
        pipe.model = PLTLinear.load(directory / "linear")
        pipe.params = pipe.model.params
        pipe.vocab = LabelVocab.load(directory)
        if pipe.input_kind == "text":
            pipe.featurizer = TfidfFeaturizer.load(directory / "featurizer")
        return pipe

    @property
    def n_labels(self) -> int:
        self._check_fitted()
        return len(self.vocab)

    def _check_fitted(self) -> None:
        if self.model is None:
            raise RuntimeError("this Pipeline is not trained yet: call fit() or Pipeline.load()")
