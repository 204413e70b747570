"""Native beam search against the exhaustive numpy reference."""
import numpy as np
import pytest
import scipy.sparse as sp

from xmc.search import BeamSearcher, exhaustive_scores
from xmc.search.reference import topk_from_scores
from xmc.tree.label_tree import LabelTree


def random_tree(rng, sizes):
    """A tree with the given level sizes [1, s1, ..., n_labels]; every node gets >= 1 child."""
    layers = []
    for parents, children in zip(sizes[:-1], sizes[1:]):
        cuts = np.sort(rng.choice(np.arange(1, children), size=parents - 1, replace=False))
        layers.append(np.concatenate([[0], cuts, [children]]))
    return LabelTree(layers, rng.permutation(sizes[-1]))


def random_weights(rng, tree, n_features, density, scale=1.0):
    weights = []
    for t in range(tree.depth):
        cols = tree.level_size(t + 1)
        d = density[t] if isinstance(density, (list, tuple)) else density
        W = sp.random(n_features, cols, density=d, format="csr", random_state=rng,
                      data_rvs=lambda n: rng.normal(0.0, scale, n)).astype(np.float32)
        bias = rng.normal(0.0, 1.0, (1, cols)).astype(np.float32)
        weights.append(sp.vstack([W, sp.csr_matrix(bias)]).tocsc())
    return weights


def random_docs(rng, n, n_features, density, empty_rows=()):
    X = sp.random(n, n_features, density=density, format="csr", random_state=rng,
                  data_rvs=lambda m: rng.uniform(0.1, 1.0, m)).astype(np.float32)
    X = X.tolil()
    for r in empty_rows:
        X[r, :] = 0
    return X.tocsr()


# (level sizes, n_features, weight density per layer, doc density)
CONFIGS = [
    ([1, 4, 16, 120], 60, [0.9, 0.3, 0.05], 0.1),       # dense root, sparse leaves
    ([1, 3, 9, 27, 90], 40, 0.2, 0.3),                   # deep, binary-ish
    ([1, 150], 50, 0.1, 0.05),                           # flat one-vs-all
    ([1, 8, 200], 300, [0.5, 0.01], 0.2),                # dense docs vs tiny chunks
    ([1, 2, 7, 64], 2000, [0.3, 0.02, 0.002], 0.005),    # long sparse chunks, short docs
]


def assert_same_topk(ids, scores, full, k, tol=1e-5):
    """ids/scores are the exact top-k of the exhaustive scores `full`.

    Float32 and float64 may order labels whose scores differ by < tol either way,
    so positions inside such a near-tie only need a label of the right score.
    """
    ref_ids, ref_scores = topk_from_scores(full, k + 1)
    np.testing.assert_allclose(scores, ref_scores[:, :k], atol=tol)
    for i in range(ids.shape[0]):
        valid = ids[i] >= 0
        assert valid.sum() == min(k, full.shape[1])
        assert len(set(ids[i][valid].tolist())) == valid.sum()
        np.testing.assert_allclose(full[i, ids[i][valid]], scores[i][valid], atol=tol)
        # exact ties (l3-hinge saturates at 1) go to the smaller label id
        got = scores[i][valid]
        tied = got[1:] == got[:-1]
        assert np.all(ids[i][valid][1:][tied] > ids[i][valid][:-1][tied])
        s = ref_scores[i]
        for j in range(int(valid.sum())):
            near = [abs(s[j] - s[m]) < tol for m in (j - 1, j + 1) if 0 <= m < s.size and ref_ids[i, m] >= 0]
            if not any(near):
                assert ids[i, j] == ref_ids[i, j], (i, j)


def widest_level(tree):
    return max(tree.level_size(l) for l in range(tree.depth + 1))


@pytest.mark.parametrize("activation", ["sigmoid", "l3-hinge"])
@pytest.mark.parametrize("config", range(len(CONFIGS)))
def test_full_beam_equals_exhaustive_topk(config, activation):
    rng = np.random.default_rng(config)
    sizes, D, wd, xd = CONFIGS[config]
    tree = random_tree(rng, sizes)
    weights = random_weights(rng, tree, D, wd, scale=0.5)
    X = random_docs(rng, 40, D, xd, empty_rows=(3, 17))
    searcher = BeamSearcher(tree, weights, activation=activation)
    k = 7
    ids, scores = searcher.search(X, k=k, beam=widest_level(tree), threads=1, block=0)
    assert ids.dtype == np.int32 and scores.dtype == np.float32 and ids.shape == (40, k)
    full = exhaustive_scores(tree, weights, X, activation)
    assert_same_topk(ids, scores, full, k)
    assert_same_topk(*searcher.search(X, k=k, beam=widest_level(tree), threads=2, block=8), full, k)


