"""Linear PLT trainer: the C++ dual CD solvers, the per-layer driver and PLTLinear."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.optimize as so
import scipy.sparse as sp

from conftest import DATA_ROOT
from xmc import _core
from xmc.linear import PLTLinear, PLTParams
from xmc.tree.label_tree import LabelTree
from xmc.utils.sparse import csr_arrays, l2_normalize_rows

BIBTEX = DATA_ROOT / "bibtex"


# ---- numpy references ---------------------------------------------------------
def primal(w, Xa, y, C, loss):
    z = y * (Xa @ w)
    if loss == "squared_hinge":
        m = np.maximum(0.0, 1.0 - z)
        return 0.5 * w @ w + C * np.sum(m * m), w - 2 * C * Xa.T @ (y * m)
    return 0.5 * w @ w + C * np.sum(np.logaddexp(0.0, -z)), w - C * Xa.T @ (y / (1.0 + np.exp(z)))


def with_bias(X, bias=1.0):
    return np.hstack([X.toarray().astype(np.float64), np.full((X.shape[0], 1), bias)])


def activation(z, name):
    if name == "l3-hinge":
        return np.exp(-np.maximum(0.0, 1.0 - z) ** 3)
    return 1.0 / (1.0 + np.exp(-z))


def exact_scores(model: PLTLinear, X) -> np.ndarray:
    """Every label's path probability, computed densely (the beam search's reference)."""
    Xb = sp.hstack([sp.csr_matrix(X), np.ones((X.shape[0], 1))]).tocsr()
    probs = np.ones((X.shape[0], 1))
    for t, W in enumerate(model.weights):
        a = activation((Xb @ W).toarray(), model.params.resolved_activation)
        probs = probs[:, model.tree.node_parents(t)] * a
    scores = np.zeros_like(probs)
    scores[:, model.tree.label_order] = probs
    return scores


def precision_at_1(scores: np.ndarray, Y) -> float:
    top = np.asarray(scores).argmax(axis=1)
    return float(np.asarray(sp.csr_matrix(Y)[np.arange(len(top)), top]).mean())


def two_level_tree(n_labels: int, n_clusters: int, seed: int = 0) -> LabelTree:
    order = np.random.default_rng(seed).permutation(n_labels)
    sizes = np.diff(np.linspace(0, n_labels, n_clusters + 1).astype(np.int64))
    return LabelTree([np.array([0, n_clusters]), np.concatenate([[0], np.cumsum(sizes)])], order)


def generated(n_docs=1200, n_labels=64, n_features=400, seed=0):
    """Each label owns 4 signature features; a doc shows some of its labels' signatures plus noise."""
    rng = np.random.default_rng(seed)
    signature = rng.permutation(n_features)[: n_labels * 4].reshape(n_labels, 4)
    rows, cols, yrows, ycols = [], [], [], []
    for i in range(n_docs):
        labels = rng.choice(n_labels, size=rng.integers(1, 4), replace=False)
        feats = set(rng.choice(n_features, size=6).tolist())
        for l in labels:
            feats.update(rng.choice(signature[l], size=3, replace=False).tolist())
        rows += [i] * len(feats)
        cols += sorted(feats)
        yrows += [i] * len(labels)
        ycols += labels.tolist()
    X = sp.csr_matrix((rng.uniform(0.5, 1.5, len(rows)).astype(np.float32), (rows, cols)),
                      shape=(n_docs, n_features))
    Y = sp.csr_matrix((np.ones(len(yrows), np.float32), (yrows, ycols)), shape=(n_docs, n_labels))
    return l2_normalize_rows(X), Y


def read_xc(path: Path):
    with open(path) as f:
        n, d, L = map(int, f.readline().split())
        rows, cols, vals, yr, yc = [], [], [], [], []
        for i, line in enumerate(f):
            head, _, rest = line.rstrip("\n").partition(" ")
            if head:
                for l in head.split(","):
                    yr.append(i)
                    yc.append(int(l))
            for tok in rest.split():
                fid, v = tok.split(":")
                rows.append(i)
                cols.append(int(fid))
                vals.append(float(v))
    X = sp.csr_matrix((np.array(vals, np.float32), (rows, cols)), shape=(n, d))
    Y = sp.csr_matrix((np.ones(len(yr), np.float32), (yr, yc)), shape=(n, L))
    return X, Y


