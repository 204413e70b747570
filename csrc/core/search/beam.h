// Top-down beam search over a PLT's label tree.
//
// Layer t scores the children of the level-t nodes kept in the beam; a node's
// path score is the product of activation(w . [x, 1]) along its path from the
// root. The beam keeps the `beam` best nodes of each level; the last layer's
// children are label positions, of which the top k are returned.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/common/sparse.h"
#include "core/search/weights.h"

namespace xmc {
namespace search {

enum class Activation { kSigmoid, kL3Hinge };

struct Cand {
  float score;
  int32_t id;
};
struct Scratch;  // per-thread buffers, beam.cpp

// "sigmoid" or "l3-hinge"; throws std::invalid_argument naming the choices otherwise.
Activation parse_activation(const std::string& name);

class BeamSearcher {
 public:
  // layer_indptr[t]: level_size(t) + 1 child offsets (the LabelTree layout);
  // weights[t]: CSC (n_features + 1) x level_size(t + 1); label_order: the
  // label at each position of the last level. Arrays are copied or re-laid:
  // none of them needs to outlive the searcher.
  BeamSearcher(const std::vector<std::vector<int64_t>>& layer_indptr,
               const std::vector<int32_t>& label_order, const std::vector<CscView>& weights,
               Activation activation, int threads);

  int64_t n_features() const { return n_features_; }
  int64_t n_labels() const { return static_cast<int64_t>(label_order_.size()); }
  int depth() const { return static_cast<int>(layers_.size()); }
  const ChunkedLayer& layer(int t) const { return layers_[t]; }

  // Automatic block size of the batch path: at most kMaxBlock documents and
  // kBlockBytes of candidates per thread; below kMinBlock, one doc at a time.
  static constexpr int64_t kMaxBlock = 2048;
  static constexpr int64_t kMinBlock = 32;
  static constexpr int64_t kBlockBytes = int64_t(16) << 20;

  // ids/scores: X.rows x k, row-major. Each row holds original label ids by
  // descending score (ties: smaller label id first), padded with -1 / 0.
  // block < 0 picks the path by input size; results never depend on it.
  void search(const CsrView& X, int k, int beam, int threads, int32_t* ids, float* scores,
              int64_t block = -1) const;

 private:
  void expand(int t, int32_t node, float parent_score, const CsrView& X, int64_t i,
              bool use_dense, Scratch* s, Cand* out) const;
  int64_t select(Cand* cand, int64_t n, bool last, int64_t keep) const;
  void write(const Cand* cand, int64_t n, int k, int32_t* ids, float* scores) const;
  void scatter(const CsrView& X, int64_t i, Scratch* s, bool set) const;
  void search_doc(const CsrView& X, int64_t i, int k, int beam, bool allow_dense, Scratch* s,
                  int32_t* ids, float* scores) const;
  void search_block(const CsrView& X, int64_t begin, int64_t end, int k, int beam, Scratch* s,
                    int32_t* ids, float* scores) const;

  int64_t n_features_ = 0;
  Activation activation_ = Activation::kL3Hinge;
  std::vector<ChunkedLayer> layers_;
  std::vector<int32_t> label_order_;
};

}  // namespace search
}  // namespace xmc
