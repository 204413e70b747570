"""numba kernels of the metrics; imported lazily so ``import xmc.metrics`` stays cheap."""
import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def _better(a, b):
    # NaN ranks below everything, -inf included; among equals the earlier wins.
    if np.isnan(b):
        return not np.isnan(a)
    if np.isnan(a):
        return False
    return a > b


@numba.njit(cache=True, parallel=True)
def segment_topk_kernel(indptr, values, k, out):  # pragma: no cover - compiled
    """Fill out[i] with positions of the k best values of segment i (out pre-set to -1)."""
    n = indptr.size - 1
    for i in numba.prange(n):
        filled = 0
        for p in range(indptr[i], indptr[i + 1]):
            v = values[p]
            if filled == k and not _better(v, values[out[i, k - 1]]):
                continue
            # Insertion into the short sorted buffer; the strict comparison
            # keeps the earlier of two equal values in front.
            j = filled if filled < k else k - 1
            while j > 0 and _better(v, values[out[i, j - 1]]):
                out[i, j] = out[i, j - 1]
                j -= 1
            out[i, j] = p
            if filled < k:
                filled += 1
