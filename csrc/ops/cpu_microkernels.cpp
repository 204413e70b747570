#include "ops/cpu_microkernels.h"

#include <algorithm>
#include <cstring>

// x86-64 GCC 12+ gets an x86-64-v3 (AVX2+FMA) clone of each kernel besides the baseline one.
// Not "arch=haswell": its resolver tests the CPU model (Intel Haswell), not the features,
// so an AMD EPYC with AVX2 would run the baseline clone.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define XMC_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define XMC_CPU_CLONES
#endif
#define XMC_ALWAYS_INLINE inline __attribute__((always_inline))

namespace xmc {
namespace ops {
namespace cpu {
namespace {

template <typename Real>
struct Simd {
  typedef Real V __attribute__((vector_size(32)));
  static constexpr int64_t kLanes = 32 / sizeof(Real);
};

template <typename V, typename Real>
XMC_ALWAYS_INLINE V vload(const Real* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename V, typename Real>
XMC_ALWAYS_INLINE void vstore(Real* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

template <typename V, typename Real>
XMC_ALWAYS_INLINE Real hsum(V v) {
  Real total = 0;
  for (int64_t i = 0; i < Simd<Real>::kLanes; ++i) total += v[i];
  return total;
}

// 2 query rows x 4 token rows: 8 accumulators over D-vectors, 6 loads per 8 FMAs; rows are
// read contiguously (a transposed layout would stride by a power of two and thrash L1 sets).
template <typename Real>
XMC_ALWAYS_INLINE void scores_2_impl(const Real* q0, const Real* q1, const Real* const* rows, int64_t n, int64_t D,
                                     Real* s0, Real* s1) {
  using V = typename Simd<Real>::V;
  constexpr int64_t W = Simd<Real>::kLanes;
  const int64_t Dv = D / W * W;
  for (int64_t j = 0; j < n; j += 4) {
    // A short last group repeats its last row; the extra results are not stored.
    const Real* h0 = rows[j];
    const Real* h1 = rows[std::min(j + 1, n - 1)];
    const Real* h2 = rows[std::min(j + 2, n - 1)];
    const Real* h3 = rows[std::min(j + 3, n - 1)];
    V a0{}, a1{}, a2{}, a3{}, b0{}, b1{}, b2{}, b3{};
    for (int64_t d = 0; d < Dv; d += W) {
      const V u = vload<V>(q0 + d), v = vload<V>(q1 + d);
      const V x0 = vload<V>(h0 + d), x1 = vload<V>(h1 + d), x2 = vload<V>(h2 + d), x3 = vload<V>(h3 + d);
      a0 += u * x0;
      a1 += u * x1;
      a2 += u * x2;
      a3 += u * x3;
      b0 += v * x0;
      b1 += v * x1;
      b2 += v * x2;
      b3 += v * x3;
    }
    Real r[8] = {hsum<V, Real>(a0), hsum<V, Real>(a1), hsum<V, Real>(a2), hsum<V, Real>(a3),
                 hsum<V, Real>(b0), hsum<V, Real>(b1), hsum<V, Real>(b2), hsum<V, Real>(b3)};
    for (int64_t d = Dv; d < D; ++d) {  // the tail of D that is not a whole vector
      r[0] += q0[d] * h0[d];
      r[1] += q0[d] * h1[d];
      r[2] += q0[d] * h2[d];
      r[3] += q0[d] * h3[d];
      r[4] += q1[d] * h0[d];
      r[5] += q1[d] * h1[d];
      r[6] += q1[d] * h2[d];
      r[7] += q1[d] * h3[d];
    }
    for (int64_t k = 0; k < 4 && j + k < n; ++k) {
      s0[j + k] = r[k];
      s1[j + k] = r[4 + k];
    }
  }
}

// 2 output rows x 4 vectors of D: 8 accumulators stay in registers across the n terms.
template <typename Real>
XMC_ALWAYS_INLINE void combine_2_impl(Real* out0, Real* out1, const Real* w0, const Real* w1,
                                      const Real* const* rows, int64_t n, int64_t D) {
  using V = typename Simd<Real>::V;
  constexpr int64_t W = Simd<Real>::kLanes;
  int64_t d0 = 0;
  for (; d0 + 4 * W <= D; d0 += 4 * W) {
    V a0 = vload<V>(out0 + d0), a1 = vload<V>(out0 + d0 + W), a2 = vload<V>(out0 + d0 + 2 * W),
      a3 = vload<V>(out0 + d0 + 3 * W);
    V b0 = vload<V>(out1 + d0), b1 = vload<V>(out1 + d0 + W), b2 = vload<V>(out1 + d0 + 2 * W),
      b3 = vload<V>(out1 + d0 + 3 * W);
    for (int64_t i = 0; i < n; ++i) {
      const Real* r = rows[i] + d0;
      const V x0 = vload<V>(r), x1 = vload<V>(r + W), x2 = vload<V>(r + 2 * W), x3 = vload<V>(r + 3 * W);
      const Real u = w0[i], v = w1[i];
      a0 += u * x0;
      a1 += u * x1;
      a2 += u * x2;
      a3 += u * x3;
      b0 += v * x0;
      b1 += v * x1;
      b2 += v * x2;
      b3 += v * x3;
    }
    vstore(out0 + d0, a0);
    vstore(out0 + d0 + W, a1);
    vstore(out0 + d0 + 2 * W, a2);
    vstore(out0 + d0 + 3 * W, a3);
    vstore(out1 + d0, b0);
    vstore(out1 + d0 + W, b1);
    vstore(out1 + d0 + 2 * W, b2);
    vstore(out1 + d0 + 3 * W, b3);
  }
  for (; d0 < D; ++d0) {  // the tail of D that is not a whole block
    Real a = out0[d0], b = out1[d0];
    for (int64_t i = 0; i < n; ++i) {
      a += w0[i] * rows[i][d0];
      b += w1[i] * rows[i][d0];
    }
    out0[d0] = a;
    out1[d0] = b;
  }
}

}  // namespace

XMC_CPU_CLONES void scores_2(const float* q0, const float* q1, const float* const* rows, int64_t n, int64_t D,
                             float* s0, float* s1) {
  scores_2_impl(q0, q1, rows, n, D, s0, s1);
}
XMC_CPU_CLONES void scores_2(const double* q0, const double* q1, const double* const* rows, int64_t n, int64_t D,
                             double* s0, double* s1) {
  scores_2_impl(q0, q1, rows, n, D, s0, s1);
}
XMC_CPU_CLONES void combine_2(float* out0, float* out1, const float* w0, const float* w1, const float* const* rows,
                              int64_t n, int64_t D) {
  combine_2_impl(out0, out1, w0, w1, rows, n, D);
}
XMC_CPU_CLONES void combine_2(double* out0, double* out1, const double* w0, const double* w1,
                              const double* const* rows, int64_t n, int64_t D) {
  combine_2_impl(out0, out1, w0, w1, rows, n, D);
}

}  // namespace cpu
}  // namespace ops
}  // namespace xmc
