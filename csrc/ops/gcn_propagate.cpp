#include "ops/gcn_propagate.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "core/common/parallel.h"
#include "ops/gcn_math.h"

namespace xmc {
namespace ops {

template <typename Real>
void check_graph(const GraphCsr<Real>& A) {
  if (A.rows < 0 || A.cols < 0) throw std::invalid_argument("gcn_propagate: negative graph size");
  if (A.indptr[0] != 0) throw std::invalid_argument("gcn_propagate: indptr must start at 0");
  for (int64_t i = 0; i < A.rows; ++i) {
    if (A.indptr[i + 1] < A.indptr[i])
      throw std::invalid_argument("gcn_propagate: indptr decreases at row " + std::to_string(i));
    for (int64_t e = A.indptr[i]; e < A.indptr[i + 1]; ++e)
      if (A.indices[e] < 0 || A.indices[e] >= A.cols)
        throw std::out_of_range("gcn_propagate: row " + std::to_string(i) + " has column " +
                                std::to_string(A.indices[e]) + " outside [0, " + std::to_string(A.cols) + ")");
  }
}

template <typename Real>
void gcn_propagate(const GraphCsr<Real>& A, const Real* H, int64_t batch, int64_t dim, Real* out, int threads) {
  check_graph(A);
  const int n_threads = resolve_threads(threads);
  const int64_t work = batch * A.rows;
  // One output row per iteration: its D values stay in cache while the row's neighbours stream
  // past, and no two iterations write the same memory.
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 64)
  for (int64_t w = 0; w < work; ++w) {
    const int64_t b = w / A.rows, i = w % A.rows;
    Real* o = out + w * dim;
    std::fill(o, o + dim, Real(0));
    for (int64_t e = A.indptr[i]; e < A.indptr[i + 1]; ++e) {
      const Real a = A.values[e];
      const Real* h = H + (b * A.cols + A.indices[e]) * dim;
#if defined(_OPENMP)
#pragma omp simd
#endif
      for (int64_t d = 0; d < dim; ++d) o[d] = gcn_accumulate(o[d], a, h[d]);
    }
  }
}

#define XMC_INSTANTIATE(Real)                                    \
  template void check_graph<Real>(const GraphCsr<Real>&);        \
  template void gcn_propagate<Real>(const GraphCsr<Real>&, const Real*, int64_t, int64_t, Real*, int);
XMC_INSTANTIATE(float)
XMC_INSTANTIATE(double)
#undef XMC_INSTANTIATE

}  // namespace ops
}  // namespace xmc
