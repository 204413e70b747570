"""TF-IDF features for raw text, saved without pickle.

Fitting uses scikit-learn's TfidfVectorizer. Transforming uses the fitted
vocabulary and idf through our own few lines (counts, optional log, idf, L2),
so a featurizer loaded from JSON + .npz gives exactly the output of the one
that was saved, whatever scikit-learn's private attributes look like.

With ``lead_tokens`` N > 0 a second block of columns holds the TF-IDF of each
text's first N tokens, with its own vocabulary and idf, weighted by
``lead_weight``: titles and headers name a document's topic, and in the
whole text's vector their few words weigh no more than any others.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.sparse as sp

from xmc.params import Params, check, check_int, param
from xmc.utils.modeldir import ModelFormatError, load_arrays, load_json, save_arrays, save_json
from xmc.utils.sparse import l2_normalize_rows

PARAMS_JSON = "tfidf.json"
VOCAB_JSON = "tfidf_vocab.json"
IDF_NPZ = "tfidf_idf.npz"
LEAD_DIR = "lead"  # the lead block's own featurizer, below the featurizer's folder
_FORMAT_VERSION = 1


@dataclass
class TfidfParams(Params):
    """How raw text becomes the linear model's TF-IDF features."""

    max_features: Optional[int] = param(None, "most terms kept, the most frequent (null: all)")
    min_df: Union[int, float] = param(1, "least documents (int) or share of documents (float) a term must be in")
    max_df: Union[int, float] = param(1.0, "most documents (int) or share of documents (float) a term may be in")
    ngram_range: Tuple[int, int] = param((1, 1), "shortest and longest word n-grams")
    sublinear_tf: bool = param(True, "1 + log(tf) instead of tf")
    lowercase: bool = param(True, "lower-case the text first")
    token_pattern: str = param(r"(?u)\b\w\w+\b", "regex whose matches are the tokens")
    lead_tokens: int = param(0, "also a TF-IDF block of each text's first N tokens, its title or header (0: off)")
    lead_weight: float = param(1.0, "weight of the lead block beside the whole text's (rows stay unit L2 norm)")

    def __post_init__(self) -> None:
        self.ngram_range = tuple(int(n) for n in self.ngram_range)  # JSON gives a list
        super().__post_init__()

    def validate(self) -> None:
        if len(self.ngram_range) != 2 or not 1 <= self.ngram_range[0] <= self.ngram_range[1]:
            raise ValueError(f"ngram_range must be (min_n, max_n) with 1 <= min_n <= max_n, got {self.ngram_range}")
        check_int(self.lead_tokens, "lead_tokens", low=0)
        check(self.lead_weight > 0, "lead_weight", "a positive number", self.lead_weight)
        if self.max_features is not None and self.max_features <= 0:
            raise ValueError(f"max_features must be positive or None, got {self.max_features}")
        try:
            re.compile(self.token_pattern)
        except (re.error, TypeError) as e:
            raise ValueError(f"token_pattern {self.token_pattern!r} is not a valid regex: {e}") from None


