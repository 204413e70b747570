#include "core/tree/kmeans.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

#include "core/common/large_buffer.h"
#include "core/common/parallel.h"

namespace xmc {

uint64_t splitmix64_next(uint64_t& state) {
  state += 0x9E3779B97F4A7C15ULL;
  uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t cluster_seed(uint64_t seed, uint64_t node_id) {
  // Hash (seed, node) so that neighbouring seeds and nodes give unrelated streams.
  uint64_t s = seed;
  uint64_t state = splitmix64_next(s) ^ (node_id * 0xD1B54A32D192ED03ULL);
  splitmix64_next(state);
  return state;
}

namespace {

// (score, id): ordering on the pair makes the split unique even with tied scores.
struct Key {
  float score;
  int32_t id;
};

inline bool key_less(const Key& a, const Key& b) {
  return a.score < b.score || (a.score == b.score && a.id < b.id);
}

// Centroid state of one split. Sums are in double: they are updated
// incrementally over many iterations, and float drift would make the result
// depend on the order of the updates.
struct Workspace {
  std::vector<double> total;  // sum of the cluster's normalised rows
  std::vector<double> right;  // sum over the right half
  std::vector<float> diff;    // right centroid - left centroid, both unit length
  std::vector<int32_t> touched;
  std::vector<uint8_t> mark;
  bool dense = true;
  std::vector<int32_t> pool;  // a sampled split's draw: its sample first, sorted (see sampled_split)
  std::vector<Key> sample_keys;

  void init(int64_t dim, bool is_dense) {
    dense = is_dense;
    total.assign(dim, 0.0);
    right.assign(dim, 0.0);
    diff.assign(dim, 0.0f);
    if (dense) {
      touched.resize(dim);
      std::iota(touched.begin(), touched.end(), 0);
    } else {
      mark.assign(dim, 0);
      touched.clear();
    }
  }

  // Zeroes the sums and keeps diff, to start passes over other points from these centroids.
  void clear_sums() {
    for (int32_t j : touched) {
      total[j] = 0.0;
      right[j] = 0.0;
    }
  }

  // Sparse clusters only touch the union of their rows' supports; clearing just
  // those keeps small clusters cheap when the feature space is huge.
  void reset() {
    if (dense) {
      std::fill(total.begin(), total.end(), 0.0);
      std::fill(right.begin(), right.end(), 0.0);
      std::fill(diff.begin(), diff.end(), 0.0f);
      return;
    }
    for (int32_t j : touched) {
      total[j] = 0.0;
      right[j] = 0.0;
      diff[j] = 0.0f;
      mark[j] = 0;
    }
    touched.clear();
  }
};

// Multiply-adds per pass below which a cluster is split by one thread (a
// parallel region and its barrier cost more than the work).
constexpr double kMinInnerParallelWork = 1 << 20;

struct DenseRows {
  const DenseView* x;
  static constexpr bool kDense = true;
  double work_per_row() const { return static_cast<double>(x->cols); }
  int64_t dim() const { return x->cols; }
  int64_t rows() const { return x->rows; }
  const float* row(int32_t r) const { return x->data + static_cast<int64_t>(r) * x->cols; }

  // Eight independent partial sums let the compiler vectorise the reduction
  // without -ffast-math; the fixed combination order keeps it deterministic.
  float dot(int32_t r, const float* c) const {
    const float* a = row(r);
    const int64_t d = x->cols;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= d; j += 8)
      for (int k = 0; k < 8; ++k) acc[k] += a[j + k] * c[j + k];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; j < d; ++j) s += a[j] * c[j];
    return s;
  }
  double sq_norm(int32_t r) const {
    const float* a = row(r);
    double s = 0.0;
    for (int64_t j = 0; j < x->cols; ++j) s += static_cast<double>(a[j]) * a[j];
    return s;
  }
  void axpy(int32_t r, double alpha, double* acc) const {
    const float* a = row(r);
    for (int64_t j = 0; j < x->cols; ++j) acc[j] += alpha * a[j];
  }
  void axpy_float(int32_t r, float alpha, float* acc) const {
    const float* a = row(r);
    for (int64_t j = 0; j < x->cols; ++j) acc[j] += alpha * a[j];
  }
  void mark_support(int32_t, Workspace&) const {}
};

struct SparseRows {
  const CsrView* x;
  static constexpr bool kDense = false;
  double work_per_row() const { return x->rows ? static_cast<double>(x->nnz()) / x->rows : 0.0; }
  int64_t dim() const { return x->cols; }
  int64_t rows() const { return x->rows; }

