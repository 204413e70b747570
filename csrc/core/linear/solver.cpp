#include "core/linear/solver.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/common/prefetch.h"

namespace xmc {
namespace linear {

Loss parse_loss(const std::string& name) {
  if (name == "squared_hinge") return Loss::SquaredHinge;
  if (name == "logistic") return Loss::Logistic;
  throw std::invalid_argument("unknown loss '" + name + "': expected 'squared_hinge' or 'logistic'");
}

namespace {

// Raw pointers hoisted out of ProblemRows so the hot loops keep them in registers.
struct RowAccess {
  const int64_t* indptr;
  const Entry* entries;
  const double* sq_norms;
  int64_t rows;
  int64_t cols;
  double bias;

  RowAccess(const ProblemRows& r, double b)
      : indptr(r.indptr), entries(r.entries), sq_norms(r.sq_norms), rows(r.rows), cols(r.cols), bias(b) {}

  double dot(const double* w, int64_t i) const {
    double s = bias * w[cols];
    const Entry* e = entries + indptr[i + 1];
    for (const Entry* p = entries + indptr[i]; p != e; ++p) s += w[p->col] * p->val;
    return s;
  }

  void axpy(double a, int64_t i, double* w) const {
    w[cols] += a * bias;
    const Entry* e = entries + indptr[i + 1];
    for (const Entry* p = entries + indptr[i]; p != e; ++p) w[p->col] += a * p->val;
  }

  // The coordinate order is random, so the next row is a cache miss unless requested early.
  void prefetch_row(int64_t i) const {
    const Entry* p = entries + indptr[i];
    xmc::prefetch(p);
    xmc::prefetch(p + 8);
  }

