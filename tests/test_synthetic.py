"""Synthetic corpus generator: reproducibility, layout, power law, learnability, scale."""
import time
from collections import Counter

import numpy as np
import pytest
import scipy.sparse as sp

import xmc.datasets.synthetic as synthetic
from xmc.datasets import (
    SyntheticParams,
    make_corpus,
    make_label_embeddings,
    make_text_corpus,
    pseudo_words,
)
from xmc.metrics import precision_at_k

SMALL = dict(n_labels=300, n_train=1500, n_test=300, n_features=3000, n_clusters=10)


def _same(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    return (
        a.shape == b.shape
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
        and np.array_equal(a.data, b.data)
    )


def test_same_seed_same_corpus_different_seed_different():
    a = make_corpus(SyntheticParams(**SMALL, seed=3))
    b = make_corpus(SyntheticParams(**SMALL, seed=3))
    c = make_corpus(SyntheticParams(**SMALL, seed=4))
    assert all(_same(x, y) for x, y in zip(a, b))
    assert not _same(a.X_train, c.X_train)
    assert not _same(a.Y_train, c.Y_train)


def test_test_size_does_not_change_training_split():
    a = make_corpus(SyntheticParams(**{**SMALL, "n_test": 300}))
    b = make_corpus(SyntheticParams(**{**SMALL, "n_test": 50}))
    assert _same(a.X_train, b.X_train) and _same(a.Y_train, b.Y_train)


def test_layout_dtypes_and_normalisation():
    p = SyntheticParams(**SMALL)
    corpus = make_corpus(p)
    X, Y, Xt, Yt = corpus  # unpacks like a tuple
    assert X.shape == (p.n_train, p.n_features) and Xt.shape == (p.n_test, p.n_features)
    assert Y.shape == (p.n_train, p.n_labels) and Yt.shape == (p.n_test, p.n_labels)
    for m in corpus:
        assert sp.isspmatrix_csr(m) and m.dtype == np.float32
        assert m.has_canonical_format
    for m in (X, Xt):
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
        assert np.all(m.data > 0)
    for m in (Y, Yt):
        assert np.all(m.data == 1)
        assert np.all(np.diff(m.indptr) >= 1)  # every document has a label
    # Means close to the requested ones (distinct labels; tokens merge into fewer features).
    assert abs(Y.nnz / Y.shape[0] - p.avg_labels_per_doc) < 0.3
    assert 0.5 * p.avg_features_per_doc < X.nnz / X.shape[0] <= p.avg_features_per_doc


def test_several_chunks_give_a_valid_corpus(monkeypatch):
    monkeypatch.setattr(synthetic, "_CHUNK_DOCS", 400)
    p = SyntheticParams(**SMALL)
    X, Y, Xt, Yt = make_corpus(p)
    assert X.shape[0] == Y.shape[0] == p.n_train and Xt.shape[0] == Yt.shape[0] == p.n_test
    assert X.has_canonical_format and Y.has_canonical_format
    assert np.all(np.diff(Y.indptr) >= 1)
    # Chunks use different random streams: no two chunks repeat each other.
    assert not _same(Y[:400], Y[400:800])


@pytest.mark.parametrize("exponent", [0.6, 1.0])
def test_label_frequencies_follow_the_power_law(exponent):
    # Many documents and few tokens: label counts are reliable and generation is fast.
    p = SyntheticParams(
        n_labels=1000, n_train=40000, n_test=0, n_features=2000, avg_features_per_doc=3,
        power_law_exponent=exponent, seed=1,
    )
    Y = make_corpus(p).Y_train
    freq = np.sort(np.bincount(Y.indices, minlength=p.n_labels))[::-1].astype(float)
    ranks = np.arange(1, 301)  # top 300 ranks: every count there is >= ~40
    slope = np.polyfit(np.log(ranks), np.log(freq[:300]), 1)[0]
    assert slope == pytest.approx(-exponent, abs=0.06)
    assert freq[0] > 10 * freq[299]  # a real head and tail, not a flat profile


def _centroids(X: sp.csr_matrix, Y: sp.csr_matrix) -> sp.csr_matrix:
    C = sp.csr_matrix(Y.T @ X)
    norms = np.sqrt(np.asarray(C.multiply(C).sum(axis=1)).ravel())
    return sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ C


def test_labels_are_learnable_but_not_trivial():
    X, Y, Xt, Yt = make_corpus(SyntheticParams(n_labels=500, n_train=4000, n_test=1000, n_features=8000))
    C = _centroids(X, Y)  # PIFA-style label centroids
    S = (X @ C.T).toarray()  # cosine of every training document with every centroid
    rows = np.repeat(np.arange(Y.shape[0]), np.diff(Y.indptr))
    own = S[rows, Y.indices]
    chance = S[np.random.default_rng(0).permutation(rows), Y.indices]
    # A label's centroid is far closer to its own documents than to random ones.
    assert own.mean() > 5 * chance.mean()
    # Nearest centroid on held-out documents: high but clearly not perfect.
    p1 = precision_at_k(Yt, sp.csr_matrix(Xt @ C.T), 1)
    assert 0.5 < p1 < 0.95, p1


def test_one_million_labels_is_quick():
    p = SyntheticParams(n_labels=1_000_000, n_train=2000, n_test=200, n_features=50000, avg_features_per_doc=20)
    t0 = time.perf_counter()
    X, Y, Xt, Yt = make_corpus(p)
    elapsed = time.perf_counter() - t0
    assert Y.shape == (2000, 1_000_000) and Yt.shape == (200, 1_000_000)
    assert Y.indices.max() < 1_000_000
    used = np.unique(Y.indices).size
    assert 1000 < used < 1_000_000  # a sparse sample of labels; most have no training document
    assert elapsed < 20, f"{elapsed:.1f} s for 1M labels"


def test_text_corpus_is_the_same_corpus_as_text():
    p = SyntheticParams(**SMALL)
    text = make_text_corpus(p)
    X, Y, Xt, Yt = make_corpus(p)
    vocab = {w: i for i, w in enumerate(pseudo_words(p.n_features))}
    assert len(vocab) == p.n_features  # distinct words
    for texts, labels, Xs, Ys in ((text.train_texts, text.train_labels, X, Y), (text.test_texts, text.test_labels, Xt, Yt)):
        assert len(texts) == Xs.shape[0] and len(labels) == Ys.shape[0]
        for i in range(0, len(texts), 37):
            counts = Counter(vocab[w] for w in texts[i].split())
            np.testing.assert_array_equal(sorted(counts), Xs.indices[Xs.indptr[i]:Xs.indptr[i + 1]])
            ids = [int(s.split("_")[1]) for s in labels[i]]
            assert all(s.startswith("label_") for s in labels[i])
            np.testing.assert_array_equal(ids, Ys.indices[Ys.indptr[i]:Ys.indptr[i + 1]])
    words = pseudo_words(12345)
    assert all(w.isalpha() and w.islower() for w in words[:50]) and len(set(words.tolist())) == 12345


def test_label_embeddings():
    E = make_label_embeddings(3000, 64, 15, seed=2)
    assert E.shape == (3000, 64) and E.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(E, make_label_embeddings(3000, 64, 15, seed=2))
    assert not np.array_equal(E, make_label_embeddings(3000, 64, 15, seed=3))
    # Clustered: with 15 clusters each label has close neighbours, random pairs are not close.
    S = E[:500] @ E.T
    S[np.arange(500), np.arange(500)] = -1
    assert np.median(S.max(axis=1)) > 0.7
    assert np.abs(S).mean() < 0.3


def test_label_embeddings_scale():
    t0 = time.perf_counter()
    E = make_label_embeddings(100_000, 256, 1000, seed=0)
    elapsed = time.perf_counter() - t0
    assert E.shape == (100_000, 256)
    assert elapsed < 10, f"{elapsed:.1f} s for 100k x 256 (1M x 256 is in benchmarks/)"


def test_params_validation_and_json_round_trip():
    p = SyntheticParams(n_labels=10, seed=5)
    assert SyntheticParams.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="n_labels must be a positive integer, got 0"):
        SyntheticParams(n_labels=0)
    with pytest.raises(ValueError, match=r"noise must be in \[0, 1\], got 1.5"):
        SyntheticParams(noise=1.5)
    with pytest.raises(ValueError, match="avg_labels_per_doc must be >= 1"):
        SyntheticParams(avg_labels_per_doc=0.5)
    with pytest.raises(ValueError, match=r"unknown SyntheticParams fields \['n_lables'\]"):
        SyntheticParams.from_dict({"n_lables": 5})
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        make_label_embeddings(10, 0, 2)
