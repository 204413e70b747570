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

  // ids/scores: X.rows x k, row-major. Each row holds original label ids by
  // descending score (ties: smaller label id first), padded with -1 / 0.
  void search(const CsrView& X, int k, int beam, int threads, int32_t* ids, float* scores) const;

 private:
  int64_t n_features_ = 0;
  Activation activation_ = Activation::kL3Hinge;
  std::vector<ChunkedLayer> layers_;
  std::vector<int32_t> label_order_;
};

}  // namespace search
}  // namespace xmc
