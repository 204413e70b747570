#include "core/search/beam.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/common/parallel.h"

namespace xmc {
namespace search {

namespace {

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

}  // namespace

// Per-thread buffers, made once per call so the per-document loop never allocates
// (vectors only grow to their high-water mark on the first documents).
struct Scratch {
  std::vector<float> x_dense;  // dense copy of the current doc, all zeros between docs
  std::vector<float> z;
  std::vector<Cand> beam;
  std::vector<Cand> cand;
  // batch path
  struct Pair {
    int32_t node;
    int32_t doc;  // within the block
    float score;  // the parent's path score
    int64_t out;  // where its children's candidates go in cand
  };
  std::vector<Pair> pairs;
  std::vector<int64_t> cand_ptr;  // per doc of the block
  std::vector<int32_t> beam_size;
};

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
                          float* scores, int64_t block) const {
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

  // Walking a chunk against a dense copy of the doc needs an n_features buffer
  // per thread; only worth allocating when the call has enough work to amortise it.
  const bool allow_dense_doc = X.nnz() * 8 >= n_features_;
  int max_children = 0;
  int64_t widest = 1;
  for (const auto& L : layers_) {
    max_children = std::max(max_children, L.max_children());
    widest = std::max(widest, L.n_parents());
  }
  // A beam wider than the widest level keeps every node: same result, bounded buffers.
  beam = static_cast<int>(std::min<int64_t>(beam, widest));
  int nt = resolve_threads(threads);
  if (block < 0) {
    // Larger blocks read each chunk for more documents (measured: 128 -> 2048
    // docs gained 40% on a 10k-label model) but hold beam x children candidates
    // per document and must leave a few blocks per thread to balance the load.
    const int64_t per_doc_bytes = static_cast<int64_t>(beam) * max_children * sizeof(Cand);
    const int64_t by_memory = std::max<int64_t>(1, kBlockBytes / std::max<int64_t>(1, per_doc_bytes));
    block = std::min({kMaxBlock, by_memory, X.rows / (4 * static_cast<int64_t>(nt))});
    if (block < kMinBlock) block = 0;
  }
  const int64_t n_blocks = block > 0 ? (X.rows + block - 1) / block : X.rows;
  if (nt > n_blocks) nt = static_cast<int>(std::max<int64_t>(1, n_blocks));

#pragma omp parallel num_threads(nt)
  {
    Scratch s;
    s.z.resize(max_children);
    if (allow_dense_doc && block == 0) s.x_dense.assign(n_features_, 0.0f);
    if (block > 0) {
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < n_blocks; ++b) {
        const int64_t begin = b * block;
        const int64_t end = std::min<int64_t>(X.rows, begin + block);
        search_block(X, begin, end, k, beam, &s, ids, scores);
      }
    } else {
#pragma omp for schedule(dynamic, 32)
      for (int64_t i = 0; i < X.rows; ++i) search_doc(X, i, k, beam, allow_dense_doc, &s, ids, scores);
    }
  }
}

// Scores the children of `node` at layer t for document i into out (n_children
// candidates), given the parent's path score.
void BeamSearcher::expand(int t, int32_t node, float parent_score, const CsrView& X, int64_t i,
                          bool use_dense, Scratch* s, Cand* out) const {
  const ChunkedLayer& L = layers_[t];
  const Chunk& c = L.chunk(node);
  const int64_t start = X.indptr[i];
  const int64_t nnz = X.indptr[i + 1] - start;
  const int32_t* idx = X.indices + start;
  const float* val = nnz ? X.data + start : nullptr;
  float* z = s->z.data();
  std::copy(L.bias() + c.child_begin, L.bias() + c.child_begin + c.n_children, z);
  L.score(c, idx, val, nnz, use_dense ? s->x_dense.data() : nullptr, z);
  if (activation_ == Activation::kL3Hinge) {
    for (int32_t j = 0; j < c.n_children; ++j) z[j] = l3_hinge(z[j]);
  } else {
    for (int32_t j = 0; j < c.n_children; ++j) z[j] = sigmoid(z[j]);
  }
  for (int32_t j = 0; j < c.n_children; ++j) out[j] = Cand{parent_score * z[j], c.child_begin + j};
}

// Moves the best `keep` of cand[0..n) to the front and returns how many there
// are; at the last layer ids become label ids and the kept ones are sorted.
// keep is small next to n (k or beam out of beam x children), so one bounded
// heap pass rejects most candidates with a single comparison, and only the
// ones that get in pay for the label lookup.
int64_t BeamSearcher::select(Cand* cand, int64_t n, bool last, int64_t keep) const {
  const int32_t* labels = label_order_.data();
  if (n <= keep) {
    if (last) {
      for (int64_t j = 0; j < n; ++j) cand[j].id = labels[cand[j].id];
      std::sort(cand, cand + n, better);
    }
    return n;
  }
  if (last)
    for (int64_t j = 0; j < keep; ++j) cand[j].id = labels[cand[j].id];
  // A max-heap under `better` has the worst kept candidate on top.
  std::make_heap(cand, cand + keep, better);
  for (int64_t j = keep; j < n; ++j) {
    Cand c = cand[j];
    if (c.score < cand[0].score) continue;
    if (last) c.id = labels[c.id];
    if (!better(c, cand[0])) continue;
    std::pop_heap(cand, cand + keep, better);
    cand[keep - 1] = c;
    std::push_heap(cand, cand + keep, better);
  }
  if (last) std::sort(cand, cand + keep, better);
  return keep;
}