  double sq_norm(int64_t i) const {
    double s = bias * bias;
    if (sq_norms) return s + sq_norms[i];
    for (int64_t k = indptr[i]; k < indptr[i + 1]; ++k) s += static_cast<double>(entries[k].val) * entries[k].val;
    return s;
  }
};

// Fisher-Yates over the active prefix, as liblinear does every outer iteration.
void shuffle(std::vector<int32_t>& index, int64_t n, SplitMix64& rng) {
  for (int64_t i = 0; i + 1 < n; ++i) {
    const int64_t j = i + rng.below(static_cast<uint32_t>(n - i));
    std::swap(index[i], index[j]);
  }
}

// liblinear's solve_l2r_l1l2_svc for the L2 loss: the dual box is [0, inf)
// and the loss enters through the diagonal 1/(2C). Shrinking drops a
// coordinate at its bound whose gradient exceeds the last pass's maximum.
int solve_squared_hinge(const RowAccess& X, const int8_t* y, const SolverParams& p, SplitMix64& rng,
                        std::vector<double>& w, SolverWorkspace& ws) {
  const int64_t l = X.rows;
  double* wp = w.data();
  const double inf = std::numeric_limits<double>::infinity();
  const double diag_p = 0.5 / p.Cp, diag_n = 0.5 / p.Cn;
  ws.alpha.assign(l, 0.0);
  ws.qd.resize(l);
  ws.index.resize(l);
  for (int64_t i = 0; i < l; ++i) {
    ws.qd[i] = X.sq_norm(i) + (y[i] > 0 ? diag_p : diag_n);
    ws.index[i] = static_cast<int32_t>(i);
  }
  double pg_max_old = inf, pg_min_old = -inf;
  int64_t active = l;
  int iter = 0;
  while (iter < p.max_iter) {
    double pg_max_new = -inf, pg_min_new = inf;
    shuffle(ws.index, active, rng);
    for (int64_t s = 0; s < active; ++s) {
      const int32_t i = ws.index[s];
      if (s + 1 < active) X.prefetch_row(ws.index[s + 1]);
      const double yi = y[i];
      const double diag = yi > 0 ? diag_p : diag_n;
      const double g = yi * X.dot(wp, i) - 1.0 + ws.alpha[i] * diag;
      double pg = 0.0;
      if (ws.alpha[i] == 0.0) {
        if (g > pg_max_old) {
          --active;
          std::swap(ws.index[s], ws.index[active]);
          --s;
          continue;
        }
        if (g < 0) pg = g;
      } else {
        pg = g;
      }
      pg_max_new = std::max(pg_max_new, pg);
      pg_min_new = std::min(pg_min_new, pg);
      if (std::fabs(pg) > 1e-12) {
        const double old = ws.alpha[i];
        ws.alpha[i] = std::max(old - g / ws.qd[i], 0.0);
        X.axpy((ws.alpha[i] - old) * yi, i, wp);
      }
    }
    ++iter;
    if (pg_max_new - pg_min_new <= p.eps) {
      if (active == l) break;
      // Converged on the shrunk set: check every coordinate once more.
      active = l;
      pg_max_old = inf;
      pg_min_old = -inf;
      continue;
    }
    pg_max_old = pg_max_new > 0 ? pg_max_new : inf;
    pg_min_old = pg_min_new < 0 ? pg_min_new : -inf;
  }
  (void)pg_min_old;
  return iter;
}

// liblinear's solve_l2r_lr_dual: each coordinate pair (alpha_i, C - alpha_i)
// is a 1-d convex problem solved by a safeguarded Newton method.
int solve_logistic(const RowAccess& X, const int8_t* y, const SolverParams& p, SplitMix64& rng,
                   std::vector<double>& w, SolverWorkspace& ws) {
  const int64_t l = X.rows;
  double* wp = w.data();
  const int max_inner_iter = 100;
  double innereps = 1e-2;
  const double innereps_min = std::min(1e-8, p.eps);
  ws.alpha.resize(2 * l);
  ws.qd.resize(l);
  ws.index.resize(l);
  for (int64_t i = 0; i < l; ++i) {
    const double c = y[i] > 0 ? p.Cp : p.Cn;
    ws.alpha[2 * i] = std::min(0.001 * c, 1e-8);
    ws.alpha[2 * i + 1] = c - ws.alpha[2 * i];
    ws.qd[i] = X.sq_norm(i);
    ws.index[i] = static_cast<int32_t>(i);
    X.axpy(y[i] * ws.alpha[2 * i], i, wp);
  }
  int iter = 0;
  while (iter < p.max_iter) {
    shuffle(ws.index, l, rng);
    int64_t newton_iter = 0;
    double g_max = 0.0;
    for (int64_t s = 0; s < l; ++s) {
      const int32_t i = ws.index[s];
      if (s + 1 < l) X.prefetch_row(ws.index[s + 1]);
      const double yi = y[i];
      const double c = yi > 0 ? p.Cp : p.Cn;
      const double a = ws.qd[i];
      const double b = yi * X.dot(wp, i);
      int64_t ind1 = 2 * i, ind2 = 2 * i + 1;
      double sign = 1.0;
      if (0.5 * a * (ws.alpha[ind2] - ws.alpha[ind1]) + b < 0) {
        std::swap(ind1, ind2);
        sign = -1.0;
      }
      const double alpha_old = ws.alpha[ind1];
      double z = alpha_old;
      if (c - z < 0.5 * c) z *= 0.1;
      double gp = a * (z - alpha_old) + sign * b + std::log(z / (c - z));
      g_max = std::max(g_max, std::fabs(gp));
      int inner = 0;
      while (inner <= max_inner_iter) {
        if (std::fabs(gp) < innereps) break;
        const double gpp = a + c / (c - z) / z;
        const double tmpz = z - gp / gpp;
        z = tmpz <= 0 ? z * 0.1 : tmpz;
        gp = a * (z - alpha_old) + sign * b + std::log(z / (c - z));
        ++newton_iter;
        ++inner;
      }
      if (inner > 0) {
        ws.alpha[ind1] = z;
        ws.alpha[ind2] = c - z;
        X.axpy(sign * (z - alpha_old) * yi, i, wp);
      }
    }
    ++iter;
    if (g_max < p.eps) break;
    if (newton_iter <= l / 10) innereps = std::max(innereps_min, 0.1 * innereps);
  }
  return iter;
}

}  // namespace

int solve_binary(const ProblemRows& rows, const int8_t* y, const SolverParams& params, uint64_t seed,
                 std::vector<double>& w, SolverWorkspace& ws) {
  if (!(params.Cp > 0) || !(params.Cn > 0)) throw std::invalid_argument("C must be positive");
  w.assign(rows.cols + 1, 0.0);
  if (rows.rows == 0) return 0;
  SplitMix64 rng(seed);
  RowAccess X{rows, params.bias};
  if (params.loss == Loss::SquaredHinge) return solve_squared_hinge(X, y, params, rng, w, ws);
  return solve_logistic(X, y, params, rng, w, ws);
}

}  // namespace linear
}  // namespace xmc
