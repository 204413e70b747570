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
  kSorted,  // sorted row ids, searched (galloping) or walked against a dense doc
  kDirect,  // one slot per feature: O(1) lookup, chosen when the chunk covers many features
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

struct Chunk {
  int64_t rows_begin = 0;     // into row_ids
  int64_t ptr_begin = 0;      // into row_ptr (n_rows + 1 slots), kPairs only
  int64_t values_begin = 0;   // into dense, kDense only
  int64_t direct_begin = -1;  // into direct (n_features slots), kDirect only
  int32_t child_begin = 0;    // first child, a node id of the next level
  int32_t n_children = 0;
  int32_t n_rows = 0;
  RowIndex index = RowIndex::kSorted;
  RowValues values = RowValues::kPairs;
};

struct LayoutStats {
  int64_t chunks = 0;
  int64_t direct_chunks = 0;
  int64_t dense_chunks = 0;
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
  // x_dense is a dense copy of x (n_features floats) or nullptr; when given and
  // prefers_dense_doc() says so, the chunk's rows are walked against it instead
  // of looking the document's features up in the chunk.
  void score(const Chunk& c, const int32_t* idx, const float* val, int64_t nnz,
             const float* x_dense, float* z) const;

  // Whether scoring chunk c against a doc of nnz features is cheaper walking
  // the chunk's rows against a dense copy of the doc than looking features up.
  bool prefers_dense_doc(const Chunk& c, int64_t nnz) const;

 private:
  void accumulate_row(const Chunk& c, int64_t r, float xv, float* z) const;

  int64_t n_features_ = 0;
  int32_t max_children_ = 0;
  std::vector<Chunk> chunks_;
  std::vector<float> bias_;       // per child of the layer
  std::vector<int32_t> row_ids_;  // per chunk, sorted feature ids
  std::vector<int64_t> row_ptr_;  // per kPairs chunk, n_rows + 1 absolute offsets into entries_
  std::vector<Entry> entries_;
  std::vector<float> dense_;      // per kDense chunk, n_rows x n_children row-major
  std::vector<int32_t> direct_;   // per kDirect chunk, feature -> row or -1
};

}  // namespace search
}  // namespace xmc