# ---- solver ------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
@pytest.mark.parametrize("C", [1.0, 0.3])
def test_solver_reaches_the_primal_optimum(loss, C):
    rng = np.random.default_rng(1)
    X = sp.random(80, 10, density=0.4, random_state=2, format="csr", dtype=np.float32)
    y = np.where(X @ rng.normal(size=10) + 0.3 * rng.normal(size=80) > 0, 1, -1).astype(np.int8)
    Xa = with_bias(X, 1.0)
    ip, ix, d, n = csr_arrays(X)
    w, iters = _core.linear_solve_binary(ip, ix, d, n, y, loss, C, 1e-6, 5000, 1.0, 7)
    assert iters < 5000
    ref = so.minimize(primal, np.zeros(11), args=(Xa, y, C, loss), jac=True, method="L-BFGS-B",
                      options=dict(gtol=1e-10, ftol=1e-15, maxiter=10000))
    assert primal(w, Xa, y, C, loss)[0] == pytest.approx(ref.fun, rel=1e-7)
    np.testing.assert_allclose(w, ref.x, atol=1e-4)


def test_solver_default_eps_is_near_optimal_and_bias_value_counts():
    X, Y = generated(n_docs=300, seed=3)
    y = np.where(Y[:, 0].toarray().ravel() > 0, 1, -1).astype(np.int8)
    ip, ix, d, n = csr_arrays(X)
    for bias in (1.0, 3.0):
        Xa = with_bias(X, bias)
        w, _ = _core.linear_solve_binary(ip, ix, d, n, y, "squared_hinge", 1.0, 0.1, 100, bias, 0)
        ref = so.minimize(primal, np.zeros(Xa.shape[1]), args=(Xa, y, 1.0, "squared_hinge"), jac=True,
                          method="L-BFGS-B", options=dict(gtol=1e-10, maxiter=10000))
        assert primal(w, Xa, y, 1.0, "squared_hinge")[0] <= ref.fun * 1.02


def test_solver_rejects_bad_input():
    ip, ix, d, n = csr_arrays(sp.eye(3, format="csr"))
    with pytest.raises(ValueError, match="-1 or \\+1"):
        _core.linear_solve_binary(ip, ix, d, n, np.array([1, 0, 1], np.int8), "logistic", 1.0, 0.1, 10, 1.0, 0)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        _core.linear_solve_binary(ip, ix, d, n, np.ones(3, np.int8), "hinge", 1.0, 0.1, 10, 1.0, 0)


# ---- per-layer driver ------------------------------------------------------------
def train_layer(X, Y, tree, t, threads, threshold=0.1, eps=0.1, loss="squared_hinge", seed=0):
    xi, xx, xd, d = csr_arrays(X)
    if t == 0:
        pp, pd = None, None
    else:
        P = tree.node_targets(Y, t).tocsc()
        P.sort_indices()
        pp, pd = P.indptr.astype(np.int64), P.indices.astype(np.int32)
    T = tree.node_targets(Y, t + 1)
    T.sort_indices()
    out = _core.linear_train_layer(xi, xx, xd, d, pp, pd, tree.layer_indptr[t], T.indptr.astype(np.int64),
                                   T.indices.astype(np.int32), T.shape[1], loss, 1.0, eps, 1000, 1.0,
                                   threshold, seed, t, threads)
    indptr, indices, data, shape = out
    return sp.csc_matrix((data, indices, indptr), shape=shape)


@pytest.mark.parametrize("t", [0, 1])
def test_layer_equals_one_solver_per_child_on_parent_documents(t):
    X, Y = generated(n_docs=250, n_labels=16, n_features=80, seed=4)
    tree = two_level_tree(16, 4, seed=1)
    W = train_layer(X, Y, tree, t, threads=2, threshold=0.0, eps=1e-5).toarray()
    parents = tree.node_parents(t)
    docs_at = tree.node_targets(Y, t).toarray() > 0 if t else np.ones((X.shape[0], 1), bool)
    targets = tree.node_targets(Y, t + 1).toarray() > 0
    ip, ix, d, n = csr_arrays(X)
    for c in range(W.shape[1]):
        docs = np.flatnonzero(docs_at[:, parents[c]])
        Xs = csr_arrays(X[docs])
        y = np.where(targets[docs, c], 1, -1).astype(np.int8)
        w, _ = _core.linear_solve_binary(*Xs, y, "squared_hinge", 1.0, 1e-5, 1000, 1.0, 123)
        used = np.unique(X[docs].indices)
        np.testing.assert_allclose(W[used, c], w[used], atol=2e-3)
        np.testing.assert_allclose(W[-1, c], w[-1], atol=2e-3)
        unused = np.setdiff1d(np.arange(X.shape[1]), used)
        assert not W[unused, c].any()  # a feature absent from the parent's documents gets no weight


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
def test_layer_is_identical_with_one_and_two_threads(loss):
    X, Y = generated(n_docs=600, seed=5)
    tree = two_level_tree(64, 8, seed=2)
    for t in range(2):
        a = train_layer(X, Y, tree, t, threads=1, loss=loss, seed=9)
        b = train_layer(X, Y, tree, t, threads=2, loss=loss, seed=9)
        assert a.nnz > 0
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.data, b.data)
        c = train_layer(X, Y, tree, t, threads=2, loss=loss, seed=10)
        assert not np.array_equal(a.data, c.data) or not np.array_equal(a.indices, c.indices)


