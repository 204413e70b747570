// Per-element math of label-wise attention, shared by the CPU kernel
// (csrc/ops/label_attention.cpp) and the CUDA kernels (csrc/cuda/label_attention.cu),
// so the CPU tests exercise the exact arithmetic the GPU runs.
//
// For one document and one label q: s_t = h_t . q over the real tokens,
// p_t = exp(s_t - lse), out = sum_t p_t h_t, lse = log sum_t exp(s_t).
// Backward (flash-attention style, nothing of size T kept from the forward):
//   delta = gO . out, dp_t = gO . h_t, ds_t = p_t (dp_t - delta),
//   dH_t += p_t gO + ds_t q, dq += ds_t h_t.
// A document without real tokens has lse = -inf and contributes zeros.
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define XMC_HOST_DEVICE __host__ __device__
#else
#define XMC_HOST_DEVICE
#endif

namespace xmc {
namespace ops {

// expf/logf for float so neither host nor device silently widens to double.
XMC_HOST_DEVICE inline float math_exp(float x) { return expf(x); }
XMC_HOST_DEVICE inline double math_exp(double x) { return exp(x); }
XMC_HOST_DEVICE inline float math_log(float x) { return logf(x); }
XMC_HOST_DEVICE inline double math_log(double x) { return log(x); }

template <typename T>
XMC_HOST_DEVICE inline T neg_inf() {
  return -static_cast<T>(INFINITY);
}

// Serial dot product; the host build lets OpenMP vectorise the reduction.
template <typename T>
XMC_HOST_DEVICE inline T dot(const T* a, const T* b, int64_t n) {
  T acc = 0;
#if defined(_OPENMP) && !defined(__CUDACC__)
#pragma omp simd reduction(+ : acc)
#endif
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

// Running max and running sum of exp(s - max) of an online softmax.
template <typename T>
struct SoftmaxState {
  T max;
  T sum;
};

template <typename T>
XMC_HOST_DEVICE inline SoftmaxState<T> softmax_init() {
  return SoftmaxState<T>{neg_inf<T>(), T(0)};
}

// Raises the running max to at least `new_max` and returns the factor by which
// accumulated sums (the state's and the caller's weighted sum of token states)
// must be multiplied. The first real score turns the factor into 0 so nothing
// is read from uninitialised accumulators' old scale.
template <typename T>
XMC_HOST_DEVICE inline T softmax_raise_max(SoftmaxState<T>& st, T new_max) {
  if (!(new_max > st.max)) return T(1);
  T factor = st.max == neg_inf<T>() ? T(0) : math_exp(st.max - new_max);
  st.sum *= factor;
  st.max = new_max;
  return factor;
}

// Weight of one score under the current max; adds it to the running sum.
template <typename T>
XMC_HOST_DEVICE inline T softmax_add(SoftmaxState<T>& st, T s) {
  T w = math_exp(s - st.max);
  st.sum += w;
  return w;
}

// log sum exp of everything added; -inf when nothing was (an all-padding document).
template <typename T>
XMC_HOST_DEVICE inline T softmax_lse(const SoftmaxState<T>& st) {
  return st.sum > T(0) ? st.max + math_log(st.sum) : neg_inf<T>();
}

// 1 / sum for the final normalisation; 0 for an all-padding document so its output is 0.
template <typename T>
XMC_HOST_DEVICE inline T softmax_inv_sum(const SoftmaxState<T>& st) {
  return st.sum > T(0) ? T(1) / st.sum : T(0);
}

// Probability of score s recomputed from the saved log-sum-exp.
template <typename T>
XMC_HOST_DEVICE inline T prob_from_lse(T s, T lse) {
  return lse == neg_inf<T>() ? T(0) : math_exp(s - lse);
}

// d loss / d s_t of the softmax-weighted sum: p_t (gO . h_t - gO . out).
template <typename T>
XMC_HOST_DEVICE inline T score_grad(T p, T dp, T delta) {
  return p * (dp - delta);
}

}  // namespace ops
}  // namespace xmc
