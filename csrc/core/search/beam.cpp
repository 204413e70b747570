#include "core/search/beam.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/common/parallel.h"

namespace xmc {
namespace search {

namespace {

struct Cand {
  float score;
  int32_t id;
};

// A strict total order, so the kept set and its order never depend on the
// order candidates were produced in (hence not on the thread count either).
inline bool better(const Cand& a, const Cand& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
}

inline float l3_hinge(float z) {
  const float d = 1.0f - z;
  return d <= 0.0f ? 1.0f : std::exp(-d * d * d);
}

inline float sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

// Per-thread buffers, sized once per call so the per-document loop never allocates
// (vectors only grow to their high-water mark on the first documents).
struct Scratch {
  std::vector<float> x_dense;  // dense copy of the current doc, allocated on first use
  std::vector<float> z;
  std::vector<Cand> beam;
  std::vector<Cand> cand;
};

}  // namespace

Activation parse_activation(const std::string& name) {
  if (name == "sigmoid") return Activation::kSigmoid;
  if (name == "l3-hinge") return Activation::kL3Hinge;
  throw std::invalid_argument("unknown activation '" + name +
                              "': expected 'sigmoid' or 'l3-hinge'");
}

BeamSearcher::BeamSearcher(const std::vector<std::vector<int64_t>>& layer_indptr,
                           const std::vector<int32_t>& label_order,
                           const std::vector<CscView>& weights, Activation activation,
                           int threads)
    : activation_(activation), label_order_(label_order) {
  if (layer_indptr.empty()) throw std::invalid_argument("the label tree has no layer");
  if (weights.size() != layer_indptr.size())
    throw std::invalid_argument("the tree has " + std::to_string(layer_indptr.size()) +
                                " layers but " + std::to_string(weights.size()) +
                                " weight matrices were given");
  int64_t level = 1;
  for (size_t t = 0; t < layer_indptr.size(); ++t) {
    const auto& ptr = layer_indptr[t];
    if (static_cast<int64_t>(ptr.size()) != level + 1)
      throw std::invalid_argument("layer " + std::to_string(t) + ": indptr has " +
                                  std::to_string(ptr.size()) + " entries, expected " +
                                  std::to_string(level + 1));
    if (weights[t].rows != weights[0].rows)
      throw std::invalid_argument("layer " + std::to_string(t) + " weights have " +
                                  std::to_string(weights[t].rows) + " rows, layer 0 has " +
                                  std::to_string(weights[0].rows));
    layers_.emplace_back(weights[t], ptr.data(), level, threads);
    level = ptr.back();
  }
  if (level != static_cast<int64_t>(label_order_.size()))
    throw std::invalid_argument("the last level has " + std::to_string(level) +
                                " positions but label_order has " +
                                std::to_string(label_order_.size()) + " labels");
  for (int32_t l : label_order_)
    if (l < 0 || l >= level) throw std::invalid_argument("label_order holds an id out of range");
  n_features_ = weights[0].rows - 1;
}

void BeamSearcher::search(const CsrView& X, int k, int beam, int threads, int32_t* ids,
                          float* scores) const {
  if (k < 1) throw std::invalid_argument("k must be at least 1, got " + std::to_string(k));
  if (beam < 1) throw std::invalid_argument("beam must be at least 1, got " + std::to_string(beam));
  if (X.cols != n_features_)
    throw std::invalid_argument("X has " + std::to_string(X.cols) +
                                " features but the model was trained on " +
                                std::to_string(n_features_));
  for (int64_t i = 0; i < X.rows; ++i) {
    if (X.indptr[i + 1] < X.indptr[i]) throw std::invalid_argument("X indptr must not decrease");
    for (int64_t p = X.indptr[i]; p < X.indptr[i + 1]; ++p) {
      const int32_t f = X.indices[p];
      if (f < 0 || f >= n_features_)
        throw std::invalid_argument("X row " + std::to_string(i) + " has feature id " +
                                    std::to_string(f) + " outside [0, " +
                                    std::to_string(n_features_) + ")");
      if (p > X.indptr[i] && X.indices[p - 1] >= f)
        throw std::invalid_argument("X row " + std::to_string(i) +
                                    " has unsorted or duplicate feature ids");
    }
  }
  if (X.nnz() > 0 && X.data == nullptr) throw std::invalid_argument("X has no values");

  // The dense-document pass needs an n_features buffer per thread; only worth
  // allocating when the call has enough work to amortise it.
  const bool allow_dense_doc = X.nnz() * 8 >= n_features_;
  int max_children = 0;
  for (const auto& L : layers_) max_children = std::max(max_children, L.max_children());
  const int depth = this->depth();
  int nt = resolve_threads(threads);
  if (nt > X.rows) nt = static_cast<int>(std::max<int64_t>(1, X.rows));

#pragma omp parallel num_threads(nt)
  {
    Scratch s;
    s.z.resize(max_children);
#pragma omp for schedule(dynamic, 32)
    for (int64_t i = 0; i < X.rows; ++i) {
      const int64_t start = X.indptr[i];
      const int64_t nnz = X.indptr[i + 1] - start;
      const int32_t* idx = X.indices + start;
      const float* val = nnz ? X.data + start : nullptr;
      bool scattered = false;

      s.beam.clear();
      s.beam.push_back(Cand{1.0f, 0});
      for (int t = 0; t < depth; ++t) {
        const ChunkedLayer& L = layers_[t];
        s.cand.clear();
        for (const Cand& b : s.beam) {
          const Chunk& c = L.chunk(b.id);
          float* z = s.z.data();
          std::copy(L.bias() + c.child_begin, L.bias() + c.child_begin + c.n_children, z);
          const float* xd = nullptr;
          if (allow_dense_doc && L.prefers_dense_doc(c, nnz)) {
            if (!scattered) {
              if (s.x_dense.empty()) s.x_dense.assign(n_features_, 0.0f);
              for (int64_t p = 0; p < nnz; ++p) s.x_dense[idx[p]] = val[p];
              scattered = true;
            }
            xd = s.x_dense.data();
          }
          L.score(c, idx, val, nnz, xd, z);
          if (activation_ == Activation::kL3Hinge) {
            for (int32_t j = 0; j < c.n_children; ++j) z[j] = l3_hinge(z[j]);
          } else {
            for (int32_t j = 0; j < c.n_children; ++j) z[j] = sigmoid(z[j]);
          }
          for (int32_t j = 0; j < c.n_children; ++j)
            s.cand.push_back(Cand{b.score * z[j], c.child_begin + j});
        }
        const bool last = t == depth - 1;
        if (last)
          for (Cand& c : s.cand) c.id = label_order_[c.id];
        const size_t keep = static_cast<size_t>(last ? k : beam);
        if (s.cand.size() > keep) {
          std::nth_element(s.cand.begin(), s.cand.begin() + keep, s.cand.end(), better);
          s.cand.resize(keep);
        }
        if (!last) std::swap(s.beam, s.cand);
      }
      std::sort(s.cand.begin(), s.cand.end(), better);
      int32_t* out_ids = ids + i * k;
      float* out_scores = scores + i * k;
      const int n_out = static_cast<int>(s.cand.size());
      for (int j = 0; j < n_out; ++j) {
        out_ids[j] = s.cand[j].id;
        out_scores[j] = s.cand[j].score;
      }
      for (int j = n_out; j < k; ++j) {
        out_ids[j] = -1;
        out_scores[j] = 0.0f;
      }
      if (scattered)
        for (int64_t p = 0; p < nnz; ++p) s.x_dense[idx[p]] = 0.0f;
    }
  }
}

}  // namespace search
}  // namespace xmc