def test_layer_prunes_small_weights():
    X, Y = generated(n_docs=400, seed=6)
    tree = two_level_tree(64, 8)
    full = train_layer(X, Y, tree, 1, threads=1, threshold=0.0)
    pruned = train_layer(X, Y, tree, 1, threads=1, threshold=0.1)
    assert np.abs(pruned.data).min() >= 0.1
    assert pruned.nnz < full.nnz
    kept = np.abs(full.toarray()) >= 0.1
    np.testing.assert_array_equal(pruned.toarray(), np.where(kept, full.toarray(), 0))


# ---- PLTLinear -------------------------------------------------------------------
@pytest.fixture(scope="module")
def split():
    X, Y = generated(n_docs=1500, seed=7)
    return X[:1200], Y[:1200], X[1200:], Y[1200:]


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
def test_fit_learns_labels_tied_to_features(split, loss):
    Xtr, Ytr, Xte, Yte = split
    Ycopy = Ytr.copy()
    model = PLTLinear(PLTParams(loss=loss, threads=2)).fit(Xtr, Ytr, tree=two_level_tree(64, 8))
    assert (Ytr != Ycopy).nnz == 0 and np.array_equal(Ytr.indptr, Ycopy.indptr)  # fit leaves Y alone
    assert [W.shape for W in model.weights] == [(401, 8), (401, 64)]
    assert model.weights[1].nnz < 0.5 * 401 * 64  # pruning keeps the model sparse
    p1 = precision_at_1(exact_scores(model, Xte), Yte)
    # Labels are ~2 of 64 per doc: a model that learned nothing scores ~0.03.
    assert p1 > 0.85, p1


def test_bias_value_is_folded_into_the_saved_bias_row(split):
    Xtr, Ytr, Xte, _ = split
    tree = two_level_tree(64, 8)
    a = PLTLinear(PLTParams(bias=1.0, weight_threshold=0.0)).fit(Xtr, Ytr, tree=tree)
    b = PLTLinear(PLTParams(bias=2.0, weight_threshold=0.0)).fit(Xtr, Ytr, tree=tree)
    # Same features, different bias feature: the learned functions differ but both are sensible.
    sa, sb = exact_scores(a, Xte), exact_scores(b, Xte)
    assert np.mean(sa.argmax(1) == sb.argmax(1)) > 0.9


def test_save_load_round_trip(tmp_path, split):
    Xtr, Ytr, Xte, _ = split
    model = PLTLinear(PLTParams(C=0.5, seed=3)).fit(Xtr, Ytr, tree=two_level_tree(64, 8))
    model.save(tmp_path / "m")
    loaded = PLTLinear.load(tmp_path / "m")
    assert loaded.params == model.params
    assert loaded.n_features == model.n_features
    np.testing.assert_array_equal(loaded.tree.label_order, model.tree.label_order)
    for a, b in zip(model.weights, loaded.weights):
        assert a.shape == b.shape and (a != b).nnz == 0
    np.testing.assert_array_equal(exact_scores(loaded, Xte), exact_scores(model, Xte))
    a, b = model.decision_function(Xte, k=5), loaded.decision_function(Xte, k=5)
    assert a.nnz == 5 * Xte.shape[0] and (a != b).nnz == 0
    # Preparing the search at load time (benchmarks time it apart) changes no prediction.
    prepared = PLTLinear.load(tmp_path / "m").prepare_search()
    ids, scores = prepared.predict_topk(Xte, k=5)
    want_ids, want_scores = model.predict_topk(Xte, k=5)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores)


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
def test_predict_is_the_top_k_of_the_path_products(split, loss):
    Xtr, Ytr, Xte, _ = split
    model = PLTLinear(PLTParams(loss=loss)).fit(Xtr, Ytr, tree=two_level_tree(64, 8))
    exact = exact_scores(model, Xte)
    # A beam as wide as the widest level is exhaustive: the search must return the exact top 3.
    ids, scores = model.predict_topk(Xte, k=3, beam=64, threads=2)
    np.testing.assert_allclose(scores, np.take_along_axis(exact, ids.astype(np.int64), 1), rtol=1e-4)
    np.testing.assert_allclose(scores, -np.sort(-exact, axis=1)[:, :3], rtol=1e-4)
    P = model.decision_function(Xte, k=3, beam=64)
    np.testing.assert_allclose(P.toarray().max(axis=1), scores[:, 0], rtol=1e-6)


