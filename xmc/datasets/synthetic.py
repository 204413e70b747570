"""Synthetic XMC corpora of any size, reproducible from a seed.

The generative story (all vectorised; no per-document Python loop):

* Labels have Zipf-like popularity: the label of popularity rank r (0-based)
  is drawn with probability proportional to (r + 1)^-exponent; ranks are
  shuffled over label ids so frequent labels are not the small ids.
* Labels are spread over ``n_clusters`` topic clusters (balanced by
  popularity: every block of ``n_clusters`` consecutive ranks is dealt out to
  all clusters). Each cluster owns a pool of features.
* Each label has ``signature_size`` signature features, mostly drawn from its
  cluster's pool (probability ``cluster_coherence``) and otherwise anywhere.
  Signatures are not stored: they are a counter-based hash of (seed, label,
  slot), so 3,000,000 labels cost no memory beyond a few O(L) arrays.
* A document picks a topic cluster (weighted by the draw mass of its labels)
  and draws 1 + Poisson(lam) labels with replacement, each from its topic
  (probability ``cluster_coherence``) or from all labels; repeats are merged.
  Draw probabilities and lam are calibrated (``_calibrate``) so that the
  expected number of *documents* per label follows the Zipf law exactly and a
  document has ``avg_labels_per_doc`` distinct labels on average.
* A document also gets about avg_labels_per_doc / 2 distractors: labels drawn
  like its own (so mostly from its topic) that it is *not* tagged with.
* Its tokens: 1 + Poisson(avg_features_per_doc - 1) draws. With probability
  1 - noise a token is a signature feature of one of its labels (slot j
  weighted ~ (j + 1)^-0.7); otherwise, half the time, one of a distractor
  (the related-but-absent evidence that keeps P@1 below 1), else a background
  word (Zipf over all features, like stop words).
* X: sublinear tf (1 + log count) times smoothed idf from the training split,
  rows L2-normalised, CSR float32. Y: binary CSR float32.

Train and test documents come from separate random streams, in fixed-size
chunks, so changing ``n_test`` leaves the training split unchanged.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import List, NamedTuple, Optional, Tuple

import numpy as np
import scipy.sparse as sp

_CHUNK_DOCS = 65536  # documents per random stream; part of the reproducibility contract
_SIG_DECAY = 0.7  # weight of signature slot j ~ (j + 1)^-0.7
_DISTRACTORS_PER_LABEL = 0.5  # mean distractor labels per document, per true label
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass
class SyntheticParams:
    """Size and shape of a synthetic corpus. Defaults train and evaluate in seconds.

    With the defaults napkinXC's PLT and omikuji reach P@1 ~0.83 on the test
    split (``benchmarks/bench_metrics_synthetic.py --peers``). Raising ``noise``
    or lowering ``avg_features_per_doc`` makes the task harder. Label counts
    follow the power law whenever it is attainable; with a steep law and
    coherent clusters (e.g. exponent >= 1.2 with cluster_coherence >= 0.9) the
    head labels saturate and documents get fewer distinct labels than
    ``avg_labels_per_doc`` (draws are capped at 5x that number).
    """

    n_labels: int = 2000
    n_train: int = 10000
    n_test: int = 2000
    n_features: int = 20000
    avg_labels_per_doc: float = 4.0
    avg_features_per_doc: float = 40.0  # token draws per document; distinct features are fewer
    power_law_exponent: float = 0.8  # Zipf exponent of label popularity (rank-frequency slope)
    n_clusters: int = 50
    noise: float = 0.6  # fraction of tokens not from the labels: distractor-label or background words
    signature_size: int = 10
    cluster_coherence: float = 0.8  # chance a label slot / signature feature stays in its cluster
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_labels", "n_train", "n_features", "n_clusters", "signature_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"SyntheticParams.{name} must be a positive integer, got {value!r}")
        if isinstance(self.n_test, bool) or not isinstance(self.n_test, (int, np.integer)) or self.n_test < 0:
            raise ValueError(f"SyntheticParams.n_test must be an integer >= 0, got {self.n_test!r}")
        if not self.avg_labels_per_doc >= 1.0:
            raise ValueError(f"SyntheticParams.avg_labels_per_doc must be >= 1, got {self.avg_labels_per_doc!r}")
        if self.avg_labels_per_doc > self.n_labels:
            raise ValueError(
                f"SyntheticParams.avg_labels_per_doc ({self.avg_labels_per_doc}) cannot exceed "
                f"n_labels ({self.n_labels}): labels within a document are distinct"
            )
        if not self.avg_features_per_doc >= 1.0:
            raise ValueError(
                f"SyntheticParams.avg_features_per_doc must be >= 1, got {self.avg_features_per_doc!r}"
            )
        if not self.power_law_exponent >= 0.0:
            raise ValueError(f"SyntheticParams.power_law_exponent must be >= 0, got {self.power_law_exponent!r}")
        for name in ("noise", "cluster_coherence"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"SyntheticParams.{name} must be in [0, 1], got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"SyntheticParams.seed must be an integer >= 0, got {self.seed!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SyntheticParams":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SyntheticParams fields {unknown}; expected some of {sorted(known)}")
        return cls(**data)


class SyntheticCorpus(NamedTuple):
    X_train: sp.csr_matrix
    Y_train: sp.csr_matrix
    X_test: sp.csr_matrix
    Y_test: sp.csr_matrix


class SyntheticTextCorpus(NamedTuple):
    train_texts: List[str]
    train_labels: List[List[str]]
    test_texts: List[str]
    test_labels: List[List[str]]


# ---- random streams and hashing ---------------------------------------------------


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(key)))


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def _unit(h: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) float64 from the top 53 bits of a hash."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


# ---- corpus-wide structure ----------------------------------------------------------


def _calibrate(target, cluster, n_clusters, avg_labels, coherence, iters=100, tol=1e-4):
    """Draw probabilities and extra-draw rate so that *distinct* labels follow ``target``.

    A document draws 1 + Poisson(lam) labels with replacement and keeps the
    distinct ones, so a head label drawn twice counts once: raw Zipf draw
    probabilities would give the head too few documents and bend the power
    law. With topic t (prob. m_t, the draw mass of cluster t) and per-draw
    probability q of label l, P(l in doc | t) = 1 - (1 - q) e^{-lam q}
    (n ~ 1 + Poisson(lam)). Fixed-point iterations adjust the draw
    probabilities until P(l in doc) is proportional to target_l, and lam
    until the expected number of distinct labels is ``avg_labels``.

    For tail labels q is tiny and P(l in doc) = (1 + lam) p_l to first order
    whatever the topic, so they keep the target's shape and only share one
    scale factor: iterating on the head alone keeps 3,000,000 labels cheap.
    """
    # The relative error of the linearisation is about C p (lam + 1): keeping it
    # under 1e-4 puts it far below the sampling noise of any label count.
    head = target * n_clusters * (avg_labels + 1.0) > 1e-4
    t_head, c_head = target[head], cluster[head]
    t_tail_mass = np.bincount(cluster[~head], weights=target[~head], minlength=n_clusters)
    t_tail_total = t_tail_mass.sum()
    p_head, scale = t_head.copy(), 1.0
    lam = avg_labels - 1.0
    for _ in range(iters):
        mass_c = np.bincount(c_head, weights=p_head, minlength=n_clusters) + scale * t_tail_mass
        mass = mass_c[c_head]
        q_out = (1.0 - coherence) * p_head
        q_in = np.minimum(coherence * p_head / np.maximum(mass, 1e-300) + q_out, 1.0)
        with np.errstate(divide="ignore"):  # q = 1 (a label alone in its cluster): log1p(-1) = -inf is right
            incl = mass * -np.expm1(np.log1p(-q_in) - lam * q_in)
            incl += (1.0 - mass) * -np.expm1(np.log1p(-q_out) - lam * q_out)
        tail_incl = (1.0 + lam) * scale * t_tail_total
        total = incl.sum() + tail_incl
        ratio = t_head * total / np.maximum(incl, 1e-300)
        tail_ratio = total / ((1.0 + lam) * scale) if t_tail_total > 0 else 1.0
        lo = min(ratio.min(initial=np.inf), tail_ratio)
        hi = max(ratio.max(initial=-np.inf), tail_ratio)
        if max(hi - 1.0, 1.0 - lo, abs(total - avg_labels) / avg_labels) < tol:
            break
        p_head *= ratio
        scale *= tail_ratio
        z = p_head.sum() + scale * t_tail_total
        p_head /= z
        scale /= z
        # Capped: with avg_labels close to the number of labels no rate reaches it exactly.
        lam = min(max(0.0, lam + (avg_labels - total)), 5.0 * avg_labels)
    prob = target * scale
    prob[head] = p_head
    return prob, lam


class _Structure:
    """Label popularity, clusters, feature pools: everything shared by all documents."""

    def __init__(self, p: SyntheticParams) -> None:
        self.p = p
        L, D, C = p.n_labels, p.n_features, p.n_clusters
        rng = _rng(p.seed, 0)
        rank_prob = np.power(np.arange(1, L + 1, dtype=np.float64), -p.power_law_exponent)
        rank_prob /= rank_prob.sum()
        label_of_rank = rng.permutation(L)
        # Deal each block of C consecutive ranks to the C clusters in random
        # order: clusters get similar popularity mass at every scale.
        n_blocks = -(-L // C)
        dealt = rng.permuted(np.broadcast_to(np.arange(C), (n_blocks, C)), axis=1).ravel()[:L]
        self.cluster_of_label = np.empty(L, dtype=np.int64)
        self.cluster_of_label[label_of_rank] = dealt
        target = np.empty(L, dtype=np.float64)
        target[label_of_rank] = rank_prob
        self.prob, self.extra_labels = _calibrate(
            target, self.cluster_of_label, C, p.avg_labels_per_doc, p.cluster_coherence
        )
        # Labels grouped by cluster with one cumulative distribution: a draw
        # inside cluster c is a uniform draw in [cum_start[c], cum_start[c+1]).
        small = self.cluster_of_label.astype(np.int16) if C <= np.iinfo(np.int16).max else self.cluster_of_label
        self.by_cluster = np.argsort(small, kind="stable")  # radix sort for int16 keys
        self.cum = np.cumsum(self.prob[self.by_cluster])
        self.cum[-1] = 1.0
        ends = np.searchsorted(self.cluster_of_label[self.by_cluster], np.arange(C), side="right")
        self.cluster_cum = np.concatenate(([0.0], self.cum[ends - 1]))
        self.cluster_cum[-1] = 1.0
        self.cluster_end = ends  # first position after cluster c in by_cluster
        # Feature pools: cluster c owns pool_size consecutive entries of a feature permutation.
        self.feature_perm = rng.permutation(D)
        self.pool_size = max(1, max(D // C, min(D, 2 * p.signature_size)))
        # Background words: Zipf(1) over a permutation of all features.
        self.bg_perm = rng.permutation(D)
        self.bg_cum = np.cumsum(1.0 / np.arange(1, D + 1, dtype=np.float64))
        self.bg_cum /= self.bg_cum[-1]
        sig_w = np.power(np.arange(1, p.signature_size + 1, dtype=np.float64), -_SIG_DECAY)
        self.sig_cum = np.cumsum(sig_w) / sig_w.sum()
        self.salt = np.uint64(_mix64(np.array([p.seed], dtype=np.uint64))[0])

    def signature_feature(self, labels: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Feature id of signature slot ``slots`` of ``labels`` (a pure function of seed, label, slot)."""
        p = self.p
        key = labels.astype(np.uint64) * np.uint64(p.signature_size) + slots.astype(np.uint64)
        h1 = _mix64(key ^ self.salt)
        h2 = _mix64(h1)
        in_cluster = _unit(h1) < p.cluster_coherence
        pool_idx = (h2 % np.uint64(self.pool_size)).astype(np.int64)
        pooled = self.feature_perm[(self.cluster_of_label[labels] * self.pool_size + pool_idx) % p.n_features]
        anywhere = (h2 % np.uint64(p.n_features)).astype(np.int64)
        return np.where(in_cluster, pooled, anywhere)

    def _draw(self, rng: np.random.Generator, topic: np.ndarray) -> np.ndarray:
        """One label per entry of ``topic``: from that topic cluster or, at random, from all labels."""
        u = rng.random(topic.size)
        in_topic = rng.random(topic.size) < self.p.cluster_coherence
        lo = np.where(in_topic, self.cluster_cum[topic], 0.0)
        hi = np.where(in_topic, self.cluster_cum[topic + 1], 1.0)
        pos = np.searchsorted(self.cum, lo + u * (hi - lo), side="right")
        # Float rounding must not push a draw past its cluster (or the array).
        pos = np.minimum(pos, np.where(in_topic, self.cluster_end[topic] - 1, self.cum.size - 1))
        return self.by_cluster[pos]

    def sample_labels(self, rng: np.random.Generator, n_docs: int):
        """Labels of n_docs documents as (indptr, labels), sorted and distinct within a
        document, and their distractors (indptr, labels): related labels the document
        is *not* tagged with but whose signature words leak into it."""
        p = self.p
        n_slots = 1 + rng.poisson(self.extra_labels, n_docs)
        topic = np.searchsorted(self.cluster_cum, rng.random(n_docs), side="right") - 1
        topic = np.clip(topic, 0, p.n_clusters - 1)
        doc = np.repeat(np.arange(n_docs, dtype=np.int64), n_slots)
        keys = np.unique(doc * p.n_labels + self._draw(rng, topic[doc]))
        docs, labels = np.divmod(keys, p.n_labels)
        indptr = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(np.bincount(docs, minlength=n_docs), out=indptr[1:])
        n_distract = rng.poisson(_DISTRACTORS_PER_LABEL * p.avg_labels_per_doc, n_docs)
        d_indptr = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(n_distract, out=d_indptr[1:])
        distract = self._draw(rng, np.repeat(topic, n_distract))
        return indptr, labels.astype(np.int32), d_indptr, distract.astype(np.int32)

    @staticmethod
    def _pick(rng: np.random.Generator, doc: np.ndarray, indptr: np.ndarray, items: np.ndarray) -> np.ndarray:
        """A uniform entry of items[indptr[d]:indptr[d+1]] per d in ``doc`` (rows must be non-empty)."""
        n = np.diff(indptr)[doc]
        which = indptr[doc] + (rng.random(doc.size) * n).astype(np.int64)
        return items[np.minimum(which, indptr[doc + 1] - 1)]

    def sample_tokens(self, rng: np.random.Generator, lab_ptr, labels, d_ptr, distract):
        """(token indptr, feature ids) in draw order, the raw text of each document.

        A token is, with probability 1 - noise, a signature word of one of the
        document's labels; otherwise half the time (when the document has
        distractors) a signature word of a distractor, else a background word.
        """
        p = self.p
        n_docs = lab_ptr.size - 1
        n_tok = 1 + rng.poisson(p.avg_features_per_doc - 1.0, n_docs)
        tok_indptr = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(n_tok, out=tok_indptr[1:])
        doc = np.repeat(np.arange(n_docs, dtype=np.int64), n_tok)
        u = rng.random(doc.size)
        is_noise = u < p.noise
        # Reuse u: given noise, u / noise is uniform again.
        has_d = (d_ptr[1:] > d_ptr[:-1])[doc]
        is_distract = is_noise & has_d & (u < 0.5 * p.noise)
        tok_label = self._pick(rng, doc, lab_ptr, labels)
        if is_distract.any():
            tok_label[is_distract] = self._pick(rng, doc[is_distract], d_ptr, distract)
        slot = np.minimum(np.searchsorted(self.sig_cum, rng.random(doc.size), side="right"), p.signature_size - 1)
        feats = self.signature_feature(tok_label, slot)
        bg_rank = np.minimum(np.searchsorted(self.bg_cum, rng.random(doc.size), side="right"), p.n_features - 1)
        feats = np.where(is_noise & ~is_distract, self.bg_perm[bg_rank], feats)
        return tok_indptr, feats.astype(np.int32)


