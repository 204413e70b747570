// Non-owning views of the sparse matrices every core routine takes.
// Layout is fixed so Python can hand scipy arrays over without copies:
// int64 row pointers, int32 column ids, float32 values, columns sorted per row.
#pragma once
#include <cstdint>
#include <vector>

#include "core/common/large_buffer.h"

namespace xmc {

struct CsrView {
  int64_t rows = 0;
  int64_t cols = 0;
  const int64_t* indptr = nullptr;   // rows + 1
  const int32_t* indices = nullptr;  // indptr[rows]
  const float* data = nullptr;       // indptr[rows]; nullptr means all ones

  int64_t nnz() const { return indptr[rows]; }
  int64_t row_nnz(int64_t r) const { return indptr[r + 1] - indptr[r]; }
  float value(int64_t k) const { return data ? data[k] : 1.0f; }
};

// Owning compressed sparse arrays, the output format of core routines; moved into numpy
// arrays by the bindings. indptr runs over rows for CSR; CscMatrix reuses the same arrays
// with indptr running over columns.
struct CsrMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<int64_t> indptr;
  std::vector<int32_t> indices;
  std::vector<float> data;

  CsrView view() const { return {rows, cols, indptr.data(), indices.data(), data.data()}; }
};

// CsrMatrix for outputs of gigabytes that are written in parallel: indices and data are never
// zero-filled (see LargeBuffer), and a routine that takes one by rvalue may reuse its storage.
struct LargeCsr {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<int64_t> indptr;
  LargeBuffer<int32_t> indices;  // indptr[rows] written
  LargeBuffer<float> data;

  int64_t nnz() const { return indptr.empty() ? 0 : indptr.back(); }
  CsrView view() const { return {rows, cols, indptr.data(), indices.data(), data.data()}; }
};

}  // namespace xmc