@pytest.mark.parametrize("beam", [1, 2, 5])
def test_narrow_beam_returns_valid_labels_with_exact_scores(beam):
    rng = np.random.default_rng(11)
    tree = random_tree(rng, [1, 5, 25, 300])
    weights = random_weights(rng, tree, 80, [0.6, 0.2, 0.05])
    X = random_docs(rng, 50, 80, 0.1)
    ids, scores = BeamSearcher(tree, weights).search(X, k=10, beam=beam)
    full = exhaustive_scores(tree, weights, X, "l3-hinge")
    for i in range(X.shape[0]):
        got = ids[i][ids[i] >= 0]
        assert len(set(got.tolist())) == got.size
        np.testing.assert_allclose(scores[i, :got.size], full[i, got], atol=1e-5)
        assert np.all(np.diff(scores[i, :got.size]) <= 0)
    assert np.all(ids[:, 0] >= 0)


def test_narrow_beam_is_close_to_exhaustive_on_a_peaked_model():
    """With labels drawn from a clear winner path, a small beam finds the exhaustive top-1."""
    rng = np.random.default_rng(5)
    tree = random_tree(rng, [1, 4, 16, 64])
    weights = random_weights(rng, tree, 30, 0.5, scale=3.0)
    X = random_docs(rng, 60, 30, 0.3)
    ids, _ = BeamSearcher(tree, weights, activation="sigmoid").search(X, k=1, beam=4)
    ref_ids, _ = topk_from_scores(exhaustive_scores(tree, weights, X, "sigmoid"), 1)
    assert np.mean(ids[:, 0] == ref_ids[:, 0]) >= 0.8


