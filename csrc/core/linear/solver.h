// Binary L2-regularised linear classifiers by dual coordinate descent
// (Hsieh et al. 2008 for the squared hinge, Yu et al. 2011 for the logistic
// loss), the liblinear solvers PECOS and napkinXC also use per tree node.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace xmc {
namespace linear {

enum class Loss { SquaredHinge, Logistic };

// "squared_hinge" | "logistic"; throws std::invalid_argument otherwise.
Loss parse_loss(const std::string& name);

struct SolverParams {
  Loss loss = Loss::SquaredHinge;
  double Cp = 1.0;  // cost of a positive example
  double Cn = 1.0;  // cost of a negative example
  double eps = 0.1;
  int max_iter = 100;
  double bias = 1.0;  // value of the implicit last feature; its weight is regularised too (liblinear)
};

// One stored feature of a row. Column and value side by side: the solver's
// inner loops then read a single stream instead of two.
struct Entry {
  int32_t col;
  float val;
};

// Rows of one binary problem in CSR with compact column ids. The bias is not
// stored: every row implicitly ends with a feature of value params.bias.
struct ProblemRows {
  int64_t rows = 0;
  int64_t cols = 0;
  const int64_t* indptr = nullptr;
  const Entry* entries = nullptr;
  const double* sq_norms = nullptr;  // x.x per row without the bias; nullptr: computed here
};

// Scratch reused across problems so a thread allocates once per layer.
struct SolverWorkspace {
  std::vector<double> alpha;
  std::vector<double> qd;
  std::vector<int32_t> index;
};

// Small, fast, seedable generator: the coordinate order must depend only on
// the seed, never on the thread that trains the problem.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) by Lemire's multiply-shift (bias below 2^-32 for our n).
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(((next() >> 32) * n) >> 32); }

 private:
  uint64_t state_;
};

// Minimises 0.5 |w|^2 + sum_i C_i loss(y_i w.[x_i, bias]) with y_i in {-1, +1}.
// w gets rows.cols + 1 entries, the last one the bias weight. Returns the
// number of outer iterations run.
int solve_binary(const ProblemRows& rows, const int8_t* y, const SolverParams& params, uint64_t seed,
                 std::vector<double>& w, SolverWorkspace& ws);

}  // namespace linear
}  // namespace xmc