  // Four partial sums: one chain of dependent additions would make the dot wait on
  // the adder's latency at every non-zero. The fixed combination order keeps it deterministic.
  float dot(int32_t r, const float* c) const {
    const int64_t b = x->indptr[r], e = x->indptr[r + 1];
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    int64_t k = b;
    for (; k + 4 <= e; k += 4)
      for (int u = 0; u < 4; ++u) acc[u] += static_cast<double>(x->value(k + u)) * c[x->indices[k + u]];
    for (; k < e; ++k) acc[0] += static_cast<double>(x->value(k)) * c[x->indices[k]];
    return static_cast<float>((acc[0] + acc[2]) + (acc[1] + acc[3]));
  }
  double sq_norm(int32_t r) const {
    double s = 0.0;
    for (int64_t k = x->indptr[r]; k < x->indptr[r + 1]; ++k) s += static_cast<double>(x->value(k)) * x->value(k);
    return s;
  }
  void axpy(int32_t r, double alpha, double* acc) const {
    for (int64_t k = x->indptr[r]; k < x->indptr[r + 1]; ++k) acc[x->indices[k]] += alpha * x->value(k);
  }
  void axpy_float(int32_t r, float alpha, float* acc) const {
    for (int64_t k = x->indptr[r]; k < x->indptr[r + 1]; ++k) acc[x->indices[k]] += alpha * x->value(k);
  }
  void mark_support(int32_t r, Workspace& ws) const {
    for (int64_t k = x->indptr[r]; k < x->indptr[r + 1]; ++k) {
      const int32_t j = x->indices[k];
      if (!ws.mark[j]) {
        ws.mark[j] = 1;
        ws.touched.push_back(j);
      }
    }
  }
};

// Shared state of one run: the permutation being refined and scratch indexed by
// position (keys) or by point id (side, inv_norm), so concurrent clusters never
// overlap.
struct RunState {
  std::vector<int32_t> order;
  std::vector<Key> keys;
  std::vector<uint8_t> side;    // which half of its cluster each point is in (see split_cluster)
  std::vector<float> inv_norm;  // 1/||x_i||, 0 for empty rows: makes the k-means spherical without copying x
};

template <class Rows>
void compute_inv_norms(const Rows& rows, RunState& st, int threads) {
  const int64_t n = rows.rows();
  st.inv_norm.resize(n);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t i = 0; i < n; ++i) {
    const double s = rows.sq_norm(static_cast<int32_t>(i));
    st.inv_norm[i] = s > 0.0 ? static_cast<float>(1.0 / std::sqrt(s)) : 0.0f;
  }
}

// Scores points ids[0:n) by cos(x, c_right) - cos(x, c_left) (diff holds c_right - c_left).
template <class Rows>
void score_points(const Rows& rows, const int32_t* ids, Key* keys, int64_t n, const float* diff,
                  const float* inv_norm, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t q = 0; q < n; ++q) {
    const int32_t id = ids[q];
    float score = rows.dot(id, diff) * inv_norm[id];
    if (std::isnan(score)) score = -std::numeric_limits<float>::infinity();
    keys[q] = Key{score, id};
  }
}

// Writes the ranked halves back into ids[0:n): the lower n/2 keys, then the rest, each sorted by id.
void write_halves(int32_t* ids, Key* keys, int64_t n) {
  for (int64_t p = 0; p < n; ++p) ids[p] = keys[p].id;
  std::sort(ids, ids + n / 2);
  std::sort(ids + n / 2, ids + n);
}

// ws.diff = unit(right sum) - unit(left sum), over the dimensions the split touched.
void centroid_difference(Workspace& ws) {
  double nr = 0.0, nl = 0.0;
  for (int32_t j : ws.touched) {
    const double r = ws.right[j], l = ws.total[j] - ws.right[j];
    nr += r * r;
    nl += l * l;
  }
  const double sr = nr > 0.0 ? 1.0 / std::sqrt(nr) : 0.0;
  const double sl = nl > 0.0 ? 1.0 / std::sqrt(nl) : 0.0;
  for (int32_t j : ws.touched) ws.diff[j] = static_cast<float>(ws.right[j] * sr - (ws.total[j] - ws.right[j]) * sl);
}

