// Static graph propagation on the CPU: a sparse adjacency shared by the batch times dense
// per-document node states (LDGN's GCN layers over the label co-occurrence graph).
#pragma once
#include <cstdint>

namespace xmc {
namespace ops {

// A sparse (rows x cols) matrix in CSR form, non-owning. Column ids within a row may repeat
// (their terms add up) and need not be sorted.
template <typename Real>
struct GraphCsr {
  const int64_t* indptr = nullptr;  // rows + 1
  const int64_t* indices = nullptr;
  const Real* values = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

// Throws std::invalid_argument for offsets that do not run from 0 up to nnz without decreasing,
// and std::out_of_range for a column id outside [0, cols), naming the row.
template <typename Real>
void check_graph(const GraphCsr<Real>& A);

// out (B, rows, D) = A times each H[b] (B, cols, D); out is overwritten.
template <typename Real>
void gcn_propagate(const GraphCsr<Real>& A, const Real* H, int64_t batch, int64_t dim, Real* out, int threads);

}  // namespace ops
}  // namespace xmc