def test_one_and_two_threads_agree_exactly():
    rng = np.random.default_rng(3)
    tree = random_tree(rng, [1, 6, 36, 400])
    weights = random_weights(rng, tree, 500, [0.5, 0.1, 0.02])
    X = random_docs(rng, 300, 500, 0.02)
    s = BeamSearcher(tree, weights)
    a = s.search(X, k=5, beam=3, threads=1)
    b = s.search(X, k=5, beam=3, threads=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("config", range(len(CONFIGS)))
def test_batch_path_equals_one_document_at_a_time(config):
    rng = np.random.default_rng(100 + config)
    sizes, D, wd, xd = CONFIGS[config]
    tree = random_tree(rng, sizes)
    weights = random_weights(rng, tree, D, wd)
    X = random_docs(rng, 150, D, xd, empty_rows=(0, 77))
    s = BeamSearcher(tree, weights)
    one = s.search(X, k=6, beam=3, block=0, threads=1)
    for block, threads in [(1, 1), (16, 2), (64, 1), (1000, 2)]:
        got = s.search(X, k=6, beam=3, block=block, threads=threads)
        np.testing.assert_array_equal(got[0], one[0])
        np.testing.assert_array_equal(got[1], one[1])
    # a beam beyond the widest level is the full beam, without beam-sized buffers
    one = s.search(X, k=6, beam=widest_level(tree), block=0)
    for block in [0, 64]:
        got = s.search(X, k=6, beam=2_000_000_000, block=block)
        np.testing.assert_array_equal(got[0], one[0])
        np.testing.assert_array_equal(got[1], one[1])


def test_empty_documents_score_the_biases():
    rng = np.random.default_rng(4)
    tree = random_tree(rng, [1, 3, 30])
    weights = random_weights(rng, tree, 20, 0.3)
    X = sp.csr_matrix((5, 20), dtype=np.float32)
    ids, scores = BeamSearcher(tree, weights).search(X, k=4, beam=3)
    # beam 3 is the full beam here: 3 nodes at the widest inner level
    assert_same_topk(ids, scores, exhaustive_scores(tree, weights, X, "l3-hinge"), 4)
    assert np.all(ids == ids[0])


def test_k_larger_than_reachable_labels_is_padded():
    rng = np.random.default_rng(6)
    tree = random_tree(rng, [1, 2, 9])
    weights = random_weights(rng, tree, 10, 0.5)
    X = random_docs(rng, 4, 10, 0.5)
    ids, scores = BeamSearcher(tree, weights).search(X, k=12, beam=5)
    assert np.all(ids[:, 9:] == -1) and np.all(scores[:, 9:] == 0.0)
    assert all(sorted(row[:9].tolist()) == list(range(9)) for row in ids)
    # beam 1: only the labels under the best level-1 node are reachable
    ids1, scores1 = BeamSearcher(tree, weights).search(X, k=12, beam=1)
    sizes = np.diff(tree.layer_indptr[1])
    for row, srow in zip(ids1, scores1):
        n = int((row >= 0).sum())
        assert n in sizes.tolist()
        assert np.all(row[n:] == -1) and np.all(srow[n:] == 0.0)


def test_search_csr_matches_search():
    rng = np.random.default_rng(8)
    tree = random_tree(rng, [1, 4, 40])
    weights = random_weights(rng, tree, 25, 0.3)
    X = random_docs(rng, 10, 25, 0.3)
    s = BeamSearcher(tree, weights)
    ids, scores = s.search(X, k=50, beam=2)
    M = s.search_csr(X, k=50, beam=2)
    assert M.shape == (10, 40) and M.dtype == np.float32 and M.has_sorted_indices
    for i in range(10):
        valid = ids[i] >= 0
        dense = np.zeros(40, dtype=np.float32)
        dense[ids[i][valid]] = scores[i][valid]
        np.testing.assert_array_equal(M[i].toarray().ravel(), dense)


def test_dense_input_and_single_row():
    rng = np.random.default_rng(9)
    tree = random_tree(rng, [1, 3, 20])
    weights = random_weights(rng, tree, 15, 0.4)
    X = random_docs(rng, 3, 15, 0.4)
    s = BeamSearcher(tree, weights)
    a = s.search(X, k=3)
    b = s.search(X.toarray(), k=3)
    c = s.search(X.toarray()[1], k=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[0][1:2], c[0])


def test_configs_cover_every_layout_kind():
    """The configs of the exhaustive tests exercise all four chunk layouts."""
    seen = {}
    for config, (sizes, D, wd, xd) in enumerate(CONFIGS):
        rng = np.random.default_rng(config)
        tree = random_tree(rng, sizes)
        weights = random_weights(rng, tree, D, wd, scale=0.5)
        stats = BeamSearcher(tree, weights).layout_stats()["layers"]
        for st, W in zip(stats, weights):
            assert st["nnz"] == W[:-1].nnz
            for kind, count in st["kinds"].items():
                seen[kind] = seen.get(kind, 0) + count
    assert all(seen[k] > 0 for k in ["direct+dense", "direct+pairs", "hash+dense", "hash+pairs"]), seen


def test_wrong_feature_count_is_a_clear_error():
    rng = np.random.default_rng(1)
    tree = random_tree(rng, [1, 3, 12])
    s = BeamSearcher(tree, random_weights(rng, tree, 10, 0.3))
    with pytest.raises(ValueError, match="X has 11 features but the model expects 10"):
        s.search(sp.csr_matrix((2, 11), dtype=np.float32))


def test_bad_model_arguments_are_clear_errors():
    rng = np.random.default_rng(2)
    tree = random_tree(rng, [1, 3, 12])
    weights = random_weights(rng, tree, 10, 0.3)
    with pytest.raises(ValueError, match="unknown activation 'relu'"):
        BeamSearcher(tree, weights, activation="relu")
    with pytest.raises(ValueError, match="2 layers but 1 weight"):
        BeamSearcher(tree, weights[:1])
    with pytest.raises(ValueError, match=r"weights\[1\] has shape \(11, 11\), expected \(11, 12\)"):
        BeamSearcher(tree, [weights[0], weights[1][:, :11]])
    s = BeamSearcher(tree, weights)
    with pytest.raises(ValueError, match="k must be at least 1"):
        s.search(sp.csr_matrix((1, 10), dtype=np.float32), k=0)
    with pytest.raises(ValueError, match="beam must be at least 1"):
        s.search(sp.csr_matrix((1, 10), dtype=np.float32), beam=0)


def test_non_canonical_and_float64_weights_give_the_same_model():
    rng = np.random.default_rng(12)
    tree = random_tree(rng, [1, 4, 50])
    weights = random_weights(rng, tree, 30, [0.6, 0.2])
    X = random_docs(rng, 20, 30, 0.3)
    ref = BeamSearcher(tree, weights).search(X, k=5, beam=2)
    messy = []
    for W in weights:
        # every weight split in two duplicate halves, rows unsorted within columns
        C = W.tocoo()
        rows = np.concatenate([C.row, C.row])[::-1]
        cols = np.concatenate([C.col, C.col])[::-1]
        data = np.concatenate([C.data / 2, C.data / 2])[::-1].astype(np.float64)
        M = sp.csc_matrix((data, (rows, cols)), shape=W.shape)  # coo -> csc sums duplicates...
        M = sp.csc_matrix((data[np.argsort(cols, kind="stable")], rows[np.argsort(cols, kind="stable")],
                           np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=W.shape[1]))])),
                          shape=W.shape)  # ...so build the duplicated CSC by hand
        assert not M.has_canonical_format
        messy.append(M)
    got = BeamSearcher(tree, messy).search(X, k=5, beam=2)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_allclose(got[1], ref[1], atol=1e-6)


def test_searcher_owns_its_layout_after_the_weights_are_gone():
    import gc

    rng = np.random.default_rng(13)
    tree = random_tree(rng, [1, 5, 60])
    weights = random_weights(rng, tree, 40, [0.5, 0.2])
    X = random_docs(rng, 30, 40, 0.2)
    full = exhaustive_scores(tree, weights, X, "sigmoid")
    s = BeamSearcher(tree, weights, activation="sigmoid")
    del weights
    gc.collect()
    _ = [np.ones(10_000) for _ in range(50)]  # reuse freed memory
    ids, scores = s.search(X, k=4, beam=5)
    assert_same_topk(ids, scores, full, 4)
