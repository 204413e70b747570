"""Label co-occurrence graphs (xmc.data.label_graph) against hand-computed cases."""
import numpy as np
import pytest
import scipy.sparse as sp

from xmc.data.label_graph import cooccurrence_graph, normalize_adjacency, restrict

# 4 documents, 4 labels; label 3 never occurs.
Y = sp.csr_matrix(np.array([[1, 1, 0, 0],
                            [1, 0, 1, 0],
                            [1, 1, 0, 0],
                            [0, 1, 0, 0]], dtype=np.float32))


def test_conditional_probabilities():
    A = cooccurrence_graph(Y, self_loops=False).toarray()
    # P(1 | 0) = 2/3 (label 0 in docs 0,1,2; with label 1 in 0,2); P(0 | 1) = 2/3; P(0 | 2) = 1.
    expected = np.array([[0, 2 / 3, 1, 0],
                         [2 / 3, 0, 0, 0],
                         [1 / 3, 0, 0, 0],
                         [0, 0, 0, 0]])
    np.testing.assert_allclose(A, expected, rtol=1e-6)
    np.testing.assert_allclose(cooccurrence_graph(Y).toarray(), expected + np.eye(4), rtol=1e-6)


def test_threshold_and_reweighting():
    A = cooccurrence_graph(Y, threshold=0.5, self_loops=False).toarray()
    assert A[2, 0] == 0 and A[1, 0] > 0  # 1/3 is dropped, 2/3 kept
    R = cooccurrence_graph(Y, reweight=0.2).toarray()
    # Each column with neighbours gives them 0.2 in proportion and keeps 0.8; an isolated label keeps 1.
    np.testing.assert_allclose(R.sum(axis=0), [1.0, 1.0, 1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(np.diag(R), [0.8, 0.8, 0.8, 1.0], rtol=1e-6)
    np.testing.assert_allclose(R[1, 0] / R[2, 0], 2.0, rtol=1e-6)
    with pytest.raises(ValueError, match="needs self_loops"):
        cooccurrence_graph(Y, reweight=0.2, self_loops=False)


def test_normalisation_is_the_dense_formula():
    A = cooccurrence_graph(Y).toarray().astype(np.float64)
    d = A.sum(axis=1)
    expected = A / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]
    np.testing.assert_allclose(normalize_adjacency(A).toarray(), expected, rtol=1e-6)
    assert np.all(normalize_adjacency(np.zeros((2, 2))).toarray() == 0)  # no degree: no NaN


def test_a_million_labels_stay_sparse():
    rng = np.random.default_rng(0)
    n_docs, n_labels = 200_000, 1_000_000
    rows = np.repeat(np.arange(n_docs), 4)
    Y = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, rng.integers(0, n_labels, rows.size))),
                      shape=(n_docs, n_labels))
    A = normalize_adjacency(cooccurrence_graph(Y))
    assert A.shape == (n_labels, n_labels) and A.nnz <= n_labels + 12 * n_docs


def test_restrict_to_candidates():
    A = cooccurrence_graph(Y)
    sub = restrict(A, np.array([2, 0])).toarray()
    np.testing.assert_allclose(sub, A.toarray()[np.ix_([2, 0], [2, 0])])
