// Balanced hierarchical spherical 2-means over label embeddings.
//
// Every cluster is split exactly in half: points are ranked by the difference of
// their cosine similarity to the two (re-normalised) centroids and the lower half
// goes left. Repeating this level by level until clusters hold at most
// max_leaf_size points gives a binary tree whose leaves all sit at the same depth
// and whose sizes at a level differ by at most one (the shape depends only on the
// number of points, the content only on the embeddings and the seed).
//
// The routines that take views never write the caller's embeddings: sparse rows are
// copied in each level's cluster order into buffers of their own. The overload that
// takes a LargeCsr by rvalue reuses that matrix's storage as one of those buffers.
#pragma once
#include <cstdint>
#include <vector>

#include "core/common/sparse.h"

namespace xmc {

// Row-major dense matrix owned by the caller.
struct DenseView {
  int64_t rows = 0;
  int64_t cols = 0;
  const float* data = nullptr;  // rows * cols, C order
};

struct KMeansParams {
  int64_t max_leaf_size = 100;
  int max_iter = 20;
  // A split stops once at most tol x (its points) change halves in an iteration; 0 waits
  // for no change at all. Big clusters spend many passes moving a few points each.
  double tol = 0.0;
  // A cluster of more than split_sample points runs its 2-means on split_sample of them drawn at
  // random, then a few Lloyd passes over all of its points from the sample's centroids; 0: never sample.
  int64_t split_sample = 0;
  uint64_t seed = 0;
  int threads = 0;  // <= 0: all cores
};

// Output of the binary recursion. Level d holds the clusters
// order[bounds[d][j] : bounds[d][j+1]]; bounds[0] = {0, n}. Within each cluster
// of every level the ids are sorted, so the result is canonical.
struct BinaryPartition {
  std::vector<int32_t> order;
  std::vector<std::vector<int64_t>> bounds;
};

BinaryPartition balanced_kmeans_tree(const DenseView& x, const KMeansParams& params);
BinaryPartition balanced_kmeans_tree(const CsrView& x, const KMeansParams& params);
// The same tree as for x.view(), with x's arrays reused as scratch: the levels move the rows
// between two copies, and x's storage becomes one of them. At millions of labels that is
// gigabytes the run neither allocates nor writes for the first time. x is left unspecified.
BinaryPartition balanced_kmeans_tree(LargeCsr&& x, const KMeansParams& params);

// One balanced split of the points `ids`, started from the centroids
// x[init_right] and x[init_left]. Returns the ids sent right (higher similarity
// to the right centroid), sorted, and the number of iterations run. Exposed so a
// test can compare it with a plain numpy implementation.
struct SplitResult {
  std::vector<int32_t> left;
  std::vector<int32_t> right;
  int iterations = 0;
};

SplitResult balanced_split(const DenseView& x, const std::vector<int32_t>& ids, int32_t init_right,
                           int32_t init_left, int max_iter, double tol = 0.0);
SplitResult balanced_split(const CsrView& x, const std::vector<int32_t>& ids, int32_t init_right,
                           int32_t init_left, int max_iter, double tol = 0.0);

// The random generator that picks each cluster's initial centroids, so Python can
// reproduce the choice: splitmix64 seeded from (seed, node id).
uint64_t cluster_seed(uint64_t seed, uint64_t node_id);
uint64_t splitmix64_next(uint64_t& state);

}  // namespace xmc