// Balanced 2-means passes over ids[0:n) from the centroid difference in ws.diff. Leaves ids
// split into [0, n/2) and [n/2, n), each sorted by id, ws.right/ws.total summing the final
// halves, and returns the number of iterations run.
//
// ids[0:n) comes in sorted by id and stays so until the end: every pass reads the rows in
// that order, which after renumbering is the rows' order in memory. Reading them in the order
// nth_element leaves would make each row of a big cluster a cache and TLB miss. keys is rebuilt
// from scratch each pass, so nth_element sees the same set of (score, id) keys and, the order
// on keys being total, picks the same halves.
template <class Rows>
int lloyd_passes(const Rows& rows, RunState& st, int32_t* ids, Key* keys, int64_t n, int max_iter, double tol,
                 Workspace& ws, int threads) {
  const int64_t mid = n / 2;
  const int64_t settled = static_cast<int64_t>(tol * static_cast<double>(n));  // moves that count as converged
  uint8_t* side = st.side.data();  // bit 0: the point's half in the sums; bit 1: its half this pass
  const float* inv_norm = st.inv_norm.data();
  int it = 0;
  while (it < max_iter) {
    ++it;
    score_points(rows, ids, keys, n, ws.diff.data(), inv_norm, threads);
    std::nth_element(keys, keys + mid, keys + n, key_less);
    for (int64_t p = mid; p < n; ++p) side[keys[p].id] |= 2;

    if (it == 1) {
      for (int64_t q = 0; q < n; ++q) {
        const int32_t id = ids[q];
        const uint8_t r = side[id] >> 1;
        side[id] = r;
        rows.mark_support(id, ws);
        rows.axpy(id, inv_norm[id], ws.total.data());
        if (r) rows.axpy(id, inv_norm[id], ws.right.data());
      }
    } else {
      // Only points that changed side move the sums: late iterations cost a
      // fraction of a pass over the data.
      int64_t moved = 0;
      for (int64_t q = 0; q < n; ++q) {
        const int32_t id = ids[q];
        const uint8_t r = side[id] >> 1;
        if ((side[id] & 1) != r) {
          rows.axpy(id, r ? inv_norm[id] : -inv_norm[id], ws.right.data());
          ++moved;
        }
        side[id] = r;
      }
      if (moved <= settled) break;
    }
    if (it == max_iter) break;
    centroid_difference(ws);
  }
  write_halves(ids, keys, n);
  return it;
}

// Splits order[s:e) in place into [s, mid) and [mid, e), mid = s + n/2, each half sorted by
// id, starting from the centroids x[init_right] and x[init_left]. Returns the iterations run.
template <class Rows>
int split_cluster(const Rows& rows, RunState& st, int64_t s, int64_t e, int32_t init_right, int32_t init_left,
                  int max_iter, double tol, Workspace& ws, int threads) {
  rows.axpy_float(init_right, st.inv_norm[init_right], ws.diff.data());
  rows.axpy_float(init_left, -st.inv_norm[init_left], ws.diff.data());
  const int it = lloyd_passes(rows, st, st.order.data() + s, st.keys.data() + s, e - s, max_iter, tol, ws, threads);
  ws.reset();
  return it;
}

// Picks two distinct points of ids[0:n) as initial centroids from a cluster's random stream.
void init_pair(const int32_t* ids, int64_t n, uint64_t& state, int32_t& right, int32_t& left) {
  const uint64_t a = splitmix64_next(state) % static_cast<uint64_t>(n);
  const uint64_t b = (a + 1 + splitmix64_next(state) % static_cast<uint64_t>(n - 1)) % static_cast<uint64_t>(n);
  right = ids[a];
  left = ids[b];
}

// Lloyd passes over all of a sampled cluster's points once its sample has converged. The
// sample's centroids are close to the cluster's, so the first passes move the few points they
// misplace. On a generated corpus of 10^6 labels (samples of 16384), the linear PLT's P@1/3/5
// were 56.59/38.74/26.43 with three passes and 56.45/38.74/26.39 with one; unsampled trees
// gave 56.74/39.02/26.52 and, with another seed, 56.72/38.55/26.31.
constexpr int kFullPassesAfterSample = 3;