class TfidfFeaturizer:
    """Texts -> float32 CSR rows of unit L2 norm (empty rows stay empty)."""

    def __init__(self, params: Optional[TfidfParams] = None) -> None:
        self.params = params or TfidfParams()
        self.vocabulary: Optional[list] = None  # term of each column
        self.idf: Optional[np.ndarray] = None
        # the lead block's featurizer (lead_tokens > 0): its columns follow the whole text's
        self.lead: Optional["TfidfFeaturizer"] = None

    @property
    def n_features(self) -> int:
        self._check_fitted()
        return len(self.vocabulary) + (self.lead.n_features if self.lead is not None else 0)

    def _lead_texts(self, texts: Sequence[str]) -> List[str]:
        """Each text's first ``lead_tokens`` tokens (the token pattern's matches), joined by spaces."""
        pattern, n = re.compile(self.params.token_pattern), self.params.lead_tokens
        return [" ".join(match.group() for match, _ in zip(pattern.finditer(t), range(n))) for t in texts]

    def _check_fitted(self) -> None:
        if self.vocabulary is None or self.idf is None:
            raise RuntimeError("TfidfFeaturizer is not fitted; call fit or fit_transform, or load one")

    def fit(self, texts: Sequence[str]) -> "TfidfFeaturizer":
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts, p = list(texts), self.params
        vec = TfidfVectorizer(max_features=p.max_features, min_df=p.min_df, max_df=p.max_df,
                              ngram_range=p.ngram_range, sublinear_tf=p.sublinear_tf, lowercase=p.lowercase,
                              token_pattern=p.token_pattern, norm="l2", use_idf=True, smooth_idf=True)
        vec.fit(texts)
        order = np.argsort(np.fromiter(vec.vocabulary_.values(), dtype=np.int64, count=len(vec.vocabulary_)))
        terms = list(vec.vocabulary_.keys())
        self.vocabulary = [terms[i] for i in order]
        self.idf = np.asarray(vec.idf_, dtype=np.float64)
        self.lead = None
        if p.lead_tokens > 0:
            self.lead = TfidfFeaturizer(p.with_values({"lead_tokens": 0})).fit(self._lead_texts(texts))
        return self

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        self._check_fitted()
        texts = list(texts)
        whole = self._transform_whole(texts)
        if self.lead is None:
            return whole
        both = sp.hstack([whole, self.params.lead_weight * self.lead.transform(self._lead_texts(texts))],
                         format="csr", dtype=np.float32)
        return _unit_rows(both)

    def _transform_whole(self, texts: List[str]) -> sp.csr_matrix:
        from sklearn.feature_extraction.text import CountVectorizer

        p = self.params
        counter = CountVectorizer(vocabulary={t: i for i, t in enumerate(self.vocabulary)},
                                  ngram_range=p.ngram_range, lowercase=p.lowercase,
                                  token_pattern=p.token_pattern, dtype=np.float64)
        X = counter.transform(texts).tocsr()
        X.sort_indices()
        if p.sublinear_tf:
            X.data = np.log(X.data) + 1.0
        X.data *= self.idf[X.indices]
        return _unit_rows(X)

    def fit_transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        texts = list(texts)
        return self.fit(texts).transform(texts)

    def save(self, directory: Union[str, os.PathLike]) -> None:
        """params -> tfidf.json, vocabulary -> tfidf_vocab.json, idf -> tfidf_idf.npz."""
        self._check_fitted()
        d = Path(directory)
        save_arrays(d / IDF_NPZ, {"idf": self.idf})
        save_json(d / VOCAB_JSON, self.vocabulary)
        save_json(d / PARAMS_JSON, {"format_version": _FORMAT_VERSION, "params": self.params.to_dict()})
        if self.lead is not None:
            self.lead.save(d / LEAD_DIR)

    @classmethod
    def load(cls, directory: Union[str, os.PathLike]) -> "TfidfFeaturizer":
        d = Path(directory)
        info = load_json(d / PARAMS_JSON)
        if not isinstance(info, dict) or not isinstance(info.get("params"), dict):
            raise ModelFormatError(f"{d / PARAMS_JSON}: expected an object with 'params'")
        version = info.get("format_version")
        if not isinstance(version, int) or version > _FORMAT_VERSION:
            raise ModelFormatError(f"{d / PARAMS_JSON}: format version {version!r} is newer than this xmc reads")
        try:
            params = TfidfParams.from_dict(info["params"], strict=False)
        except (TypeError, ValueError) as e:
            raise ModelFormatError(f"{d / PARAMS_JSON}: bad params ({e})") from None
        vocab = load_json(d / VOCAB_JSON)
        if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab) or len(set(vocab)) != len(vocab):
            raise ModelFormatError(f"{d / VOCAB_JSON}: expected a list of distinct strings")
        idf = load_arrays(d / IDF_NPZ).get("idf")
        if (idf is None or idf.ndim != 1 or idf.dtype.kind not in "fiu" or idf.shape[0] != len(vocab)
                or not np.isfinite(idf).all()):
            raise ModelFormatError(f"{d / IDF_NPZ}: expected {len(vocab)} finite idf values, one per term")
        f = cls(params)
        f.vocabulary = vocab
        f.idf = idf.astype(np.float64)
        if params.lead_tokens > 0:
            f.lead = cls.load(d / LEAD_DIR)
            if f.lead.params.lead_tokens != 0:
                raise ModelFormatError(f"{d / LEAD_DIR / PARAMS_JSON}: a lead block has no lead block of its own, "
                                       f"found lead_tokens {f.lead.params.lead_tokens}")
        return f


def _unit_rows(X: sp.csr_matrix) -> sp.csr_matrix:
    """float32 CSR (int32 columns, int64 row pointers) with every non-empty row scaled to unit L2 norm,
    scaled in float64 before the cast."""
    X = l2_normalize_rows(X, dtype=np.float64)
    out = sp.csr_matrix((X.data.astype(np.float32), X.indices.astype(np.int32), X.indptr.astype(np.int64)),
                        shape=X.shape)
    out.eliminate_zeros()
    return out
