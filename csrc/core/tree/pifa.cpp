#include "core/tree/pifa.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/common/parallel.h"
#include "core/common/prefetch.h"

namespace xmc {

namespace {

// Y transposed (labels x docs) with the doc weights already divided by ||X_doc||.
struct LabelDocs {
  std::vector<int64_t> indptr;
  std::vector<int32_t> docs;
  std::vector<double> weight;
  std::vector<int64_t> nnz_bound;  // per label, the sum of its documents' non-zeros
};

LabelDocs transpose_labels(const CsrView& y, const CsrView& x, const std::vector<double>& inv_norm) {
  LabelDocs t;
  t.indptr.assign(y.cols + 1, 0);
  t.nnz_bound.assign(y.cols, 0);
  for (int64_t k = 0; k < y.nnz(); ++k) {
    const int32_t l = y.indices[k];
    if (l < 0 || l >= y.cols)
      throw std::out_of_range("label id " + std::to_string(l) + " outside [0, " + std::to_string(y.cols) + ")");
    ++t.indptr[l + 1];
  }
  for (int64_t l = 0; l < y.cols; ++l) t.indptr[l + 1] += t.indptr[l];
  t.docs.resize(y.nnz());
  t.weight.resize(y.nnz());
  std::vector<int64_t> fill(t.indptr.begin(), t.indptr.end() - 1);
  // Docs are visited in order, so each label's docs are sorted: a fixed sum order.
  for (int64_t i = 0; i < y.rows; ++i) {
    for (int64_t k = y.indptr[i]; k < y.indptr[i + 1]; ++k) {
      const int64_t pos = fill[y.indices[k]]++;
      t.docs[pos] = static_cast<int32_t>(i);
      t.weight[pos] = y.value(k) * inv_norm[i];
      t.nnz_bound[y.indices[k]] += x.row_nnz(i);
    }
  }
  return t;
}

}  // namespace

LargeCsr pifa_embeddings(const CsrView& x, const CsrView& y, int threads) {
  if (x.rows != y.rows)
    throw std::invalid_argument("X has " + std::to_string(x.rows) + " documents but Y has " +
                                std::to_string(y.rows));
  for (int64_t k = 0; k < x.nnz(); ++k)
    if (x.indices[k] < 0 || x.indices[k] >= x.cols)
      throw std::out_of_range("feature id " + std::to_string(x.indices[k]) + " outside [0, " +
                              std::to_string(x.cols) + ")");
  threads = resolve_threads(threads);
  const int64_t n_labels = y.cols;
  const int64_t dim = x.cols;

  std::vector<double> inv_norm(x.rows);
  for (int64_t i = 0; i < x.rows; ++i) {
    double s = 0.0;
    for (int64_t k = x.indptr[i]; k < x.indptr[i + 1]; ++k) s += static_cast<double>(x.value(k)) * x.value(k);
    inv_norm[i] = s > 0.0 ? 1.0 / std::sqrt(s) : 0.0;
  }
  const LabelDocs t = transpose_labels(y, x, inv_norm);

  // Blocks of consecutive labels, each filled by one thread straight into the output at an
  // offset that leaves room for its bound (per label, its documents' non-zeros or the feature
  // count, whichever is smaller; unwritten room costs address space only), then
  // moved down over the gaps in order: no lock, no second counting pass, and the output's pages
  // are the only ones written (at millions of labels, first writes to fresh pages cost more
  // than the copy; a buffer per block then a stitched copy wrote every value twice).
  const int64_t block_size = 1024;
  constexpr int64_t kBoundsAhead = 16, kRowAhead = 8;
  const int64_t n_blocks = (n_labels + block_size - 1) / block_size;
  std::vector<int64_t> block_start(n_blocks + 1, 0);
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t l_end = std::min(n_labels, (b + 1) * block_size);
    int64_t bound = 0;
    for (int64_t l = b * block_size; l < l_end; ++l) bound += std::min(t.nnz_bound[l], dim);  // a row has <= dim
    block_start[b + 1] = block_start[b] + bound;
  }
  LargeCsr out;
  out.rows = n_labels;
  out.cols = dim;
  out.indptr.assign(n_labels + 1, 0);
  int32_t* out_indices = out.indices.reserve(static_cast<size_t>(block_start[n_blocks]));
  float* out_data = out.data.reserve(static_cast<size_t>(block_start[n_blocks]));
  std::vector<std::vector<double>> acc(threads, std::vector<double>(dim, 0.0));
  std::vector<std::vector<uint8_t>> mark(threads, std::vector<uint8_t>(dim, 0));
  std::vector<std::vector<int32_t>> touched(threads);
  bool failed = false;

#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
  for (int64_t b = 0; b < n_blocks; ++b) {
    try {
      const int tid = thread_id();
      double* a = acc[tid].data();
      uint8_t* m = mark[tid].data();
      std::vector<int32_t>& tl = touched[tid];
      const int64_t l_end = std::min(n_labels, (b + 1) * block_size);
      const int64_t q_end = t.indptr[l_end];
      int64_t pos = block_start[b];
      for (int64_t l = b * block_size; l < l_end; ++l) {
        tl.clear();
        for (int64_t q = t.indptr[l]; q < t.indptr[l + 1]; ++q) {
          // A label's documents lie anywhere in X: past the caches (millions of documents)
          // each is a miss on its row bounds, then on its entries. The pairs are known in
          // advance, so both are requested some pairs ahead, the bounds first.
          if (q + kBoundsAhead < q_end) prefetch(x.indptr + t.docs[q + kBoundsAhead]);
          if (q + kRowAhead < q_end) {
            const int64_t start = x.indptr[t.docs[q + kRowAhead]];
            prefetch(x.indices + start);
            if (x.data) prefetch(x.data + start);
          }
          const int32_t doc = t.docs[q];
          const double w = t.weight[q];
          for (int64_t k = x.indptr[doc]; k < x.indptr[doc + 1]; ++k) {
            const int32_t j = x.indices[k];
            if (!m[j]) {
              m[j] = 1;
              tl.push_back(j);
            }
            a[j] += w * x.value(k);
          }
        }
        std::sort(tl.begin(), tl.end());
        double sq = 0.0;
        for (int32_t j : tl) sq += a[j] * a[j];
        const double scale = sq > 0.0 ? 1.0 / std::sqrt(sq) : 0.0;
        const int64_t row_start = pos;
        for (int32_t j : tl) {
          if (a[j] != 0.0) {
            out_indices[pos] = j;
            out_data[pos] = static_cast<float>(a[j] * scale);
            ++pos;
          }
          a[j] = 0.0;
          m[j] = 0;
        }
        out.indptr[l + 1] = pos - row_start;  // the row's length until the prefix sum below
      }
    } catch (...) {
#pragma omp critical
      failed = true;
    }
  }
  if (failed) throw std::bad_alloc();

  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t l_begin = b * block_size, l_end = std::min(n_labels, (b + 1) * block_size);
    const int64_t dest = out.indptr[l_begin];
    for (int64_t l = l_begin; l < l_end; ++l) out.indptr[l + 1] += out.indptr[l];
    const int64_t len = out.indptr[l_end] - dest;
    if (len == 0 || dest == block_start[b]) continue;
    // dest < block_start[b]: every earlier block filled at most its bound.
    std::memmove(out_indices + dest, out_indices + block_start[b], static_cast<size_t>(len) * sizeof(int32_t));
    std::memmove(out_data + dest, out_data + block_start[b], static_cast<size_t>(len) * sizeof(float));
  }
  out.indices.shrink(static_cast<size_t>(out.nnz()));
  out.data.shrink(static_cast<size_t>(out.nnz()));
  return out;
}

}  // namespace xmc