// A cluster bigger than the sample runs its 2-means on `sample` of its points drawn at random
// (a partial Fisher-Yates shuffle of its ids driven by the cluster's stream, then the initial
// pair from the same stream), then kFullPassesAfterSample passes over all of its points from
// the sample's centroids. Big clusters need the most iterations to settle (the top splits of a
// million labels run to max_iter); this way their iterations cost what a cluster of `sample`
// points costs, and a level of big clusters costs a few passes over the data.
template <class Rows>
void sampled_split(const Rows& rows, RunState& st, int64_t s, int64_t e, uint64_t state, int64_t sample,
                   int max_iter, double tol, Workspace& ws, int threads) {
  const int64_t n = e - s;
  ws.pool.assign(st.order.begin() + s, st.order.begin() + e);
  for (int64_t i = 0; i < sample; ++i) {
    const int64_t j = i + static_cast<int64_t>(splitmix64_next(state) % static_cast<uint64_t>(n - i));
    std::swap(ws.pool[i], ws.pool[j]);
  }
  int32_t* drawn = ws.pool.data();
  std::sort(drawn, drawn + sample);
  int32_t a, b;
  init_pair(drawn, sample, state, a, b);
  rows.axpy_float(a, st.inv_norm[a], ws.diff.data());
  rows.axpy_float(b, -st.inv_norm[b], ws.diff.data());
  ws.sample_keys.resize(static_cast<size_t>(sample));
  lloyd_passes(rows, st, drawn, ws.sample_keys.data(), sample, max_iter, tol, ws, threads);
  centroid_difference(ws);
  ws.clear_sums();
  lloyd_passes(rows, st, st.order.data() + s, st.keys.data() + s, n, std::min(max_iter, kFullPassesAfterSample), tol,
               ws, threads);
  ws.reset();
}

// The rows of a sparse matrix copied in a given order, so that each cluster's members are
// neighbours in memory, with each cluster's features renumbered 0, 1, ... in the order its rows
// first use them. Without the copy, every level reads its clusters' rows scattered over the whole
// matrix: once the matrix outgrows the caches (millions of labels), each row is a cache miss and
// the deep levels, made of many small clusters, are bound by them. Without the renumbering, the
// centroid arrays that every non-zero reads at random span all features (hundreds of thousands
// at millions of labels), more than the L2 cache; a cluster's own features are a small prefix.
// Only the split halves leave the k-means, so the features never need their old numbers back.
// A cluster's renumbering of features: old number -> new, given in order of first use.
struct FeatureMap {
  std::vector<int32_t> local;  // -1 where not yet used
  std::vector<int32_t> used;   // old numbers in order of first use

  explicit FeatureMap(int64_t cols) : local(static_cast<size_t>(cols), -1) {}
  int32_t local_id(int32_t f) {
    if (local[f] < 0) {
      local[f] = static_cast<int32_t>(used.size());
      used.push_back(f);
    }
    return local[f];
  }
  void clear() {
    for (int32_t f : used) local[f] = -1;
    used.clear();
  }
};

struct GatheredRows {
  std::vector<int64_t> indptr;
  LargeBuffer<int32_t> indices;
  LargeBuffer<float> data;
  CsrView view;

  // Takes over storage that is no longer read, to gather into later.
  void adopt(LargeBuffer<int32_t>&& spare_indices, LargeBuffer<float>&& spare_data) {
    indices = std::move(spare_indices);
    data = std::move(spare_data);
  }

  // Reuses this copy's storage: a fresh allocation per level would fault in
  // every page of a matrix that holds hundreds of megabytes at millions of labels.
  // `clusters` bounds the clusters in the new order; `feature_maps` holds one cleared map over
  // src.cols features per thread, and is left cleared.
  void gather(const CsrView& src, const int32_t* rows, int64_t n, const std::vector<int64_t>& clusters,
              std::vector<FeatureMap>& feature_maps, int threads) {
    indptr.resize(static_cast<size_t>(n + 1));
    indptr[0] = 0;
    for (int64_t q = 0; q < n; ++q) indptr[q + 1] = indptr[q] + src.row_nnz(rows[q]);
    int32_t* new_indices = indices.reserve(static_cast<size_t>(indptr[n]));
    float* new_data = data.reserve(static_cast<size_t>(indptr[n]));
    const int64_t n_clusters = static_cast<int64_t>(clusters.size()) - 1;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 8) if (threads > 1)
    for (int64_t c = 0; c < n_clusters; ++c) {
      FeatureMap& map = feature_maps[thread_id()];
      for (int64_t q = clusters[c]; q < clusters[c + 1]; ++q) {
        const int64_t b = src.indptr[rows[q]], len = src.row_nnz(rows[q]);
        int32_t* out = new_indices + indptr[q];
        float* values = new_data + indptr[q];
        for (int64_t k = 0; k < len; ++k) {
          out[k] = map.local_id(src.indices[b + k]);
          values[k] = src.value(b + k);
        }
      }
      map.clear();
    }
    view = CsrView{n, src.cols, indptr.data(), indices.data(), data.data()};
  }
};

