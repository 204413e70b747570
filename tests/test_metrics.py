"""Metrics: hand-computed cases, a slow pure-Python reference, scikit-learn cross-checks."""
import math
import time

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import metrics as skm

from xmc.metrics import (
    binarize_threshold,
    binarize_topk,
    evaluate,
    f1_scores,
    hamming_loss,
    inv_propensity,
    ndcg_at_k,
    one_error,
    precision_at_k,
    psndcg_at_k,
    psprecision_at_k,
    r_precision_at_k,
    recall_at_k,
    subset_accuracy,
    topk_from_scores,
)

L2_3 = 1 / math.log2(3)  # discount of rank 2
L2_4 = 1 / math.log2(4)  # discount of rank 3 (= 0.5)


def _csr(rows, n_labels):
    dense = np.zeros((len(rows), n_labels), dtype=np.float32)
    for i, r in enumerate(rows):
        dense[i, list(r)] = 1
    return sp.csr_matrix(dense)


# Three documents, four labels.
#   doc 0: truth {0, 2}; predicted [2, 1, 0] -> hits [1, 0, 1]
#   doc 1: truth {1};    predicted [0, 1, -1] -> hits [0, 1, 0]
#   doc 2: truth {};     predicted [3, -1, -1] -> hits [0, 0, 0]
Y_HAND = _csr([{0, 2}, {1}, set()], 4)
IDS_HAND = np.array([[2, 1, 0], [0, 1, -1], [3, -1, -1]])


def test_precision_hand_case():
    # P@1 = (1 + 0 + 0) / 3; P@2 = (1/2 + 1/2 + 0) / 3; P@3 = (2/3 + 1/3 + 0) / 3
    assert precision_at_k(Y_HAND, IDS_HAND, 1) == pytest.approx(1 / 3)
    assert precision_at_k(Y_HAND, IDS_HAND, 2) == pytest.approx(1 / 3)
    assert precision_at_k(Y_HAND, IDS_HAND, 3) == pytest.approx(1 / 3)
    # k beyond the given columns: the missing predictions are misses.
    # P@4 = (2/4 + 1/4 + 0) / 3
    assert precision_at_k(Y_HAND, IDS_HAND, 4) == pytest.approx(0.25)
    assert one_error(Y_HAND, IDS_HAND) == pytest.approx(2 / 3)


def test_ndcg_and_recall_hand_case():
    # doc 0: DCG@2 = 1, ideal (2 true) = 1 + 1/log2(3); DCG@3 = 1 + 1/2, same ideal.
    # doc 1: DCG@2 = 1/log2(3), ideal (1 true) = 1. doc 2: no true label -> 0.
    nd2 = (1 / (1 + L2_3) + L2_3 + 0) / 3
    nd3 = ((1 + L2_4) / (1 + L2_3) + L2_3 + 0) / 3
    assert ndcg_at_k(Y_HAND, IDS_HAND, 1) == pytest.approx(1 / 3)
    assert ndcg_at_k(Y_HAND, IDS_HAND, 2) == pytest.approx(nd2)
    assert ndcg_at_k(Y_HAND, IDS_HAND, 3) == pytest.approx(nd3)
    # R@1 = (1/2 + 0 + 0) / 3; R@2 = (1/2 + 1 + 0) / 3; R@3 = (1 + 1 + 0) / 3
    assert recall_at_k(Y_HAND, IDS_HAND, 1) == pytest.approx(1 / 6)
    assert recall_at_k(Y_HAND, IDS_HAND, 2) == pytest.approx(0.5)
    assert recall_at_k(Y_HAND, IDS_HAND, 3) == pytest.approx(2 / 3)


def test_r_precision_hand_case():
    # RP@k divides the hits by min(k, #true): doc 0 has 2 true labels, doc 1 one, doc 2 none (0).
    # RP@1 = (1/1 + 0 + 0) / 3; RP@2 = (1/2 + 1/1 + 0) / 3; RP@3 = (2/2 + 1/1 + 0) / 3
    assert r_precision_at_k(Y_HAND, IDS_HAND, 1) == pytest.approx(1 / 3)
    assert r_precision_at_k(Y_HAND, IDS_HAND, 2) == pytest.approx(0.5)
    assert r_precision_at_k(Y_HAND, IDS_HAND, 3) == pytest.approx(2 / 3)
    # with at least k true labels everywhere it is P@k
    Y = _csr([{0, 1, 2}, {1, 2, 3}], 4)
    ids = np.array([[0, 3, 2], [1, 2, 0]])
    assert r_precision_at_k(Y, ids, 3) == pytest.approx(precision_at_k(Y, ids, 3))


