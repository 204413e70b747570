// One layer of a probabilistic label tree: a binary classifier per child node,
// trained on the documents positive at its parent (Parabel / XR-Linear
// negatives). The layout follows xmc/tree/label_tree.py.
#pragma once
#include <cstdint>
#include <vector>

#include "core/common/sparse.h"
#include "core/linear/solver.h"

namespace xmc {
namespace linear {

struct LayerProblem {
  CsrView X;  // docs x features
  int64_t n_parents = 1;
  // Documents of parent p: parent_docs[parent_doc_ptr[p] : parent_doc_ptr[p+1]], sorted.
  // parent_doc_ptr == nullptr: a single parent (the root) holding every document.
  const int64_t* parent_doc_ptr = nullptr;
  const int32_t* parent_docs = nullptr;
  const int64_t* child_ptr = nullptr;  // n_parents + 1: children of p are child_ptr[p] .. child_ptr[p+1]
  CsrView Y;                           // docs x children: 1 where the child holds one of the doc's labels
};

struct LayerParams {
  SolverParams solver;
  double weight_threshold = 0.1;  // |w| below it is dropped so the model stays sparse
  uint64_t seed = 0;
  int layer = 0;  // mixed into every child's seed so layers draw different orders
  int threads = 0;
  // Only children [child_begin, child_end) are trained (child_end < 0: to the last); the other
  // columns stay empty. Ranks of a distributed run each train one range: since a child's
  // seed depends on its global index only, the merged columns equal a single process's.
  int64_t child_begin = 0;
  int64_t child_end = -1;
};

// Column-major weights: column c is child c; rows are the features plus the bias (last row).
// Same arrays as CsrMatrix, with indptr running over the columns.
using CscMatrix = CsrMatrix;

// Seed of one child's coordinate order: a function of (seed, layer, child) only,
// so the weights do not depend on the thread count or the schedule.
uint64_t child_seed(uint64_t seed, int layer, int64_t child);

CscMatrix train_layer(const LayerProblem& problem, const LayerParams& params);

}  // namespace linear
}  // namespace xmc
