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