def test_propensity_scored_hand_case():
    w = np.array([1.0, 4.0, 2.0, 8.0])  # inverse propensities
    # Hit weights: doc 0 [w2=2, 0, w0=1], doc 1 [0, w1=4, 0], doc 2 none.
    # Best achievable: doc 0 true {0,2} ranked by weight [2, 1, 0]; doc 1 [4, 0, 0].
    # PSP@1 = (2 + 0) / (2 + 4); PSP@2 = (2 + 4) / (2+1 + 4); PSP@3 = (2+1 + 4) / (3 + 4)
    assert psprecision_at_k(Y_HAND, IDS_HAND, w, 1) == pytest.approx(2 / 6)
    assert psprecision_at_k(Y_HAND, IDS_HAND, w, 2) == pytest.approx(6 / 7)
    assert psprecision_at_k(Y_HAND, IDS_HAND, w, 3) == pytest.approx(1.0)
    # PSnDCG@2: per doc DCG divided by the count-based ideal, summed, then the ratio.
    # got  = 2/(1 + d2) + 4*d2/1 ; best = (2 + 1*d2)/(1 + d2) + 4/1   (d2 = 1/log2 3)
    got = 2 / (1 + L2_3) + 4 * L2_3
    best = (2 + L2_3) / (1 + L2_3) + 4
    assert psndcg_at_k(Y_HAND, IDS_HAND, w, 2) == pytest.approx(got / best)
    r = evaluate(Y_HAND, IDS_HAND, ks=(1, 2), inv_prop=w)
    assert list(r) == ["P@1", "P@2", "nDCG@1", "nDCG@2", "PSP@1", "PSP@2", "PSnDCG@1", "PSnDCG@2"]
    assert r["PSP@2"] == pytest.approx(6 / 7)
    assert r["PSnDCG@2"] == pytest.approx(got / best)


def test_inv_propensity_formula():
    # 4 documents; label counts [4, 1, 0].
    Y = _csr([{0, 1}, {0}, {0}, {0}], 3)
    A, B = 0.55, 1.5
    C = (math.log(4) - 1) * (B + 1) ** A
    expected = [1 + C * (n + B) ** -A for n in (4, 1, 0)]
    np.testing.assert_allclose(inv_propensity(Y, A, B), expected, rtol=1e-12)
    # Rarer labels weigh more.
    w = inv_propensity(Y)
    assert w[0] < w[1] < w[2]


# ---------- slow pure-Python reference on random data ---------------------------------


def _reference(Y, ids, k, w):
    """Per-document loops written straight from the definitions."""
    truth = [set(Y.indices[Y.indptr[i]:Y.indptr[i + 1]].tolist()) for i in range(Y.shape[0])]
    p = nd = rc = 0.0
    ps_got = ps_best = psn_got = psn_best = 0.0
    for t, row in zip(truth, ids):
        top = [int(x) for x in row[:k]] + [-1] * max(0, k - len(row))
        hits = [1.0 if (x >= 0 and x in t) else 0.0 for x in top]
        dcg = sum(h / math.log2(j + 2) for j, h in enumerate(hits))
        ideal = sum(1 / math.log2(j + 2) for j in range(min(k, len(t))))
        p += sum(hits) / k
        rc += sum(hits) / max(1, len(t))
        nd += dcg / ideal if ideal > 0 else 0.0
        hw = [w[x] * h for x, h in zip(top, hits)]
        bw = sorted((w[x] for x in t), reverse=True)[:k]
        ps_got += sum(hw)
        ps_best += sum(bw)
        if ideal > 0:
            psn_got += sum(v / math.log2(j + 2) for j, v in enumerate(hw)) / ideal
            psn_best += sum(v / math.log2(j + 2) for j, v in enumerate(bw)) / ideal
    n = len(truth)
    return {
        f"P@{k}": p / n,
        f"nDCG@{k}": nd / n,
        f"R@{k}": rc / n,
        f"PSP@{k}": ps_got / ps_best,
        f"PSnDCG@{k}": psn_got / psn_best,
    }


def _random_case(seed, n=300, L=40, k=6):
    rng = np.random.default_rng(seed)
    Y = sp.random(n, L, density=0.08, format="csr", random_state=rng)
    Y.data[:] = 1
    ids = np.full((n, k), -1)
    for i in range(n):
        m = rng.integers(0, k + 1)
        ids[i, :m] = rng.choice(L, m, replace=False)
    return Y, ids


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_python_reference(seed):
    Y, ids = _random_case(seed)
    w = inv_propensity(Y)
    for k in (1, 3, 5, 8):
        ref = _reference(Y, ids, k, w)
        got = evaluate(Y, ids, ks=(k,), inv_prop=w)
        for key in (f"P@{k}", f"nDCG@{k}", f"PSP@{k}", f"PSnDCG@{k}"):
            assert got[key] == pytest.approx(ref[key], rel=1e-10), key
        assert recall_at_k(Y, ids, k) == pytest.approx(ref[f"R@{k}"], rel=1e-10)