// Renumbers the points so that the current order is the identity, moving the rows (sparse
// input) and the per-point norms with them; `original` maps the new numbers back. Each
// cluster's points keep their relative order, and so their relative ids: the splits compare
// ids only to break ties, so the tree comes out the same, bit for bit (the features' new
// numbers keep each row's order of non-zeros and the order in which a split first meets them).
// The rows go to whichever of the two copies the current rows are not read from.
void renumber(SparseRows& rows, GatheredRows (&copies)[2], const std::vector<int64_t>& clusters,
              std::vector<FeatureMap>& feature_maps, RunState& st, std::vector<int32_t>& original,
              int threads) {
  const int64_t n = rows.rows();
  GatheredRows& next = rows.x == &copies[0].view ? copies[1] : copies[0];
  next.gather(*rows.x, st.order.data(), n, clusters, feature_maps, threads);
  std::vector<int32_t> orig(static_cast<size_t>(n));
  std::vector<float> inv(static_cast<size_t>(n));
  for (int64_t q = 0; q < n; ++q) {
    orig[q] = original[st.order[q]];
    inv[q] = st.inv_norm[st.order[q]];
  }
  rows.x = &next.view;
  original = std::move(orig);
  st.inv_norm = std::move(inv);
  std::iota(st.order.begin(), st.order.end(), 0);
}

// `spare`, when given, holds the input's own arrays, free to be overwritten once level 1 has
// copied the rows out of them (level 2 is the first to gather into the second copy).
template <class Rows>
BinaryPartition run_tree(const Rows& input, const KMeansParams& params, LargeCsr* spare = nullptr) {
  if (params.max_leaf_size < 1) throw std::invalid_argument("max_leaf_size must be >= 1");
  if (params.max_iter < 1) throw std::invalid_argument("max_iter must be >= 1");
  if (!(params.tol >= 0.0 && params.tol < 1.0)) throw std::invalid_argument("tol must be in [0, 1)");
  if (params.split_sample < 0) throw std::invalid_argument("split_sample must be >= 0");
  if (params.split_sample == 1) throw std::invalid_argument("split_sample must be 0 (off) or >= 2");
  const int threads = resolve_threads(params.threads);
  const int64_t n = input.rows();
  if (n > std::numeric_limits<int32_t>::max())
    throw std::invalid_argument("at most 2^31-1 labels can be clustered, got " + std::to_string(n));
  BinaryPartition out;
  out.bounds.push_back({0, n});
  RunState st;
  st.order.resize(n);
  std::iota(st.order.begin(), st.order.end(), 0);
  if (n <= params.max_leaf_size) {
    out.order = std::move(st.order);
    return out;
  }
  Rows rows = input;  // sparse rows move to gathered copies level by level
  GatheredRows gathered[2];
  if (spare != nullptr) gathered[1].adopt(std::move(spare->indices), std::move(spare->data));
  std::vector<int32_t> original;  // the input's id of each point, once renumbered
  std::vector<FeatureMap> feature_maps;  // per thread, for the renumbering of features
  st.keys.resize(n);
  st.side.assign(n, 0);
  compute_inv_norms(rows, st, threads);
  // Allocated up front: an allocation failure inside a parallel region would abort.
  std::vector<Workspace> ws(threads);
  for (auto& w : ws) w.init(rows.dim(), Rows::kDense);

  for (int level = 0;; ++level) {
    const std::vector<int64_t>& cur = out.bounds.back();
    const int64_t n_clusters = static_cast<int64_t>(cur.size()) - 1;
    int64_t largest = 0;
    for (int64_t j = 0; j < n_clusters; ++j) largest = std::max(largest, cur[j + 1] - cur[j]);
    if (largest <= params.max_leaf_size) break;
    if constexpr (!Rows::kDense) {
      if (level > 0) {  // level 0 has one cluster in the input's order
        if (original.empty()) {
          original.resize(static_cast<size_t>(n));
          std::iota(original.begin(), original.end(), 0);
          feature_maps.assign(threads, FeatureMap(rows.dim()));
        }
        renumber(rows, gathered, cur, feature_maps, st, original, threads);
      }
    }
    // Every cluster of the level is split (sizes differ by one at most), so all
    // leaves end at the same depth; only singletons cannot be halved.
    std::vector<int64_t> next{0};
    for (int64_t j = 0; j < n_clusters; ++j) {
      const int64_t s = cur[j], e = cur[j + 1];
      if (e - s >= 2) next.push_back(s + (e - s) / 2);
      next.push_back(e);
    }
    const uint64_t level_base = uint64_t(1) << level;
    auto split_one = [&](int64_t j, Workspace& w, int inner_threads) {
      const int64_t s = cur[j], e = cur[j + 1];
      if (e - s < 2) return;
      uint64_t state = cluster_seed(params.seed, level_base + static_cast<uint64_t>(j));
      if (params.split_sample > 0 && e - s > params.split_sample) {
        sampled_split(rows, st, s, e, state, params.split_sample, params.max_iter, params.tol, w, inner_threads);
        return;
      }
      int32_t a, b;
      init_pair(st.order.data() + s, e - s, state, a, b);
      split_cluster(rows, st, s, e, a, b, params.max_iter, params.tol, w, inner_threads);
    };
    // A parallel region per iteration only pays off on big clusters; small ones
    // (and many ones) are better spread over threads whole.
    const double cluster_work = rows.work_per_row() * static_cast<double>(largest);
    if (n_clusters >= threads || cluster_work < kMinInnerParallelWork) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
      for (int64_t j = 0; j < n_clusters; ++j) split_one(j, ws[thread_id()], 1);
    } else {
      for (int64_t j = 0; j < n_clusters; ++j) split_one(j, ws[0], threads);
    }
    out.bounds.push_back(std::move(next));
  }
  if (!original.empty())
    for (int32_t& id : st.order) id = original[id];
  out.order = std::move(st.order);
  return out;
}

