// Per-parent ("chunked") layout of a PLT layer's weights for beam search.
//
// The trainer hands each layer over as CSC: one column per child node, the last
// row the bias. Beam search scores all children of one parent at a time, so a
// column layout would walk the document once per child. Here the children of a
// parent are re-laid row-major in one chunk: the chunk keeps the sorted feature
// rows that are nonzero for any of its children, and per row the children's
// weights. Scoring a chunk is then one pass over the document (or over the
// chunk's rows, whichever is shorter), as PECOS does.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace xmc {
namespace search {

// A layer as scipy stores it: CSC (n_features + 1) x n_children, bias in the last row.
struct CscView {
  int64_t rows = 0;
  int64_t cols = 0;
  const int64_t* indptr = nullptr;   // cols + 1
  const int32_t* indices = nullptr;  // row ids, sorted and unique per column
  const float* data = nullptr;
};

// How a feature id is mapped to a chunk row.
enum class RowIndex : uint8_t {
  kHash,    // open-addressing table feature -> row: one probe (one cache miss) per lookup
  kDirect,  // one slot per feature: chosen when the chunk covers many features
};

// How a row's child weights are stored.
enum class RowValues : uint8_t {
  kPairs,  // (child, weight) pairs: sparse rows
  kDense,  // n_children weights per row: dense chunks, vectorisable
};

struct Entry {
  int32_t child;  // 0-based within the chunk
  float value;
};

// A row of a kHash chunk: its entries [begin, end) (kPairs, relative to the
// chunk's values_begin) or its row number in begin (kDense). Key and range sit
// together so a hit costs one cache line. feature < 0: empty.
struct HashSlot {
  int32_t feature;
  uint32_t begin;
  uint32_t end;
};

// Where a chunk's arrays start in its layer's flat arrays. By kind:
//   kHash + kPairs:    row_ids, slots (hash_size), entries
//   kHash + kDense:    row_ids, slots (begin = row), dense
//   kDirect + kPairs:  row_ids, direct_ptr (n_features + 1, relative), entries: the
//                      feature indexes the entries directly, no presence test
//   kDirect + kDense:  row_ids, direct (feature -> row or -1), dense
struct Chunk {
  int64_t rows_begin = 0;     // into row_ids
  int64_t ptr_begin = 0;      // into slots or direct_ptr
  int64_t values_begin = 0;   // into entries or dense
  int64_t direct_begin = -1;  // into direct, kDirect + kDense only
  int32_t child_begin = 0;    // first child, a node id of the next level
  int32_t n_children = 0;
  int32_t n_rows = 0;
  uint32_t hash_size = 0;     // kHash: slots in the table
  RowIndex index = RowIndex::kHash;
  RowValues values = RowValues::kPairs;
};

struct LayoutStats {
  int64_t chunks = 0;
  int64_t direct_chunks = 0;  // the others are kHash
  int64_t dense_chunks = 0;   // the others are kPairs
  int64_t direct_dense_chunks = 0;
  int64_t rows = 0;
  int64_t nnz = 0;
  int64_t bytes = 0;
};

// One layer of classifiers, chunked by parent. Immutable after construction,
// so many threads may score against it at once.
class ChunkedLayer {
 public:
  // parent_indptr: n_parents + 1 offsets; parent p owns children
  // [parent_indptr[p], parent_indptr[p+1]), which are columns of w.
  ChunkedLayer(const CscView& w, const int64_t* parent_indptr, int64_t n_parents, int threads);

  int64_t n_features() const { return n_features_; }
  int64_t n_children() const { return static_cast<int64_t>(bias_.size()); }
  int64_t n_parents() const { return static_cast<int64_t>(chunks_.size()); }
  int32_t max_children() const { return max_children_; }
  const Chunk& chunk(int64_t parent) const { return chunks_[parent]; }
  const float* bias() const { return bias_.data(); }
  LayoutStats stats() const;

  // Adds w_c . x to z[j] for each child c = child_begin + j of chunk c; z must
  // hold the children's biases. x is sorted (idx, val) with nnz entries.
  // With x_dense (a dense copy of x, n_features floats) the chunk's rows are
  // walked against it; without, the document's features are looked up in the
  // chunk. The caller picks with lookup_cost / walk_cost.
  void score(const Chunk& c, const int32_t* idx, const float* val, int64_t nnz,
             const float* x_dense, float* z) const;

  // Estimated work of the two ways to score chunk c against a doc of nnz features.
  int64_t lookup_cost(const Chunk& c, int64_t nnz) const;
  int64_t walk_cost(const Chunk& c) const { return c.n_rows; }

 private:
  void insert_slot(const Chunk& c, int32_t feature, uint32_t begin, uint32_t end);
  void add_pairs(const Chunk& c, uint32_t begin, uint32_t end, float xv, float* z) const;
  void add_dense_row(const Chunk& c, int64_t r, float xv, float* z) const;

  int64_t n_features_ = 0;
  int32_t max_children_ = 0;
  std::vector<Chunk> chunks_;
  std::vector<float> bias_;       // per child of the layer
  std::vector<int32_t> row_ids_;  // per chunk, sorted feature ids
  std::vector<HashSlot> slots_;   // per kHash chunk
  // Offsets relative to the chunk's values_begin: 4 bytes, half the cache
  // footprint of absolute ones (a chunk never holds 2^32 weights; checked).
  std::vector<uint32_t> direct_ptr_;
  // Not a vector: resize would zero hundreds of MiB that pass 2 overwrites anyway.
  std::unique_ptr<Entry[]> entries_;
  int64_t n_entries_ = 0;
  std::vector<float> dense_;      // per kDense chunk, n_rows x n_children row-major
  std::vector<int32_t> direct_;   // per kDirect chunk, feature -> row or -1
};

}  // namespace search
}  // namespace xmc