def _split_chunks(structure: _Structure, split: int, n_docs: int):
    """Yield (label_indptr, labels, token_indptr, tokens) per chunk of one split."""
    for c, start in enumerate(range(0, n_docs, _CHUNK_DOCS)):
        m = min(_CHUNK_DOCS, n_docs - start)
        rng = _rng(structure.p.seed, split, c)
        lab_ptr, labs, d_ptr, distract = structure.sample_labels(rng, m)
        tok_ptr, toks = structure.sample_tokens(rng, lab_ptr, labs, d_ptr, distract)
        yield lab_ptr, labs, tok_ptr, toks


def _counts_csr(tok_ptr: np.ndarray, toks: np.ndarray, n_features: int) -> sp.csr_matrix:
    n = tok_ptr.size - 1
    doc = np.repeat(np.arange(n, dtype=np.int64), np.diff(tok_ptr))
    keys, counts = np.unique(doc * n_features + toks, return_counts=True)
    rows, cols = np.divmod(keys, n_features)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return sp.csr_matrix((counts.astype(np.float32), cols.astype(np.int32), indptr), shape=(n, n_features))


def _stack(parts: List[sp.csr_matrix], n_cols: int) -> sp.csr_matrix:
    if not parts:
        return sp.csr_matrix((0, n_cols), dtype=np.float32)
    return parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")