void BeamSearcher::write(const Cand* cand, int64_t n, int k, int32_t* ids, float* scores) const {
  for (int64_t j = 0; j < n; ++j) {
    ids[j] = cand[j].id;
    scores[j] = cand[j].score;
  }
  for (int64_t j = n; j < k; ++j) {
    ids[j] = -1;
    scores[j] = 0.0f;
  }
}

void BeamSearcher::scatter(const CsrView& X, int64_t i, Scratch* s, bool set) const {
  for (int64_t p = X.indptr[i]; p < X.indptr[i + 1]; ++p)
    s->x_dense[X.indices[p]] = set ? X.data[p] : 0.0f;
}

// One document at a time: the whole beam of a doc, then the next doc.
void BeamSearcher::search_doc(const CsrView& X, int64_t i, int k, int beam, bool allow_dense,
                              Scratch* s, int32_t* ids, float* scores) const {
  const int64_t nnz = X.row_nnz(i);
  bool scattered = false;
  s->beam.assign(1, Cand{1.0f, 0});
  const int depth = this->depth();
  for (int t = 0; t < depth; ++t) {
    const ChunkedLayer& L = layers_[t];
    int64_t total = 0;
    for (const Cand& b : s->beam) total += L.chunk(b.id).n_children;
    s->cand.resize(total);
    int64_t off = 0;
    for (const Cand& b : s->beam) {
      const Chunk& c = L.chunk(b.id);
      // The scatter is paid once per doc, so it is left out of the comparison.
      const bool dense = allow_dense && L.walk_cost(c) < L.lookup_cost(c, nnz);
      if (dense && !scattered) {
        scatter(X, i, s, true);
        scattered = true;
      }
      expand(t, b.id, b.score, X, i, dense, s, s->cand.data() + off);
      off += c.n_children;
    }
    const bool last = t == depth - 1;
    const int64_t n = select(s->cand.data(), total, last, last ? k : beam);
    s->cand.resize(n);
    if (!last) std::swap(s->beam, s->cand);
  }
  write(s->cand.data(), static_cast<int64_t>(s->cand.size()), k, ids + i * k, scores + i * k);
  if (scattered) scatter(X, i, s, false);
}

// A block of documents layer by layer, each layer's (node, doc) pairs sorted by
// node: a chunk's weights are then read for all of the block's documents that
// reach it while they are in cache, instead of once per document.
void BeamSearcher::search_block(const CsrView& X, int64_t begin, int64_t end, int k, int beam,
                                Scratch* s, int32_t* ids, float* scores) const {
  const int64_t nd = end - begin;
  const int depth = this->depth();
  s->beam.assign(nd * beam, Cand{0.0f, 0});
  s->beam_size.assign(nd, 1);
  for (int64_t d = 0; d < nd; ++d) s->beam[d * beam] = Cand{1.0f, 0};
  s->cand_ptr.resize(nd + 1);
  for (int t = 0; t < depth; ++t) {
    const ChunkedLayer& L = layers_[t];
    s->pairs.clear();
    int64_t off = 0;
    for (int64_t d = 0; d < nd; ++d) {
      s->cand_ptr[d] = off;
      for (int32_t j = 0; j < s->beam_size[d]; ++j) {
        const Cand& b = s->beam[d * beam + j];
        s->pairs.push_back({b.id, static_cast<int32_t>(d), b.score, off});
        off += L.chunk(b.id).n_children;
      }
    }
    s->cand_ptr[nd] = off;
    s->cand.resize(off);
    std::sort(s->pairs.begin(), s->pairs.end(), [](const Scratch::Pair& a, const Scratch::Pair& b) {
      return a.node < b.node || (a.node == b.node && a.doc < b.doc);
    });
    // No dense-document walk here: in node order the scatter would be paid per
    // pair, and walk + scatter never beats the lookup's cost estimate.
    for (const auto& p : s->pairs)
      expand(t, p.node, p.score, X, begin + p.doc, false, s, s->cand.data() + p.out);
    const bool last = t == depth - 1;
    for (int64_t d = 0; d < nd; ++d) {
      Cand* cand = s->cand.data() + s->cand_ptr[d];
      const int64_t n = select(cand, s->cand_ptr[d + 1] - s->cand_ptr[d], last, last ? k : beam);
      if (last) {
        write(cand, n, k, ids + (begin + d) * k, scores + (begin + d) * k);
      } else {
        std::copy(cand, cand + n, s->beam.data() + d * beam);
        s->beam_size[d] = static_cast<int32_t>(n);
      }
    }
  }
}

}  // namespace search
}  // namespace xmc