template <class Rows>
SplitResult run_split(const Rows& rows, const std::vector<int32_t>& ids, int32_t init_right, int32_t init_left,
                      int max_iter, double tol) {
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n < 2) throw std::invalid_argument("a split needs at least 2 points, got " + std::to_string(n));
  if (max_iter < 1) throw std::invalid_argument("max_iter must be >= 1");
  if (!(tol >= 0.0 && tol < 1.0)) throw std::invalid_argument("tol must be in [0, 1)");
  for (int32_t id : ids)
    if (id < 0 || id >= rows.rows()) throw std::out_of_range("point id " + std::to_string(id) + " out of range");
  if (init_right < 0 || init_right >= rows.rows() || init_left < 0 || init_left >= rows.rows())
    throw std::out_of_range("initial centroid id out of range");
  RunState st;
  st.order = ids;
  std::sort(st.order.begin(), st.order.end());
  st.keys.resize(n);
  st.side.assign(rows.rows(), 0);
  compute_inv_norms(rows, st, 1);
  Workspace ws;
  ws.init(rows.dim(), Rows::kDense);
  SplitResult res;
  res.iterations = split_cluster(rows, st, 0, n, init_right, init_left, max_iter, tol, ws, 1);
  res.left.assign(st.order.begin(), st.order.begin() + n / 2);
  res.right.assign(st.order.begin() + n / 2, st.order.end());
  return res;
}

void check_sparse(const CsrView& x) {
  for (int64_t k = 0; k < x.nnz(); ++k)
    if (x.indices[k] < 0 || x.indices[k] >= x.cols)
      throw std::out_of_range("sparse embedding column " + std::to_string(x.indices[k]) + " outside [0, " +
                              std::to_string(x.cols) + ")");
}

}  // namespace

BinaryPartition balanced_kmeans_tree(const DenseView& x, const KMeansParams& params) {
  DenseRows rows{&x};
  return run_tree(rows, params);
}

BinaryPartition balanced_kmeans_tree(const CsrView& x, const KMeansParams& params) {
  check_sparse(x);
  SparseRows rows{&x};
  return run_tree(rows, params);
}

BinaryPartition balanced_kmeans_tree(LargeCsr&& x, const KMeansParams& params) {
  const CsrView view = x.view();
  check_sparse(view);
  SparseRows rows{&view};
  return run_tree(rows, params, &x);
}

SplitResult balanced_split(const DenseView& x, const std::vector<int32_t>& ids, int32_t init_right,
                           int32_t init_left, int max_iter, double tol) {
  DenseRows rows{&x};
  return run_split(rows, ids, init_right, init_left, max_iter, tol);
}

SplitResult balanced_split(const CsrView& x, const std::vector<int32_t>& ids, int32_t init_right,
                           int32_t init_left, int max_iter, double tol) {
  check_sparse(x);
  SparseRows rows{&x};
  return run_split(rows, ids, init_right, init_left, max_iter, tol);
}

}  // namespace xmc