def _split(structure: _Structure, split: int, n_docs: int) -> Tuple[sp.csr_matrix, sp.csr_matrix]:
    """(term counts, Y) of one split."""
    p = structure.p
    Xs, Ys = [], []
    for lab_ptr, labs, tok_ptr, toks in _split_chunks(structure, split, n_docs):
        Xs.append(_counts_csr(tok_ptr, toks, p.n_features))
        Ys.append(
            sp.csr_matrix((np.ones(labs.size, np.float32), labs, lab_ptr), shape=(lab_ptr.size - 1, p.n_labels))
        )
    return _stack(Xs, p.n_features), _stack(Ys, p.n_labels)


def _tfidf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    X = counts.copy()
    X.data = ((1.0 + np.log(X.data.astype(np.float64))) * idf[X.indices]).astype(np.float32)
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    sq = np.bincount(rows, weights=X.data.astype(np.float64) ** 2, minlength=X.shape[0]).astype(np.float64)
    scale = np.divide(1.0, np.sqrt(sq), out=np.zeros_like(sq), where=sq > 0)
    X.data = (X.data * scale[rows]).astype(np.float32)
    return X


def make_corpus(params: Optional[SyntheticParams] = None) -> SyntheticCorpus:
    """Generate (X_train, Y_train, X_test, Y_test); X tf-idf rows L2-normalised, all CSR float32."""
    p = params if params is not None else SyntheticParams()
    s = _Structure(p)
    C_train, Y_train = _split(s, 1, p.n_train)
    C_test, Y_test = _split(s, 2, p.n_test)
    df = np.bincount(C_train.indices, minlength=p.n_features).astype(np.float64)
    idf = np.log((1.0 + p.n_train) / (1.0 + df)) + 1.0  # smoothed, as scikit-learn's TfidfTransformer
    return SyntheticCorpus(_tfidf(C_train, idf), Y_train, _tfidf(C_test, idf), Y_test)


