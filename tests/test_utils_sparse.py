import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from xmc.utils.sparse import csr_arrays, l2_normalize_rows


def test_l2_normalize_rows_matches_sklearn_with_empty_rows_anywhere():
    X = sp.random(30, 12, density=0.2, format="csr", random_state=1, dtype=np.float32)
    X = sp.vstack([sp.csr_matrix((2, 12), dtype=np.float32), X, sp.csr_matrix((3, 12), dtype=np.float32)]).tocsr()
    got = l2_normalize_rows(X)
    np.testing.assert_allclose(got.toarray(), normalize(X).toarray(), rtol=1e-6)
    assert got.getnnz(axis=1)[-1] == 0


def test_csr_arrays_gives_the_core_layout():
    X = sp.csr_matrix(np.array([[0, 2.0, 1.0], [3.0, 0, 0]]))
    indptr, indices, data, n_cols = csr_arrays(X)
    assert indptr.dtype == np.int64 and indices.dtype == np.int32 and data.dtype == np.float32
    assert n_cols == 3 and indptr.tolist() == [0, 2, 3]


def test_l2_normalize_rows_block_by_block_matches_a_float64_reference():
    """Blocks of a few values, rows of very different sizes and magnitudes, empty rows between."""
    rng = np.random.default_rng(3)
    X = sp.random(40, 25, density=0.3, format="csr", random_state=4, dtype=np.float32)
    X.data *= np.float32(10.0) ** rng.integers(-6, 6, size=X.nnz)
    X = sp.vstack([X[:10], sp.csr_matrix((4, 25), dtype=np.float32), X[10:]]).tocsr()
    dense = X.toarray().astype(np.float64)
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    expected = np.divide(dense, norms, out=np.zeros_like(dense), where=norms > 0)
    for chunk in (1, 7, 1 << 22):
        got = l2_normalize_rows(X, chunk_nnz=chunk)
        np.testing.assert_allclose(got.toarray(), expected, rtol=1e-6, atol=1e-30)
    assert X.data.max() > 1.5  # the input was not scaled in place