def _py_topk(S, k):
    out = np.full((S.shape[0], k), -1)
    for i in range(S.shape[0]):
        items = list(zip(S.indices[S.indptr[i]:S.indptr[i + 1]], S.data[S.indptr[i]:S.indptr[i + 1]]))
        items.sort(key=lambda t: (-t[1], t[0]))  # best score first, ties: smaller id
        for j, (c, _) in enumerate(items[:k]):
            out[i, j] = c
    return out


def test_topk_from_scores_matches_reference_with_ties_and_padding():
    rng = np.random.default_rng(5)
    S = sp.random(200, 30, density=0.2, format="csr", random_state=rng)
    S.data = np.round(S.data * 4).astype(np.float32) / 4 - 0.5  # many ties, some negative
    for k in (1, 3, 10):
        np.testing.assert_array_equal(topk_from_scores(S, k), _py_topk(S, k))
    # A stored 0 is a prediction; an unstored entry is not.
    S2 = sp.csr_matrix((np.array([0.0, -1.0], dtype=np.float32), np.array([4, 1]), np.array([0, 2])), shape=(1, 6))
    np.testing.assert_array_equal(topk_from_scores(S2, 3), [[4, 1, -1]])
    # Dense scores: same order and tie rule as a full stable sort.
    D = np.round(rng.random((50, 40)) * 5) / 5
    for k in (1, 7, 40, 45):
        exp = np.argsort(-D, axis=1, kind="stable")[:, :k]
        got = topk_from_scores(D, k)
        np.testing.assert_array_equal(got[:, : exp.shape[1]], exp)
        assert np.all(got[:, exp.shape[1]:] == -1)


def test_topk_nan_ranks_last():
    S = sp.csr_matrix(np.array([[np.nan, 0.5, -np.inf, 2.0]], dtype=np.float32))
    np.testing.assert_array_equal(topk_from_scores(S, 4), [[3, 1, 2, 0]])


def test_prediction_forms_agree():
    Y, _ = _random_case(7, n=100, L=25)
    rng = np.random.default_rng(7)
    S = sp.random(100, 25, density=0.3, format="csr", random_state=rng)
    ids = topk_from_scores(S, 5)
    ref = evaluate(Y, ids)
    assert evaluate(Y, S) == ref
    # (ids, scores) in shuffled column order is re-ranked by score.
    scores = np.where(ids >= 0, np.take_along_axis(S.toarray(), np.maximum(ids, 0), axis=1), 0)
    perm = rng.permutation(5)
    assert evaluate(Y, (ids[:, perm], scores[:, perm])) == ref
    # Dense score matrix whose unstored entries are far below every stored one.
    dense = np.where(S.toarray() > 0, S.toarray(), -1e9 + rng.random((100, 25)))
    assert evaluate(Y, dense, ks=(1,))["P@1"] == ref["P@1"]


# ---------- set metrics against scikit-learn -------------------------------------------


def _random_binary(seed, n=120, L=15, density=0.15):
    rng = np.random.default_rng(seed)
    T = (rng.random((n, L)) < density).astype(np.float32)
    P = (rng.random((n, L)) < density).astype(np.float32)
    T[:, 0] = 0  # a label never true...
    P[:, 0] = 0  # ...nor predicted: undefined F1, exercises zero_division
    return T, P


@pytest.mark.parametrize("seed", [0, 1])
def test_f1_hamming_subset_match_sklearn(seed):
    T, P = _random_binary(seed)
    P[:10] = T[:10]  # some exact matches for subset accuracy
    Ts, Ps = sp.csr_matrix(T), sp.csr_matrix(P)
    for zd in (0.0, 1.0):
        micro, macro = f1_scores(Ts, Ps, zero_division=zd)
        assert micro == pytest.approx(skm.f1_score(T, P, average="micro", zero_division=zd))
        assert macro == pytest.approx(skm.f1_score(T, P, average="macro", zero_division=zd))
    assert hamming_loss(Ts, Ps) == pytest.approx(skm.hamming_loss(T, P))
    assert subset_accuracy(Ts, Ps) == pytest.approx(skm.accuracy_score(T, P))
    assert subset_accuracy(Ts, Ps) >= 10 / T.shape[0]


def test_ndcg_matches_sklearn_on_dense_scores():
    rng = np.random.default_rng(3)
    T = (rng.random((200, 30)) < 0.1).astype(np.float32)
    scores = rng.random((200, 30))  # continuous: no ties, where sklearn would average
    for k in (1, 3, 5, 10):
        assert ndcg_at_k(sp.csr_matrix(T), scores, k) == pytest.approx(skm.ndcg_score(T, scores, k=k))