# ---- raw text ---------------------------------------------------------------------

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


def pseudo_words(n_features: int) -> np.ndarray:
    """Deterministic distinct pseudo-words for feature ids 0..n_features-1.

    Every word has the same number of consonant-vowel syllables (at least two),
    the syllables spelling the id in base 70, so no two ids share a word.
    """
    syll = np.array([c + v for c in _CONSONANTS for v in _VOWELS])
    base = syll.size
    n_syll = 2
    while base**n_syll < n_features:
        n_syll += 1
    ids = np.arange(n_features, dtype=np.int64)
    words = np.full(n_features, "", dtype=f"<U{2 * n_syll}")
    for j in range(n_syll - 1, -1, -1):
        words = np.char.add(words, syll[(ids // base**j) % base])
    return words


def label_names(n_labels: int) -> List[str]:
    return [f"label_{i}" for i in range(n_labels)]


def _texts(structure: _Structure, split: int, n_docs: int, vocab: List[str], names: List[str]):
    texts: List[str] = []
    labels: List[List[str]] = []
    for lab_ptr, labs, tok_ptr, toks in _split_chunks(structure, split, n_docs):
        words = [vocab[t] for t in toks.tolist()]
        bounds = tok_ptr.tolist()
        texts.extend(" ".join(words[a:b]) for a, b in zip(bounds[:-1], bounds[1:]))
        lab_names = [names[t] for t in labs.tolist()]
        lb = lab_ptr.tolist()
        labels.extend(lab_names[a:b] for a, b in zip(lb[:-1], lb[1:]))
    return texts, labels


def make_text_corpus(params: Optional[SyntheticParams] = None) -> SyntheticTextCorpus:
    """The corpus of ``make_corpus(params)`` as raw text.

    Each document is its token draws in order, feature f written as
    ``pseudo_words(n_features)[f]``; labels are "label_<id>" (sorted by id).
    Counting a text's words gives exactly the term counts behind the same
    row of ``make_corpus(params).X_*``. Builds Python strings: meant for
    corpora up to a few hundred thousand documents.
    """
    p = params if params is not None else SyntheticParams()
    s = _Structure(p)
    vocab = pseudo_words(p.n_features).tolist()
    names = label_names(p.n_labels)
    train_texts, train_labels = _texts(s, 1, p.n_train, vocab, names)
    test_texts, test_labels = _texts(s, 2, p.n_test, vocab, names)
    return SyntheticTextCorpus(train_texts, train_labels, test_texts, test_labels)


# ---- label embeddings ----------------------------------------------------------------

_EMB_CHUNK = 65536


def make_label_embeddings(
    n_labels: int, dim: int, n_clusters: int, seed: int = 0, spread: float = 0.5
) -> np.ndarray:
    """Clustered label embeddings, float32 (n_labels, dim), rows L2-normalised.

    Label i sits at a random unit cluster centre plus noise of expected norm
    ``spread`` (0: every label on its centre; 0.5: clearly separated clusters
    when dim is large). The noise is uniform per coordinate (16-bit
    resolution), scaled to the variance of an isotropic Gaussian: it is several
    times cheaper to draw than normal noise, and in high dimension the
    difference does not matter for clustering. The cluster of each label is uniform at random.
    Generated in float32 chunks: 1,000,000 x 256 (1 GiB) takes seconds.
    """
    for name, value in (("n_labels", n_labels), ("dim", dim), ("n_clusters", n_clusters)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not spread >= 0:
        raise ValueError(f"spread must be >= 0, got {spread!r}")
    rng = _rng(seed, 3)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n_labels, dim), dtype=np.float32)
    # U(-a, a) has variance a^2 / 3; per-coordinate variance spread^2 / dim.
    half_width = np.float32(np.sqrt(3.0) * spread / np.sqrt(dim))
    noise = np.empty((min(n_labels, _EMB_CHUNK), dim), dtype=np.float32)
    for c, start in enumerate(range(0, n_labels, _EMB_CHUNK)):
        stop = min(n_labels, start + _EMB_CHUNK)
        crng = _rng(seed, 4, c)
        block = out[start:stop]
        np.take(centres, crng.integers(0, n_clusters, stop - start), axis=0, out=block)
        buf = noise[: stop - start]
        # Raw generator output read as int16 is uniform on [-2^15, 2^15): four
        # coordinates per 64-bit draw, far cheaper than float draws.
        raw = crng.bit_generator.random_raw(-(-buf.size // 4))
        np.copyto(buf, raw.view(np.int16)[: buf.size].reshape(buf.shape), casting="unsafe")
        buf *= half_width / np.float32(32768.0)
        block += buf
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        norms[norms == 0] = 1.0
        block /= norms[:, None]
    return out
