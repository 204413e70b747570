#include "core/linear/plt_train.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <cmath>
#include <memory>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>

#include "core/common/parallel.h"

namespace xmc {
namespace linear {

uint64_t child_seed(uint64_t seed, int layer, int64_t child) {
  SplitMix64 mix(seed ^ (static_cast<uint64_t>(layer) << 48) ^ 0x5DEECE66DULL);
  uint64_t s = mix.next() ^ static_cast<uint64_t>(child);
  return SplitMix64(s).next();
}

namespace {

// A parent's documents copied into a contiguous CSR over the features they
// use, so every child of the parent scans compact rows and a small weight vector.
struct ParentData {
  int64_t rows = 0;
  std::vector<int64_t> indptr;
  std::vector<Entry> entries;
  std::vector<double> sq_norms;
  std::vector<int32_t> features;                // local column -> global feature id (ascending)
  std::vector<std::vector<int32_t>> positives;  // per child of the parent: local rows with target 1

  ProblemRows view() const {
    ProblemRows r;
    r.rows = rows;
    r.cols = static_cast<int64_t>(features.size());
    r.indptr = indptr.data();
    r.entries = entries.data();
    r.sq_norms = sq_norms.data();
    return r;
  }
};

struct ThreadScratch {
  std::vector<int32_t> feature_map;  // global -> local, -1 when unused; reset after each parent
  std::vector<double> w;
  std::vector<int8_t> y;
  SolverWorkspace ws;
};

struct Task {
  int64_t parent;
  int64_t child_begin;
  int64_t child_end;
};

int64_t parent_size(const LayerProblem& P, int64_t p) {
  return P.parent_doc_ptr ? P.parent_doc_ptr[p + 1] - P.parent_doc_ptr[p] : P.X.rows;
}

int32_t parent_doc(const LayerProblem& P, int64_t p, int64_t k) {
  return P.parent_doc_ptr ? P.parent_docs[P.parent_doc_ptr[p] + k] : static_cast<int32_t>(k);
}

std::unique_ptr<ParentData> gather_parent(const LayerProblem& P, int64_t p, std::vector<int32_t>& fmap) {
  auto d = std::make_unique<ParentData>();
  const CsrView& X = P.X;
  const int64_t n = parent_size(P, p);
  d->rows = n;
  d->indptr.resize(n + 1);
  d->indptr[0] = 0;
  for (int64_t k = 0; k < n; ++k) {
    const int32_t doc = parent_doc(P, p, k);
    d->indptr[k + 1] = d->indptr[k] + X.row_nnz(doc);
    for (int64_t e = X.indptr[doc]; e < X.indptr[doc + 1]; ++e) {
      int32_t f = X.indices[e];
      if (fmap[f] < 0) {
        fmap[f] = 0;
        d->features.push_back(f);
      }
    }
  }
  // Ascending local ids keep each row's columns sorted and map back to sorted global rows.
  std::sort(d->features.begin(), d->features.end());
  for (size_t j = 0; j < d->features.size(); ++j) fmap[d->features[j]] = static_cast<int32_t>(j);
  d->entries.resize(d->indptr[n]);
  d->sq_norms.assign(n, 0.0);
  for (int64_t k = 0; k < n; ++k) {
    const int32_t doc = parent_doc(P, p, k);
    int64_t out = d->indptr[k];
    double sq = 0.0;
    for (int64_t e = X.indptr[doc]; e < X.indptr[doc + 1]; ++e, ++out) {
      const float v = X.value(e);
      d->entries[out] = Entry{fmap[X.indices[e]], v};
      sq += static_cast<double>(v) * v;
    }
    d->sq_norms[k] = sq;
  }
  for (int32_t f : d->features) fmap[f] = -1;

  const int64_t c0 = P.child_ptr[p], c1 = P.child_ptr[p + 1];
  d->positives.resize(c1 - c0);
  const CsrView& Y = P.Y;
  for (int64_t k = 0; k < n; ++k) {
    const int32_t doc = parent_doc(P, p, k);
    const int32_t* begin = Y.indices + Y.indptr[doc];
    const int32_t* end = Y.indices + Y.indptr[doc + 1];
    for (const int32_t* it = std::lower_bound(begin, end, static_cast<int32_t>(c0)); it != end && *it < c1; ++it)
      d->positives[*it - c0].push_back(static_cast<int32_t>(k));
  }
  return d;
}

void check_problem(const LayerProblem& P) {
  if (P.Y.rows != P.X.rows)
    throw std::invalid_argument("targets have " + std::to_string(P.Y.rows) + " rows but X has " +
                                std::to_string(P.X.rows));
  if (P.n_parents < 1 || !P.child_ptr) throw std::invalid_argument("a layer needs at least one parent");
  if (!P.parent_doc_ptr && P.n_parents != 1)
    throw std::invalid_argument("only a single parent may implicitly hold every document");
  if (P.child_ptr[0] != 0 || P.child_ptr[P.n_parents] != P.Y.cols)
    throw std::invalid_argument("child pointers must run from 0 to the number of target columns (" +
                                std::to_string(P.Y.cols) + ")");
  for (int64_t p = 0; p < P.n_parents; ++p) {
    if (P.child_ptr[p + 1] < P.child_ptr[p]) throw std::invalid_argument("child pointers must not decrease");
    for (int64_t k = 0; P.parent_doc_ptr && k < parent_size(P, p); ++k) {
      const int32_t doc = parent_doc(P, p, k);
      if (doc < 0 || doc >= P.X.rows)
        throw std::invalid_argument("parent " + std::to_string(p) + " lists document " + std::to_string(doc) +
                                    " outside 0.." + std::to_string(P.X.rows - 1));
    }
  }
  for (int64_t e = 0; e < P.X.nnz(); ++e)
    if (P.X.indices[e] < 0 || P.X.indices[e] >= P.X.cols)
      throw std::invalid_argument("feature id " + std::to_string(P.X.indices[e]) + " outside 0.." +
                                  std::to_string(P.X.cols - 1));
}

}  // namespace

CscMatrix train_layer(const LayerProblem& P, const LayerParams& params) {
  check_problem(P);
  const int threads = resolve_threads(params.threads);
  const int64_t n_parents = P.n_parents;
  const int64_t n_children = P.Y.cols;
  const int64_t first = std::clamp<int64_t>(params.child_begin, 0, n_children);
  const int64_t last = params.child_end < 0 ? n_children : std::clamp<int64_t>(params.child_end, first, n_children);
  // The children of parent p that this call trains.
  auto kept_begin = [&](int64_t p) { return std::clamp(P.child_ptr[p], first, last); };
  auto kept_end = [&](int64_t p) { return std::clamp(P.child_ptr[p + 1], first, last); };

  // Cost of a parent ~ nnz of its documents times its children: schedule the big ones first.
  std::vector<double> cost(n_parents, 0.0);
  for (int64_t p = 0; p < n_parents; ++p) {
    if (kept_begin(p) == kept_end(p)) continue;
    double nnz = 0;
    if (P.parent_doc_ptr) {
      for (int64_t k = 0; k < parent_size(P, p); ++k) nnz += P.X.row_nnz(parent_doc(P, p, k)) + 1;
    } else {
      nnz = static_cast<double>(P.X.nnz() + P.X.rows);
    }
    cost[p] = nnz * static_cast<double>(kept_end(p) - kept_begin(p));
  }
  const double total = std::accumulate(cost.begin(), cost.end(), 0.0);
  std::vector<int64_t> order(n_parents);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cost[a] > cost[b]; });

