#include "core/search/weights.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "core/common/parallel.h"

namespace xmc {
namespace search {

namespace {

// Row count of a chunk at which a feature -> row table (4 bytes per feature)
// costs at most what the sorted row list with its offsets costs (12 bytes per row) x 1.33.
bool wants_direct(int64_t n_rows, int64_t n_features) { return n_rows * 4 >= n_features && n_rows > 0; }

// Dense rows cost 4 bytes per (row, child); pairs cost 8 per nonzero plus 8 per row.
bool wants_dense(int64_t nnz, int64_t n_rows, int64_t n_children) {
  return n_rows > 0 && 2 * nnz >= n_rows * n_children;
}

int bit_width(uint64_t v) {
  int b = 0;
  while (v) {
    ++b;
    v >>= 1;
  }
  return b;
}

void check_layer(const CscView& w, const int64_t* parent_indptr, int64_t n_parents) {
  if (w.rows < 1) throw std::invalid_argument("layer weights need at least the bias row");
  if (n_parents < 1 || parent_indptr[0] != 0)
    throw std::invalid_argument("parent offsets must start at 0");
  for (int64_t p = 0; p < n_parents; ++p)
    if (parent_indptr[p + 1] <= parent_indptr[p])
      throw std::invalid_argument("every parent must have at least one child");
  if (parent_indptr[n_parents] != w.cols)
    throw std::invalid_argument("layer weights have " + std::to_string(w.cols) +
                                " columns but the tree level has " +
                                std::to_string(parent_indptr[n_parents]) + " nodes");
  if (w.indptr[0] != 0) throw std::invalid_argument("CSC indptr must start at 0");
  for (int64_t c = 0; c < w.cols; ++c)
    if (w.indptr[c + 1] < w.indptr[c]) throw std::invalid_argument("CSC indptr must not decrease");
  const int64_t nnz = w.indptr[w.cols];
  for (int64_t k = 0; k < nnz; ++k)
    if (w.indices[k] < 0 || w.indices[k] >= w.rows)
      throw std::invalid_argument("CSC row index " + std::to_string(w.indices[k]) +
                                  " out of range [0, " + std::to_string(w.rows) + ")");
}

}  // namespace

ChunkedLayer::ChunkedLayer(const CscView& w, const int64_t* parent_indptr, int64_t n_parents,
                           int threads) {
  check_layer(w, parent_indptr, n_parents);
  n_features_ = w.rows - 1;
  const int32_t D = static_cast<int32_t>(n_features_);
  bias_.assign(w.cols, 0.0f);
  chunks_.resize(n_parents);
  std::vector<int64_t> chunk_nnz(n_parents, 0);
  const int nt = resolve_threads(threads);

  // Pass 1: rows and nonzeros per chunk, to size the flat arrays.
#pragma omp parallel num_threads(nt)
  {
    std::vector<int32_t> count(n_features_, 0);
    std::vector<int32_t> touched;
#pragma omp for schedule(dynamic, 16)
    for (int64_t p = 0; p < n_parents; ++p) {
      touched.clear();
      int64_t nnz = 0;
      for (int64_t c = parent_indptr[p]; c < parent_indptr[p + 1]; ++c)
        for (int64_t k = w.indptr[c]; k < w.indptr[c + 1]; ++k) {
          const int32_t r = w.indices[k];
          if (r == D) continue;
          if (count[r]++ == 0) touched.push_back(r);
          ++nnz;
        }
      for (int32_t r : touched) count[r] = 0;
      Chunk& ch = chunks_[p];
      ch.child_begin = static_cast<int32_t>(parent_indptr[p]);
      ch.n_children = static_cast<int32_t>(parent_indptr[p + 1] - parent_indptr[p]);
      ch.n_rows = static_cast<int32_t>(touched.size());
      ch.index = wants_direct(ch.n_rows, n_features_) ? RowIndex::kDirect : RowIndex::kSorted;
      ch.values = wants_dense(nnz, ch.n_rows, ch.n_children) ? RowValues::kDense : RowValues::kPairs;
      chunk_nnz[p] = nnz;
    }
  }

  int64_t rows = 0, ptrs = 0, entries = 0, dense = 0, direct = 0;
  for (int64_t p = 0; p < n_parents; ++p) {
    Chunk& ch = chunks_[p];
    max_children_ = std::max(max_children_, ch.n_children);
    ch.rows_begin = rows;
    rows += ch.n_rows;
    if (ch.values == RowValues::kPairs) {
      ch.ptr_begin = ptrs;
      ptrs += ch.n_rows + 1;
      ch.values_begin = entries;
      entries += chunk_nnz[p];
    } else {
      ch.values_begin = dense;
      dense += static_cast<int64_t>(ch.n_rows) * ch.n_children;
    }
    if (ch.index == RowIndex::kDirect) {
      ch.direct_begin = direct;
      direct += n_features_;
    }
  }
  row_ids_.resize(rows);
  row_ptr_.resize(ptrs);
  entries_.resize(entries);
  dense_.assign(dense, 0.0f);
  direct_.assign(direct, -1);

  // Pass 2: fill. `slot` maps a feature to its chunk row while a chunk is built.
#pragma omp parallel num_threads(nt)
  {
    std::vector<int32_t> slot(n_features_, 0);
    std::vector<int64_t> cursor;
#pragma omp for schedule(dynamic, 16)
    for (int64_t p = 0; p < n_parents; ++p) {
      const Chunk& ch = chunks_[p];
      int32_t* ids = row_ids_.data() + ch.rows_begin;
      int32_t n = 0;
      for (int64_t c = parent_indptr[p]; c < parent_indptr[p + 1]; ++c)
        for (int64_t k = w.indptr[c]; k < w.indptr[c + 1]; ++k) {
          const int32_t r = w.indices[k];
          if (r == D) {
            bias_[c] += w.data[k];
            continue;
          }
          if (slot[r]++ == 0) ids[n++] = r;
        }
      std::sort(ids, ids + n);
      if (ch.values == RowValues::kPairs) {
        int64_t* ptr = row_ptr_.data() + ch.ptr_begin;
        cursor.resize(n);
        int64_t off = ch.values_begin;
        for (int32_t i = 0; i < n; ++i) {
          ptr[i] = off;
          cursor[i] = off;
          off += slot[ids[i]];
        }
        ptr[n] = off;
      }
      for (int32_t i = 0; i < n; ++i) slot[ids[i]] = i;
      // Children are visited in order, so each row's pairs come out sorted by child.
      for (int64_t c = parent_indptr[p]; c < parent_indptr[p + 1]; ++c) {
        const int32_t j = static_cast<int32_t>(c - parent_indptr[p]);
        for (int64_t k = w.indptr[c]; k < w.indptr[c + 1]; ++k) {
          const int32_t r = w.indices[k];
          if (r == D) continue;
          const int32_t i = slot[r];
          if (ch.values == RowValues::kPairs)
            entries_[cursor[i]++] = Entry{j, w.data[k]};
          else
            dense_[ch.values_begin + static_cast<int64_t>(i) * ch.n_children + j] += w.data[k];
        }
      }
      if (ch.index == RowIndex::kDirect)
        for (int32_t i = 0; i < n; ++i) direct_[ch.direct_begin + ids[i]] = i;
      for (int32_t i = 0; i < n; ++i) slot[ids[i]] = 0;
    }
  }
}

LayoutStats ChunkedLayer::stats() const {
  LayoutStats s;
  s.chunks = n_parents();
  for (const Chunk& c : chunks_) {
    s.direct_chunks += c.index == RowIndex::kDirect;
    s.dense_chunks += c.values == RowValues::kDense;
    s.rows += c.n_rows;
  }
  s.nnz = static_cast<int64_t>(entries_.size());
  for (float v : dense_) s.nnz += v != 0.0f;
  s.bytes = static_cast<int64_t>(chunks_.size() * sizeof(Chunk) + bias_.size() * 4 +
                                 row_ids_.size() * 4 + row_ptr_.size() * 8 +
                                 entries_.size() * sizeof(Entry) + dense_.size() * 4 +
                                 direct_.size() * 4);
  return s;
}

bool ChunkedLayer::prefers_dense_doc(const Chunk& c, int64_t nnz) const {
  if (nnz == 0) return false;
  if (c.index == RowIndex::kDirect) return c.n_rows < nnz;
  // A galloping search costs about log2(gap) probes per document feature.
  const int64_t per_feature = 2 + bit_width(static_cast<uint64_t>(c.n_rows / nnz));
  return c.n_rows < nnz * per_feature;
}

inline void ChunkedLayer::accumulate_row(const Chunk& c, int64_t r, float xv, float* z) const {
  if (c.values == RowValues::kPairs) {
    const int64_t* ptr = row_ptr_.data() + c.ptr_begin;
    const Entry* e = entries_.data() + ptr[r];
    const Entry* end = entries_.data() + ptr[r + 1];
    for (; e != end; ++e) z[e->child] += xv * e->value;
  } else {
    const int32_t nc = c.n_children;
    const float* w = dense_.data() + c.values_begin + r * nc;
    for (int32_t j = 0; j < nc; ++j) z[j] += xv * w[j];
  }
}

void ChunkedLayer::score(const Chunk& c, const int32_t* idx, const float* val, int64_t nnz,
                         const float* x_dense, float* z) const {
  if (c.n_rows == 0 || nnz == 0) return;
  const int32_t* rows = row_ids_.data() + c.rows_begin;
  const int64_t n = c.n_rows;
  if (x_dense != nullptr && prefers_dense_doc(c, nnz)) {
    for (int64_t r = 0; r < n; ++r) {
      const float xv = x_dense[rows[r]];
      if (xv != 0.0f) accumulate_row(c, r, xv, z);
    }
    return;
  }
  if (c.index == RowIndex::kDirect) {
    const int32_t* map = direct_.data() + c.direct_begin;
    for (int64_t i = 0; i < nnz; ++i) {
      const int32_t r = map[idx[i]];
      if (r >= 0) accumulate_row(c, r, val[i], z);
    }
    return;
  }
  // Both lists are sorted: gallop through the chunk's rows from the last match,
  // which costs log(gap) per feature, so short documents skip long chunks fast
  // and long documents degrade to a linear merge.
  int64_t pos = 0;
  for (int64_t i = 0; i < nnz; ++i) {
    const int32_t f = idx[i];
    if (rows[pos] < f) {
      int64_t lo = pos, step = 1, hi = pos + 1;
      while (hi < n && rows[hi] < f) {
        lo = hi;
        step <<= 1;
        hi = lo + step;
      }
      if (hi > n) hi = n;
      pos = std::lower_bound(rows + lo + 1, rows + hi, f) - rows;
      if (pos >= n) return;
    }
    if (rows[pos] == f) {
      accumulate_row(c, pos, val[i], z);
      if (++pos >= n) return;
    }
  }
}

}  // namespace search
}  // namespace xmc
