#include "core/search/weights.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "core/common/parallel.h"
#include "core/common/prefetch.h"

namespace xmc {
namespace search {

namespace {

// Row count of a chunk from which a per-feature table (4 bytes per feature)
// costs about what a hash table does (12-byte slots at load 0.7: 17 bytes per
// row) and looks up with one probe and no key compare.
bool wants_direct(int64_t n_rows, int64_t n_features) { return n_rows * 4 >= n_features && n_rows > 0; }

// Dense rows cost 4 bytes per (row, child); pairs cost 8 per nonzero plus 8 per row.
bool wants_dense(int64_t nnz, int64_t n_rows, int64_t n_children) {
  return n_rows > 0 && 2 * nnz >= n_rows * n_children;
}

// Fibonacci hashing spreads runs of feature ids; the multiply-shift range
// reduction allows any table size, so the load factor stays near 0.7 instead
// of halving at each power of two.
inline uint32_t slot_of(int32_t f, uint32_t size) {
  const uint32_t h = static_cast<uint32_t>(f) * 2654435761u;
  return static_cast<uint32_t>((static_cast<uint64_t>(h) * size) >> 32);
}

// Slots for n keys at load factor <= 0.7, so a miss ends at an empty slot soon.
uint32_t hash_size_for(int64_t n) { return static_cast<uint32_t>(n + (n * 3 + 6) / 7 + 1); }

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
      ch.index = wants_direct(ch.n_rows, n_features_) ? RowIndex::kDirect : RowIndex::kHash;
      ch.values = wants_dense(nnz, ch.n_rows, ch.n_children) ? RowValues::kDense : RowValues::kPairs;
      chunk_nnz[p] = nnz;
    }
  }

  int64_t rows = 0, slots = 0, dptrs = 0, entries = 0, dense = 0, direct = 0;
  for (int64_t p = 0; p < n_parents; ++p) {
    Chunk& ch = chunks_[p];
    max_children_ = std::max(max_children_, ch.n_children);
    if (chunk_nnz[p] >= (int64_t(1) << 32))
      throw std::invalid_argument("a parent's children hold 2^32 or more weights");
    ch.rows_begin = rows;
    rows += ch.n_rows;
    if (ch.index == RowIndex::kHash) {
      ch.hash_size = hash_size_for(ch.n_rows);
      ch.ptr_begin = slots;
      slots += ch.hash_size;
    }
    if (ch.values == RowValues::kPairs) {
      ch.values_begin = entries;
      entries += chunk_nnz[p];
      if (ch.index == RowIndex::kDirect) {
        ch.ptr_begin = dptrs;
        dptrs += n_features_ + 1;
      }
    } else {
      ch.values_begin = dense;
      dense += static_cast<int64_t>(ch.n_rows) * ch.n_children;
      if (ch.index == RowIndex::kDirect) {
        ch.direct_begin = direct;
        direct += n_features_;
      }
    }
  }
  row_ids_.resize(rows);
  slots_.assign(slots, HashSlot{-1, 0, 0});
  direct_ptr_.resize(dptrs);
  entries_.reset(new Entry[entries]);
  n_entries_ = entries;
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
        cursor.resize(n);
        uint32_t off = 0;
        for (int32_t i = 0; i < n; ++i) {
          cursor[i] = ch.values_begin + off;
          off += static_cast<uint32_t>(slot[ids[i]]);
        }
        if (ch.index == RowIndex::kHash) {
          for (int32_t i = 0; i < n; ++i)
            insert_slot(ch, ids[i], static_cast<uint32_t>(cursor[i] - ch.values_begin),
                        static_cast<uint32_t>(cursor[i] - ch.values_begin) + slot[ids[i]]);
        } else {
          // Absent features get an empty range, so lookups need no presence test.
          uint32_t* ptr = direct_ptr_.data() + ch.ptr_begin;
          int32_t i = 0;
          for (int32_t f = 0; f < D; ++f) {
            if (i < n && ids[i] == f) {
              ptr[f] = static_cast<uint32_t>(cursor[i] - ch.values_begin);
              ++i;
            } else {
              ptr[f] = i < n ? static_cast<uint32_t>(cursor[i] - ch.values_begin) : off;
            }
          }
          ptr[D] = off;
        }
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
      if (ch.values == RowValues::kDense) {
        if (ch.index == RowIndex::kDirect)
          for (int32_t i = 0; i < n; ++i) direct_[ch.direct_begin + ids[i]] = i;
        else
          for (int32_t i = 0; i < n; ++i) insert_slot(ch, ids[i], static_cast<uint32_t>(i), 0);
      }
      for (int32_t i = 0; i < n; ++i) slot[ids[i]] = 0;
    }
  }
}

void ChunkedLayer::insert_slot(const Chunk& c, int32_t feature, uint32_t begin, uint32_t end) {
  HashSlot* tab = slots_.data() + c.ptr_begin;
  uint32_t h = slot_of(feature, c.hash_size);
  while (tab[h].feature >= 0) h = h + 1 == c.hash_size ? 0 : h + 1;
  tab[h] = HashSlot{feature, begin, end};
}

