// Dynamic graph propagation on the CPU (LDGN's re-learning step): per document b,
// out[b] = D^-1/2 S D^-1/2 H[b] with S = sigmoid(Qa[b] Kb[b]^T) (labels x labels) and D the
// diagonal of S's row sums, clamped below at min_degree. S is never stored: it is rebuilt in
// cache-sized tiles, twice in the forward (degrees, then the product) and twice in the backward.
// The reference and the derivation of the backward are in xmc/ops/dynamic_graph.py.
#pragma once
#include <cstdint>

namespace xmc {
namespace ops {

// Non-owning, C-contiguous. Qa, Kb: (B, L, d); H: (B, L, D).
template <typename Real>
struct DynamicGraphInputs {
  const Real* Qa = nullptr;
  const Real* Kb = nullptr;
  const Real* H = nullptr;
  int64_t batch = 0;
  int64_t labels = 0;
  int64_t width = 0;  // d
  int64_t dim = 0;    // D
  Real min_degree = Real(1e-6);
};

// out (B, L, D) and degrees (B, L), the unclamped row sums of S the backward needs; both overwritten.
template <typename Real>
void dynamic_graph_forward(const DynamicGraphInputs<Real>& in, Real* out, Real* degrees, int threads);

// From the forward's degrees and out and the output gradient grad_out (B, L, D): grad_Qa,
// grad_Kb (B, L, d) and grad_H (B, L, D), overwritten. No gradient flows through a clamped degree.
template <typename Real>
void dynamic_graph_backward(const DynamicGraphInputs<Real>& in, const Real* degrees, const Real* out,
                            const Real* grad_out, Real* grad_Qa, Real* grad_Kb, Real* grad_H, int threads);

}  // namespace ops
}  // namespace xmc
