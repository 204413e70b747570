"""Label-tree builder: PIFA, balanced spherical 2-means, compression into a LabelTree.

Native routines are compared with plain numpy references written here.
"""
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from xmc import _core
from xmc.tree import (
    LabelTree,
    TreeParams,
    binary_partition,
    build_label_tree,
    cluster_labels,
    compress,
    kept_levels,
    pifa_embeddings,
)
from xmc.utils.sparse import csr_arrays

MASK = (1 << 64) - 1


# ---- numpy references --------------------------------------------------------------
def splitmix64_next(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def cluster_seed(seed, node_id):
    s, a = splitmix64_next(seed & MASK)
    state = a ^ ((node_id * 0xD1B54A32D192ED03) & MASK)
    state, _ = splitmix64_next(state)
    return state


def unit_rows(X):
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    X = X.astype(np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)


def ref_lloyd(Xn, ids, diff, max_iter, tol=0.0):
    """Balanced spherical 2-means from a centroid difference: the higher half by
    cos(x, c_right) - cos(x, c_left) goes right. Stops once at most int(tol * n) points change
    halves in an iteration. Returns the halves, the iterations and the final halves' difference."""
    ids = np.sort(np.asarray(ids))
    mid = ids.size // 2
    previous = None
    for it in range(1, max_iter + 1):
        score = Xn[ids] @ diff
        ranked = ids[np.lexsort((ids, score))]
        left, right = np.sort(ranked[:mid]), np.sort(ranked[mid:])
        # A point that leaves the right half is matched by one that enters it.
        if previous is not None and 2 * np.setdiff1d(right, previous).size <= int(tol * ids.size):
            break
        previous = right
        diff = centroid_difference(Xn, left, right)
    return left, right, it, centroid_difference(Xn, left, right)


def centroid_difference(Xn, left, right):
    cr, cl = Xn[right].sum(0), Xn[left].sum(0)
    cr = cr / np.linalg.norm(cr) if np.linalg.norm(cr) > 0 else cr
    cl = cl / np.linalg.norm(cl) if np.linalg.norm(cl) > 0 else cl
    return cr - cl


def ref_split(Xn, ids, init_right, init_left, max_iter, tol=0.0):
    """A split started from the centroids Xn[init_right] and Xn[init_left]."""
    return ref_lloyd(Xn, ids, Xn[init_right] - Xn[init_left], max_iter, tol)[:3]


def ref_sampled_split(Xn, ids, state, sample, max_iter, tol, full_passes=3):
    """2-means on `sample` of the ids, drawn by a partial Fisher-Yates shuffle from the cluster's
    stream, then `full_passes` passes over all of them from the sample's centroids."""
    pool = np.array(ids)
    for i in range(sample):
        state, r = splitmix64_next(state)
        j = i + r % (pool.size - i)
        pool[i], pool[j] = pool[j], pool[i]
    drawn = np.sort(pool[:sample])
    state, r1 = splitmix64_next(state)
    state, r2 = splitmix64_next(state)
    a = r1 % sample
    b = (a + 1 + r2 % (sample - 1)) % sample
    *_, diff = ref_lloyd(Xn, drawn, Xn[drawn[a]] - Xn[drawn[b]], max_iter, tol)
    return ref_lloyd(Xn, ids, diff, min(max_iter, full_passes), tol)[:2]


def ref_tree(X, max_leaf_size, max_iter, seed, tol=0.0, split_sample=0):
    Xn = unit_rows(X)
    n = Xn.shape[0]
    order = np.arange(n)
    bounds = [np.array([0, n])]
    level = 0
    while np.diff(bounds[-1]).max() > max_leaf_size:
        cur, nxt = bounds[-1], [0]
        for j in range(cur.size - 1):
            s, e = int(cur[j]), int(cur[j + 1])
            if e - s >= 2:
                state = cluster_seed(seed, (1 << level) + j)
                if split_sample and e - s > split_sample:
                    left, right = ref_sampled_split(Xn, order[s:e], state, split_sample, max_iter, tol)
                else:
                    state, r1 = splitmix64_next(state)
                    state, r2 = splitmix64_next(state)
                    a = r1 % (e - s)
                    b = (a + 1 + r2 % (e - s - 1)) % (e - s)
                    left, right, _ = ref_split(Xn, order[s:e], order[s + a], order[s + b], max_iter, tol)
                order[s:e] = np.concatenate([left, right])
                nxt.append(s + (e - s) // 2)
            nxt.append(e)
        bounds.append(np.array(nxt))
        level += 1
    return order, bounds


# ---- data generators -----------------------------------------------------------------
def clustered(n_clusters, per_cluster, dim, noise, seed):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, dim))
    truth = np.repeat(np.arange(n_clusters), per_cluster)
    X = centers[truth] + noise * rng.standard_normal((truth.size, dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    perm = rng.permutation(truth.size)
    return X[perm].astype(np.float32), truth[perm]


def corpus(n_docs, n_features, n_labels, seed, empty_labels=()):
    rng = np.random.default_rng(seed)
    X = sp.random(n_docs, n_features, density=0.05, format="csr", random_state=rng, dtype=np.float32)
    Y = sp.random(n_docs, n_labels, density=0.03, format="lil", random_state=rng, dtype=np.float32)
    Y[:, list(empty_labels)] = 0
    Y = Y.tocsr()
    Y.data[:] = 1
    Y.eliminate_zeros()
    return X, Y


def leaf_sets(tree):
    last = tree.layer_indptr[-1]
    return [tree.label_order[last[i]:last[i + 1]] for i in range(last.size - 1)]


# ---- PIFA -----------------------------------------------------------------------------
def test_pifa_equals_scipy_reference_and_empty_labels_stay_empty():
    X, Y = corpus(300, 120, 40, seed=1, empty_labels=[3, 17])
    expected = normalize(Y.T @ normalize(X)).tocsr()
    for threads in (1, 2):
        got = pifa_embeddings(X, Y, threads=threads)
        assert got.shape == (40, 120) and got.dtype == np.float32
        np.testing.assert_allclose(got.toarray(), expected.toarray(), rtol=1e-5, atol=1e-6)
        assert got.has_sorted_indices
    assert got[3].nnz == 0 and got[17].nnz == 0
    np.testing.assert_allclose(np.linalg.norm(got.toarray()[[0, 1, 2]], axis=1), 1.0, rtol=1e-5)


def test_pifa_over_several_blocks_of_labels_equals_scipy_reference():
    # The core fills blocks of 1024 labels at offsets bounded by their documents' non-zeros, then
    # moves them together: rows must land whole and in order across block edges.
    X, Y = corpus(3000, 400, 2600, seed=5, empty_labels=[0, 1023, 1024, 2599])
    expected = normalize(Y.T @ normalize(X)).tocsr()
    got = pifa_embeddings(X, Y, threads=2)
    np.testing.assert_array_equal(got.indptr, expected.indptr)
    np.testing.assert_array_equal(got.indices, expected.indices)
    np.testing.assert_allclose(got.data, expected.data, rtol=1e-5, atol=1e-6)


def test_pifa_rejects_mismatched_rows():
    X, Y = corpus(30, 10, 5, seed=2)
    with pytest.raises(ValueError, match="X has 30 documents .* Y has 29"):
        pifa_embeddings(X, Y[:29])


# ---- one split against numpy ---------------------------------------------------------------
def native_split(X, sparse, ids, init_right, init_left, max_iter, tol):
    """The core's one split of ``ids``, on X as CSR arrays or as a dense array."""
    if sparse:
        return _core.tree_split_sparse(*csr_arrays(X), ids, init_right, init_left, max_iter, tol)
    return _core.tree_split_dense(X, ids, init_right, init_left, max_iter, tol)


@pytest.mark.parametrize("sparse", [False, True])
def test_native_split_equals_numpy_reference(sparse):
    X, _ = clustered(4, 50, 16, noise=0.8, seed=3)
    X[7] = 0  # an empty row is scored 0 and still placed
    ids = np.random.default_rng(4).choice(200, size=121, replace=False).astype(np.int32)
    a, b = int(ids[5]), int(ids[60])
    left, right, iters = native_split(X, sparse, ids, a, b, 20, 0.0)
    rl, rr, rit = ref_split(unit_rows(X), ids, a, b, 20)
    assert left.size == 60 and right.size == 61
    np.testing.assert_array_equal(left, rl)
    np.testing.assert_array_equal(right, rr)
    assert iters == rit


@pytest.mark.parametrize("sparse", [False, True])
def test_split_tolerance_stops_earlier_like_the_reference(sparse):
    X, _ = clustered(8, 250, 24, noise=1.5, seed=11)
    ids = np.arange(2000, dtype=np.int32)
    exact = native_split(X, sparse, ids, 3, 1500, 50, 0.0)
    loose = native_split(X, sparse, ids, 3, 1500, 50, 0.05)
    for tol, got in ((0.0, exact), (0.05, loose)):
        rl, rr, rit = ref_split(unit_rows(X), ids, 3, 1500, 50, tol)
        np.testing.assert_array_equal(got[0], rl)
        np.testing.assert_array_equal(got[1], rr)
        assert got[2] == rit
    assert loose[2] < exact[2]


def test_cluster_seed_matches_python():
    for seed, node in [(0, 1), (42, 7), (2**63 + 5, 123456)]:
        assert _core.tree_cluster_seed(seed, node) == cluster_seed(seed, node)


# ---- whole recursion against numpy --------------------------------------------------------
@pytest.mark.parametrize("sparse", [False, True])
def test_native_tree_equals_numpy_reference(sparse):
    X, _ = clustered(6, 50, 12, noise=0.7, seed=5)
    emb = sp.csr_matrix(X) if sparse else X
    part = binary_partition(emb, TreeParams(max_leaf_size=20, max_iter=20, seed=9, threads=1))
    order, bounds = ref_tree(X, 20, 20, seed=9)
    assert len(part.level_bounds) == len(bounds)
    for got, exp in zip(part.level_bounds, bounds):
        np.testing.assert_array_equal(got, exp)
    np.testing.assert_array_equal(part.label_order, order)
    loose = binary_partition(emb, TreeParams(max_leaf_size=20, max_iter=20, seed=9, threads=1, tol=0.1))
    order, bounds = ref_tree(X, 20, 20, seed=9, tol=0.1)
    np.testing.assert_array_equal(loose.label_order, order)


@pytest.mark.parametrize("sparse,tol", [(False, 0.0), (True, 0.0), (True, 0.02)])
def test_sampled_splits_equal_the_numpy_reference(sparse, tol):
    X, _ = clustered(8, 100, 16, noise=0.6, seed=21)
    emb = sp.csr_matrix(X) if sparse else X
    # The root (800 labels) and its halves (400) run on 300 drawn labels; the levels below on all.
    order, bounds = ref_tree(X, 30, 20, seed=4, tol=tol, split_sample=300)
    for threads in (1, 2):
        part = binary_partition(emb, TreeParams(max_leaf_size=30, seed=4, tol=tol, threads=threads,
                                                split_sample=300))
        np.testing.assert_array_equal(part.label_order, order)
        for got, exp in zip(part.level_bounds, bounds):
            np.testing.assert_array_equal(got, exp)
    assert not np.array_equal(order, ref_tree(X, 30, 20, seed=4, tol=tol)[0])  # the sample did change the splits


# ---- tree shape --------------------------------------------------------------------------
@pytest.mark.parametrize("n_labels,leaf", [(1000, 30), (777, 7), (3, 1), (64, 64), (65, 64)])
def test_tree_is_valid_and_balanced(n_labels, leaf):
    X, _ = clustered(8, (n_labels + 7) // 8, 8, noise=1.0, seed=6)
    X = X[:n_labels]
    params = TreeParams(branching_factor=4, max_leaf_size=leaf, threads=2)
    part = binary_partition(X, params)
    for d, b in enumerate(part.level_bounds):
        sizes = np.diff(b)
        assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1, (d, sizes)
    assert np.diff(part.level_bounds[-1]).max() <= leaf
    if len(part.level_bounds) > 1:
        assert np.diff(part.level_bounds[-2]).max() > leaf  # no needless level
    tree = compress(part, params)
    assert isinstance(tree, LabelTree) and tree.n_labels == n_labels
    tree.validate()
    assert max(len(s) for s in leaf_sets(tree)) <= leaf
    if tree.depth == 1:
        assert n_labels <= leaf
        return
    assert np.diff(tree.layer_indptr[0]).max() <= 4
    for ptr in tree.layer_indptr[1:-1]:
        assert np.all(np.diff(ptr) == 4)  # full fan-out below the root (bottom-up, like PECOS)


def test_default_level_sizes():
    X, _ = clustered(4, 1250, 8, noise=1.0, seed=7)
    tree = cluster_labels(X, TreeParams(branching_factor=4, max_leaf_size=10))
    # 5000 labels / 10 per leaf -> 9 binary levels; keep 9, 7, 5, 3, 1.
    assert [tree.level_size(t) for t in range(tree.depth + 1)] == [1, 2, 8, 32, 128, 512, 5000]


def test_few_labels_give_a_flat_tree():
    X, _ = clustered(2, 20, 8, noise=1.0, seed=8)
    tree = cluster_labels(X, TreeParams(max_leaf_size=40, height=3))
    assert tree.depth == 1 and tree.n_leaves == 1
    np.testing.assert_array_equal(np.sort(tree.label_order), np.arange(40))


def test_shallow_and_wide_gives_requested_height():
    X, _ = clustered(10, 1000, 8, noise=1.0, seed=9)
    params = TreeParams(branching_factor=16, max_leaf_size=10)
    part = binary_partition(X, params)
    assert part.binary_depth == 10
    for height in range(2, 12):
        tree = compress(part, TreeParams(branching_factor=16, max_leaf_size=10, height=height))
        assert tree.depth == height
        assert max(len(s) for s in leaf_sets(tree)) <= 10
    # H=3 keeps binary levels 6 and 10: a wide root (64 children) over 16-way nodes.
    tree = compress(part, TreeParams(branching_factor=16, max_leaf_size=10, height=3))
    assert [tree.level_size(t) for t in range(4)] == [1, 64, 1024, 10000]
    with pytest.raises(ValueError, match="height=12 needs at least 11 binary levels .* gives 10"):
        compress(part, TreeParams(branching_factor=16, max_leaf_size=10, height=12))
    assert kept_levels(10, 16, 4) == [2, 6, 10]


# ---- determinism and quality -----------------------------------------------------------------
@pytest.mark.parametrize("sparse", [False, True])
def test_deterministic_for_seed_and_thread_count(sparse):
    # 8192 x 160: big enough that the top splits run multithreaded inside the cluster.
    X, _ = clustered(64, 128, 160, noise=1.5, seed=10)
    emb = sp.csr_matrix(np.where(np.abs(X) > 0.05, X, 0)) if sparse else X
    trees = [cluster_labels(emb, TreeParams(max_leaf_size=50, seed=3, threads=t)) for t in (1, 2, 2)]
    for t in trees[1:]:
        np.testing.assert_array_equal(t.label_order, trees[0].label_order)
        for a, b in zip(t.layer_indptr, trees[0].layer_indptr):
            np.testing.assert_array_equal(a, b)
    other = cluster_labels(emb, TreeParams(max_leaf_size=50, seed=4, threads=2))
    assert not np.array_equal(other.label_order, trees[0].label_order)


def test_float64_input_gives_the_float32_tree():
    X, _ = clustered(4, 100, 8, noise=1.0, seed=11)
    a = cluster_labels(X, TreeParams(max_leaf_size=10))
    b = cluster_labels(X.astype(np.float64), TreeParams(max_leaf_size=10))
    np.testing.assert_array_equal(a.label_order, b.label_order)


@pytest.mark.parametrize("split_sample", [0, 512])  # 512: the top two levels run on samples
def test_generated_clusters_are_recovered(split_sample):
    X, truth = clustered(32, 64, 32, noise=0.3, seed=12)
    tree = cluster_labels(X, TreeParams(branching_factor=2, max_leaf_size=64, seed=1, split_sample=split_sample))
    leaf_of = tree.label_to_node(tree.depth - 1)
    same_truth = truth[:, None] == truth[None, :]
    same_leaf = leaf_of[:, None] == leaf_of[None, :]
    off_diag = ~np.eye(truth.size, dtype=bool)
    together = (same_leaf & same_truth & off_diag).sum() / (same_truth & off_diag).sum()
    chance = 63 / (truth.size - 1)
    assert together > 0.9 > 20 * chance


def test_build_label_tree_gives_every_label_a_leaf_even_without_documents():
    X, Y = corpus(400, 200, 300, seed=13, empty_labels=[0, 5, 299])
    tree = build_label_tree(X, Y, TreeParams(branching_factor=4, max_leaf_size=8, seed=2))
    assert tree.n_labels == 300
    held = np.concatenate(leaf_sets(tree))
    np.testing.assert_array_equal(np.sort(held), np.arange(300))
    assert max(len(s) for s in leaf_sets(tree)) <= 8


@pytest.mark.parametrize("split_sample", [0, 64])
def test_build_label_tree_equals_clustering_the_pifa_embeddings(split_sample):
    # build_label_tree keeps the embeddings in the core, which reuses their arrays as scratch from
    # the third level on: the tree must be the one clustering the returned embeddings gives.
    X, Y = corpus(3000, 400, 2600, seed=7, empty_labels=[4])
    for threads in (1, 2):
        params = TreeParams(branching_factor=4, max_leaf_size=10, split_sample=split_sample, seed=3,
                            threads=threads)
        fused = build_label_tree(X, Y, params)
        apart = cluster_labels(pifa_embeddings(X, Y, threads=threads), params)
        assert fused.depth >= 4
        np.testing.assert_array_equal(fused.label_order, apart.label_order)
        for a, b in zip(fused.layer_indptr, apart.layer_indptr):
            np.testing.assert_array_equal(a, b)


# ---- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("field,value,message", [
    ("branching_factor", 3, "branching_factor: expected a power of two >= 2 .* found 3"),
    ("branching_factor", 1, "branching_factor: expected a power of two >= 2 .* found 1"),
    ("max_leaf_size", 0, "max_leaf_size: expected an integer >= 1, found 0"),
    ("max_iter", 0, "max_iter: expected an integer >= 1, found 0"),
    ("tol", 1.0, r"tol: expected a number in \[0, 1\), found 1.0"),
    ("tol", -0.1, r"tol: expected a number in \[0, 1\), found -0.1"),
    ("split_sample", 1, "split_sample: expected 0 .no sampling. or an integer >= 2, found 1"),
    ("split_sample", -5, "split_sample: expected 0 .no sampling. or an integer >= 2, found -5"),
    ("height", 1, "height: expected None or an integer >= 2 .* found 1"),
])
def test_bad_params_are_rejected(field, value, message):
    X = np.ones((10, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=message):
        cluster_labels(X, TreeParams(**{field: value}))


def test_bad_embeddings_are_rejected():
    with pytest.raises(TypeError, match="expected floating-point values .* found dtype int64"):
        cluster_labels(np.ones((10, 4), dtype=np.int64), TreeParams())
    with pytest.raises(ValueError, match=r"expected a 2-d array \(labels x dimensions\), found shape \(10,\)"):
        cluster_labels(np.ones(10, dtype=np.float32), TreeParams())
    with pytest.raises(TypeError, match="expected a numpy array or a scipy sparse matrix, found list"):
        cluster_labels([[1.0]], TreeParams())
    X, Y = corpus(20, 10, 5, seed=14)
    with pytest.raises(ValueError, match="embedding: expected 'pifa' .* found 'glove'"):
        build_label_tree(X, Y, TreeParams(embedding="glove"))