def test_binarize_helpers():
    B = binarize_topk(IDS_HAND, 4)
    np.testing.assert_array_equal(B.toarray(), [[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]])
    assert B.dtype == np.float32 and B.has_sorted_indices
    S = sp.csr_matrix(np.array([[0.5, 0, 0.9, 0.1], [0.2, 0.3, 0, 0]], dtype=np.float32))
    np.testing.assert_array_equal(binarize_threshold(S, 0.3).toarray(), [[1, 0, 1, 0], [0, 1, 0, 0]])
    # Unstored entries never pass, even with a threshold <= 0.
    assert binarize_threshold(S, -1.0).nnz == S.nnz
    np.testing.assert_array_equal(binarize_threshold(S.toarray(), 0.0).toarray(), np.ones((2, 4)))
    # Round trip: F1 of the binarized top-k equals a hand count.
    # TP = 3 (doc 0: labels 0, 2; doc 1: label 1), predicted = 6, true = 3 -> micro 2*3/9
    micro, _ = f1_scores(Y_HAND, B)
    assert micro == pytest.approx(6 / 9)


# ---------- errors and input handling --------------------------------------------------


def test_shape_mismatch_errors_name_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 5\)"):
        evaluate(Y_HAND, sp.csr_matrix((3, 5)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*3 documents"):
        precision_at_k(Y_HAND, IDS_HAND[:2], 1)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 5\)"):
        f1_scores(Y_HAND, sp.csr_matrix((3, 5)))
    with pytest.raises(ValueError, match=r"inv_prop has 3 entries.*\(3, 4\)"):
        psprecision_at_k(Y_HAND, IDS_HAND, np.ones(3), 1)
    with pytest.raises(ValueError, match=r"ids have shape \(3, 3\) but scores have shape \(3, 2\)"):
        evaluate(Y_HAND, (IDS_HAND, np.ones((3, 2))))


def test_bad_ids_are_reported():
    with pytest.raises(ValueError, match="repeat a label in row 1"):
        evaluate(Y_HAND, np.array([[0, 1], [2, 2], [1, 0]]))
    with pytest.raises(ValueError, match=r"\[0, 4\).*found 4"):
        evaluate(Y_HAND, np.array([[0], [4], [1]]))
    with pytest.raises(ValueError, match="found -2"):
        evaluate(Y_HAND, np.array([[0], [-2], [1]]))
    with pytest.raises(ValueError, match="integers"):
        evaluate(Y_HAND, np.ones((3, 2), dtype=np.float32)[:, :1].astype(object))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        precision_at_k(Y_HAND, IDS_HAND, 0)


def test_truth_is_binarised_and_not_mutated():
    # Non-canonical truth: duplicate entries and a stored zero.
    Y = sp.csr_matrix(
        (np.array([2.0, 3.0, 0.0, 1.0]), np.array([2, 2, 1, 0]), np.array([0, 3, 4])), shape=(2, 3)
    )
    before = (Y.data.copy(), Y.indices.copy())
    ids = np.array([[2, 1], [0, -1]])
    # doc 0 truth {2}, doc 1 truth {0}: P@2 = (1/2 + 1/2) / 2
    assert precision_at_k(Y, ids, 2) == pytest.approx(0.5)
    np.testing.assert_array_equal(Y.data, before[0])
    np.testing.assert_array_equal(Y.indices, before[1])


def test_one_million_docs_top5_is_fast():
    rng = np.random.default_rng(0)
    n, L = 1_000_000, 50_000
    counts = rng.integers(1, 6, n)
    indptr = np.concatenate(([0], np.cumsum(counts)))
    # Distinct sorted labels per row: consecutive ids from a random start.
    start = np.repeat(rng.integers(0, L - 6, n), counts)
    offs = np.arange(indptr[-1]) - np.repeat(indptr[:-1], counts)
    Y = sp.csr_matrix((np.ones(indptr[-1], np.float32), (start + offs).astype(np.int32), indptr), shape=(n, L))
    ids = (rng.integers(0, L - 6, n)[:, None] + np.arange(5)[None, :]).astype(np.int64)
    w = inv_propensity(Y)
    t0 = time.perf_counter()
    r = evaluate(Y, ids, ks=(1, 3, 5), inv_prop=w)
    elapsed = time.perf_counter() - t0
    assert 0 < r["P@1"] < 0.01  # random guesses
    assert elapsed < 20, f"evaluate took {elapsed:.1f} s for 1M docs x top-5"


def test_topk_same_result_for_any_thread_count():
    numba = pytest.importorskip("numba")
    rng = np.random.default_rng(11)
    S = sp.random(3000, 200, density=0.05, format="csr", random_state=rng)
    S.data = np.round(S.data * 3).astype(np.float32)  # ties
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = topk_from_scores(S, 7)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = topk_from_scores(S, 7)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)
    np.testing.assert_array_equal(one, _py_topk(S, 7))