  // A parent too big for one thread is split into one task per child; its
  // gathered rows are built once and freed by whichever task finishes last.
  std::vector<Task> tasks;
  std::vector<int> chunks(n_parents, 0);
  for (int64_t p : order) {
    const int64_t c0 = kept_begin(p), c1 = kept_end(p);
    if (c0 == c1) continue;
    if (threads > 1 && cost[p] * 4.0 * threads > total) {
      for (int64_t c = c0; c < c1; ++c) tasks.push_back({p, c, c + 1});
      chunks[p] = static_cast<int>(c1 - c0);
    } else {
      tasks.push_back({p, c0, c1});
      chunks[p] = 1;
    }
  }
  std::unique_ptr<std::once_flag[]> built(new std::once_flag[n_parents]);
  std::vector<std::shared_ptr<ParentData>> parents(n_parents);
  std::unique_ptr<std::atomic<int>[]> remaining(new std::atomic<int>[n_parents]);
  for (int64_t p = 0; p < n_parents; ++p) remaining[p].store(chunks[p]);

  std::vector<std::vector<int32_t>> out_idx(n_children);
  std::vector<std::vector<float>> out_val(n_children);
  std::vector<ThreadScratch> scratch(threads);
  const int32_t bias_row = static_cast<int32_t>(P.X.cols);
  const double thr = params.weight_threshold;
  const int64_t n_tasks = static_cast<int64_t>(tasks.size());
  std::exception_ptr error;
  std::mutex error_lock;

#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t t = 0; t < n_tasks; ++t) {
    try {
      ThreadScratch& s = scratch[thread_id()];
      const Task& task = tasks[t];
      const int64_t p = task.parent;
      std::call_once(built[p], [&] {
        if (s.feature_map.empty()) s.feature_map.assign(P.X.cols, -1);
        parents[p] = gather_parent(P, p, s.feature_map);
      });
      std::shared_ptr<ParentData> d = parents[p];
      const ProblemRows rows = d->view();
      const int64_t c0 = P.child_ptr[p];
      for (int64_t c = task.child_begin; c < task.child_end; ++c) {
        s.y.assign(d->rows, -1);
        for (int32_t k : d->positives[c - c0]) s.y[k] = 1;
        solve_binary(rows, s.y.data(), params.solver, child_seed(params.seed, params.layer, c), s.w, s.ws);
        std::vector<int32_t>& idx = out_idx[c];
        std::vector<float>& val = out_val[c];
        for (int64_t j = 0; j < rows.cols; ++j) {
          if (std::fabs(s.w[j]) >= thr) {
            idx.push_back(d->features[j]);
            val.push_back(static_cast<float>(s.w[j]));
          }
        }
        if (std::fabs(s.w[rows.cols]) >= thr) {
          idx.push_back(bias_row);
          val.push_back(static_cast<float>(s.w[rows.cols]));
        }
      }
      if (remaining[p].fetch_sub(1) == 1) parents[p].reset();
    } catch (...) {
      std::lock_guard<std::mutex> g(error_lock);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);

  CscMatrix W;
  W.rows = P.X.cols + 1;
  W.cols = n_children;
  W.indptr.assign(n_children + 1, 0);
  for (int64_t c = 0; c < n_children; ++c) W.indptr[c + 1] = W.indptr[c] + static_cast<int64_t>(out_idx[c].size());
  W.indices.resize(W.indptr[n_children]);
  W.data.resize(W.indptr[n_children]);
  for (int64_t c = 0; c < n_children; ++c) {
    std::copy(out_idx[c].begin(), out_idx[c].end(), W.indices.begin() + W.indptr[c]);
    std::copy(out_val[c].begin(), out_val[c].end(), W.data.begin() + W.indptr[c]);
    std::vector<int32_t>().swap(out_idx[c]);
    std::vector<float>().swap(out_val[c]);
  }
  return W;
}

}  // namespace linear
}  // namespace xmc