def test_fit_builds_a_tree_when_none_is_given(split):
    Xtr, Ytr, Xte, Yte = split
    model = PLTLinear(PLTParams(threads=2)).fit(Xtr, Ytr)
    assert model.tree.n_labels == 64
    ids, _ = model.predict_topk(Xte, k=1, beam=10)
    assert precision_at_1(sp.csr_matrix((np.ones(len(ids)), (np.arange(len(ids)), ids[:, 0])),
                                        shape=Yte.shape).toarray(), Yte) > 0.85


def test_load_refuses_other_models_and_damaged_weights(tmp_path, split):
    from xmc.utils.modeldir import ModelFormatError, write_manifest

    Xtr, Ytr, _, _ = split
    PLTLinear().fit(Xtr, Ytr, tree=two_level_tree(64, 8)).save(tmp_path / "m")
    (tmp_path / "m" / "weights.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelFormatError, match="weights.npz"):
        PLTLinear.load(tmp_path / "m")
    write_manifest(tmp_path / "other", "attention")
    with pytest.raises(ModelFormatError, match="expected 'plt-linear'"):
        PLTLinear.load(tmp_path / "other")


def test_input_errors_name_what_is_wrong(split):
    Xtr, Ytr, Xte, _ = split
    tree = two_level_tree(64, 8)
    with pytest.raises(ValueError, match="X has 1200 rows but Y has 1199"):
        PLTLinear().fit(Xtr, Ytr[:1199], tree=tree)
    Ybad = Ytr.copy()
    Ybad.data[5] = 2.0
    with pytest.raises(ValueError, match="Y must be binary"):
        PLTLinear().fit(Xtr, Ybad, tree=tree)
    with pytest.raises(ValueError, match="tree holds 64 labels but Y has 63"):
        PLTLinear().fit(Xtr, Ytr[:, :63], tree=tree)
    with pytest.raises(ValueError, match="loss must be one of"):
        PLTParams(loss="hinge")
    model = PLTLinear().fit(Xtr, Ytr, tree=tree)
    with pytest.raises(ValueError, match="X has 399 features but the model was trained on 400"):
        model.predict(Xte[:, :399])
    with pytest.raises(RuntimeError, match="not trained"):
        PLTLinear().predict(Xte)


def test_params_json_round_trip():
    p = PLTParams(loss="logistic", C=2.0, threads=1)
    p.tree.branching_factor = 8
    q = PLTParams.from_dict(p.to_dict())
    assert q == p and q.resolved_activation == "sigmoid"
    assert PLTParams().resolved_activation == "l3-hinge"


@pytest.mark.skipif(not (BIBTEX / "bibtex_train_xc.txt").exists(), reason="bibtex not available")
def test_bibtex_precision_at_1():
    Xtr, Ytr = read_xc(BIBTEX / "bibtex_train_xc.txt")
    Xte, Yte = read_xc(BIBTEX / "bibtex_test_xc.txt")
    Xtr, Xte = l2_normalize_rows(Xtr), l2_normalize_rows(Xte)
    model = PLTLinear(PLTParams(threads=2)).fit(Xtr, Ytr)  # PIFA tree, defaults as PECOS
    ids, _ = model.predict_topk(Xte, k=1, beam=10)
    p1 = float(np.asarray(Yte[np.arange(Xte.shape[0]), ids[:, 0]]).mean())
    print(f"bibtex P@1 {p1:.4f}")
    assert p1 >= 0.6, p1


def test_rows_are_normalised_so_document_length_does_not_change_predictions(split):
    X, Y, Xt, _ = split
    model = PLTLinear(PLTParams(threads=1)).fit(X, Y, tree=two_level_tree(Y.shape[1], 8))
    scale = sp.diags(np.random.default_rng(3).uniform(0.1, 20.0, Xt.shape[0]).astype(np.float32))
    ids, scores = model.predict_topk(Xt, k=5)
    ids_scaled, scores_scaled = model.predict_topk((scale @ Xt).tocsr(), k=5)
    np.testing.assert_array_equal(ids, ids_scaled)
    np.testing.assert_allclose(scores, scores_scaled, rtol=1e-4)
    raw = PLTLinear(PLTParams(threads=1, normalize_rows=False)).fit(X, Y, tree=model.tree)
    assert not np.array_equal(raw.predict_topk((scale @ Xt).tocsr(), k=5)[0], ids)
