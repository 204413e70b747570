// Fused label-wise attention on the CPU: for every document b and (candidate) label c,
// a softmax over the document's real tokens of h_t . q_c and the weighted sum of the h_t.
// Plain C++17; the per-element math lives in attention_math.h, shared with the CUDA kernels.
#pragma once
#include <cstdint>

namespace xmc {
namespace ops {

// Non-owning, C-contiguous inputs. H: (B, T, D); mask: (B, T), nonzero = real token;
// Q: (L, D); candidates: (B, C) label ids, or nullptr for all labels (then C == L).
template <typename Real>
struct AttentionInputs {
  const Real* H = nullptr;
  const uint8_t* mask = nullptr;
  const Real* Q = nullptr;
  const int64_t* candidates = nullptr;
  int64_t batch = 0;
  int64_t tokens = 0;
  int64_t dim = 0;
  int64_t labels = 0;
  int64_t cand_per_doc = 0;
};

// Throws std::invalid_argument on inconsistent sizes and std::out_of_range on a
// candidate id outside [0, labels), naming the document and position.
template <typename Real>
void check_attention_inputs(const AttentionInputs<Real>& in);

// out: (B, C, D); lse: (B, C) log-sum-exp of the scores, -inf for an all-padding document.
template <typename Real>
void label_attention_forward(const AttentionInputs<Real>& in, Real* out, Real* lse, int threads);

// Gradients from the forward's out and lse (scores recomputed; nothing of size B*C*T is stored).
// grad_H: (B, T, D) and grad_Q: (L, D) are overwritten.
template <typename Real>
void label_attention_backward(const AttentionInputs<Real>& in, const Real* out, const Real* lse,
                              const Real* grad_out, Real* grad_H, Real* grad_Q, int threads);

}  // namespace ops
}  // namespace xmc