LayoutStats ChunkedLayer::stats() const {
  LayoutStats s;
  s.chunks = n_parents();
  for (const Chunk& c : chunks_) {
    s.direct_chunks += c.index == RowIndex::kDirect;
    s.dense_chunks += c.values == RowValues::kDense;
    s.direct_dense_chunks += c.index == RowIndex::kDirect && c.values == RowValues::kDense;
    s.rows += c.n_rows;
  }
  s.nnz = n_entries_;
  for (float v : dense_) s.nnz += v != 0.0f;
  s.bytes = static_cast<int64_t>(chunks_.size() * sizeof(Chunk) + bias_.size() * 4 +
                                 row_ids_.size() * 4 + slots_.size() * sizeof(HashSlot) +
                                 direct_ptr_.size() * 4 +
                                 n_entries_ * sizeof(Entry) + dense_.size() * 4 +
                                 direct_.size() * 4);
  return s;
}

int64_t ChunkedLayer::lookup_cost(const Chunk& c, int64_t nnz) const {
  // A hash lookup probes about twice (misses run to an empty slot); direct once.
  return c.index == RowIndex::kDirect ? nnz : 2 * nnz;
}

inline void ChunkedLayer::add_pairs(const Chunk& c, uint32_t begin, uint32_t end, float xv,
                                    float* z) const {
  const Entry* base = entries_.get() + c.values_begin;
  for (const Entry* e = base + begin; e != base + end; ++e) z[e->child] += xv * e->value;
}

inline void ChunkedLayer::add_dense_row(const Chunk& c, int64_t r, float xv, float* z) const {
  const int32_t nc = c.n_children;
  const float* w = dense_.data() + c.values_begin + r * nc;
  for (int32_t j = 0; j < nc; ++j) z[j] += xv * w[j];
}

void ChunkedLayer::score(const Chunk& c, const int32_t* idx, const float* val, int64_t nnz,
                         const float* x_dense, float* z) const {
  if (c.n_rows == 0 || nnz == 0) return;
  const bool pairs = c.values == RowValues::kPairs;
  if (c.index == RowIndex::kHash) {
    const HashSlot* tab = slots_.data() + c.ptr_begin;
    const uint32_t size = c.hash_size;
    if (x_dense != nullptr) {
      // In feature order, like every other path, so that all paths add the
      // same terms in the same order and give bit-identical scores.
      const int32_t* rows = row_ids_.data() + c.rows_begin;
      for (int64_t r = 0; r < c.n_rows; ++r) {
        const int32_t f = rows[r];
        const float xv = x_dense[f];
        if (xv == 0.0f) continue;
        uint32_t h = slot_of(f, size);
        while (tab[h].feature != f) h = h + 1 == size ? 0 : h + 1;  // present: one of the rows
        if (pairs)
          add_pairs(c, tab[h].begin, tab[h].end, xv, z);
        else
          add_dense_row(c, tab[h].begin, xv, z);
      }
      return;
    }
    constexpr int64_t kAhead = 8;
    for (int64_t i = 0; i < nnz; ++i) {
      if (i + kAhead < nnz) prefetch(tab + slot_of(idx[i + kAhead], size));
      const int32_t f = idx[i];
      for (uint32_t h = slot_of(f, size);; h = h + 1 == size ? 0 : h + 1) {
        const HashSlot& s = tab[h];
        if (s.feature == f) {
          if (pairs)
            add_pairs(c, s.begin, s.end, val[i], z);
          else
            add_dense_row(c, s.begin, val[i], z);
          break;
        }
        if (s.feature < 0) break;
      }
    }
    return;
  }
  const int32_t* rows = row_ids_.data() + c.rows_begin;
  const int64_t n = c.n_rows;
  if (pairs) {
    const uint32_t* ptr = direct_ptr_.data() + c.ptr_begin;
    if (x_dense != nullptr) {
      for (int64_t r = 0; r < n; ++r) {
        const int32_t f = rows[r];
        if (x_dense[f] != 0.0f) add_pairs(c, ptr[f], ptr[f + 1], x_dense[f], z);
      }
      return;
    }
    // The hot loop of wide chunks: each lookup is a cache miss into a large
    // table. Two stages: offsets 2 * kAhead features ahead, then the entries
    // they point to kAhead ahead.
    constexpr int64_t kAhead = 6;
    const Entry* base = entries_.get() + c.values_begin;
    for (int64_t i = 0; i < nnz; ++i) {
      if (i + 2 * kAhead < nnz) prefetch(ptr + idx[i + 2 * kAhead]);
      if (i + kAhead < nnz) prefetch(base + ptr[idx[i + kAhead]]);
      const int32_t f = idx[i];
      add_pairs(c, ptr[f], ptr[f + 1], val[i], z);
    }
    return;
  }
  if (x_dense != nullptr) {
    for (int64_t r = 0; r < n; ++r) {
      const float xv = x_dense[rows[r]];
      if (xv != 0.0f) add_dense_row(c, r, xv, z);
    }
    return;
  }
  const int32_t* map = direct_.data() + c.direct_begin;
  for (int64_t i = 0; i < nnz; ++i) {
    const int32_t r = map[idx[i]];
    if (r >= 0) add_dense_row(c, r, val[i], z);
  }
}

}  // namespace search
}  // namespace xmc
