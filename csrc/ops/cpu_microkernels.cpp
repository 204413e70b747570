#include "ops/cpu_microkernels.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "ops/cpu_simd.h"

namespace xmc {
namespace ops {
namespace cpu {
namespace {

using simd::Simd;
using simd::vload;
using simd::vstore;

// Lanes 0..W/2-1: sums of adjacent lane pairs of x; lanes W/2..W-1: the same for y.
template <typename V, std::size_t... I>
XMC_ALWAYS_INLINE V pair_sums(V x, V y, std::index_sequence<I...>) {
  return __builtin_shufflevector(x, y, (2 * I)...) + __builtin_shufflevector(x, y, (2 * I + 1)...);
}

// The 8 horizontal sums of a[0..7], in order, by a reduction tree of shuffles: a lane-by-lane
// sum per accumulator would cost more than the dot products themselves at 16 lanes.
template <typename Real, int VB>
XMC_ALWAYS_INLINE void reduce_8(const typename Simd<Real, VB>::V (&a)[8], Real* out) {
  using V = typename Simd<Real, VB>::V;
  constexpr int64_t W = Simd<Real, VB>::kLanes;
  static_assert(W == 4 || W == 8 || W == 16, "reduce_8 handles 4, 8 or 16 lanes");
  using Lanes = std::make_index_sequence<W>;
  const V l1[4] = {pair_sums(a[0], a[1], Lanes{}), pair_sums(a[2], a[3], Lanes{}), pair_sums(a[4], a[5], Lanes{}),
                   pair_sums(a[6], a[7], Lanes{})};
  const V l2[2] = {pair_sums(l1[0], l1[1], Lanes{}), pair_sums(l1[2], l1[3], Lanes{})};
  if constexpr (W == 4) {  // one lane per accumulator already
    std::memcpy(out, &l2[0], sizeof(V));
    std::memcpy(out + 4, &l2[1], sizeof(V));
  } else {
    V l3 = pair_sums(l2[0], l2[1], Lanes{});
    if constexpr (W == 16) l3 = pair_sums(l3, l3, Lanes{});
    std::memcpy(out, &l3, 8 * sizeof(Real));
  }
}

// 2 query rows x 4 token rows: 8 accumulators over D-vectors, 6 loads per 8 FMAs; rows are
// read contiguously (a transposed layout would stride by a power of two and thrash L1 sets).
template <typename Real, int VB>
XMC_ALWAYS_INLINE void scores_2_impl(const Real* q0, const Real* q1, const Real* const* rows, int64_t n, int64_t D,
                                     Real* s0, Real* s1) {
  using V = typename Simd<Real, VB>::V;
  constexpr int64_t W = Simd<Real, VB>::kLanes;
  const int64_t Dv = D / W * W;
  for (int64_t j = 0; j < n; j += 4) {
    // A short last group repeats its last row; the extra results are not stored.
    const Real* h0 = rows[j];
    const Real* h1 = rows[std::min(j + 1, n - 1)];
    const Real* h2 = rows[std::min(j + 2, n - 1)];
    const Real* h3 = rows[std::min(j + 3, n - 1)];
    V acc[8] = {};  // q0 x h0..h3, then q1 x h0..h3
    for (int64_t d = 0; d < Dv; d += W) {
      const V u = vload<V>(q0 + d), v = vload<V>(q1 + d);
      const V x0 = vload<V>(h0 + d), x1 = vload<V>(h1 + d), x2 = vload<V>(h2 + d), x3 = vload<V>(h3 + d);
      acc[0] += u * x0;
      acc[1] += u * x1;
      acc[2] += u * x2;
      acc[3] += u * x3;
      acc[4] += v * x0;
      acc[5] += v * x1;
      acc[6] += v * x2;
      acc[7] += v * x3;
    }
    Real r[8];
    reduce_8<Real, VB>(acc, r);
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

// 4 query rows x 4 token rows: 16 accumulators, 8 loads per 16 FMAs, half the loads per FMA of
// scores_2. Only for 512-bit vectors: with 16 registers (AVX2) the accumulators alone fill them.
template <typename Real, int VB>
XMC_ALWAYS_INLINE void scores_4_impl(const Real* const* q, const Real* const* rows, int64_t n, int64_t D,
                                     Real* const* s) {
  using V = typename Simd<Real, VB>::V;
  constexpr int64_t W = Simd<Real, VB>::kLanes;
  const int64_t Dv = D / W * W;
  for (int64_t j = 0; j < n; j += 4) {
    const Real* h[4];
    for (int k = 0; k < 4; ++k) h[k] = rows[std::min(j + k, n - 1)];  // a short last group repeats its last row
    V lo[8] = {}, hi[8] = {};  // q0, q1 x h0..h3, then q2, q3 x h0..h3
    for (int64_t d = 0; d < Dv; d += W) {
      const V u0 = vload<V>(q[0] + d), u1 = vload<V>(q[1] + d), u2 = vload<V>(q[2] + d), u3 = vload<V>(q[3] + d);
      const V x0 = vload<V>(h[0] + d), x1 = vload<V>(h[1] + d), x2 = vload<V>(h[2] + d), x3 = vload<V>(h[3] + d);
      lo[0] += u0 * x0;
      lo[1] += u0 * x1;
      lo[2] += u0 * x2;
      lo[3] += u0 * x3;
      lo[4] += u1 * x0;
      lo[5] += u1 * x1;
      lo[6] += u1 * x2;
      lo[7] += u1 * x3;
      hi[0] += u2 * x0;
      hi[1] += u2 * x1;
      hi[2] += u2 * x2;
      hi[3] += u2 * x3;
      hi[4] += u3 * x0;
      hi[5] += u3 * x1;
      hi[6] += u3 * x2;
      hi[7] += u3 * x3;
    }
    Real r[16];
    reduce_8<Real, VB>(lo, r);
    reduce_8<Real, VB>(hi, r + 8);
    for (int64_t d = Dv; d < D; ++d)  // the tail of D that is not a whole vector
      for (int c = 0; c < 4; ++c)
        for (int k = 0; k < 4; ++k) r[4 * c + k] += q[c][d] * h[k][d];
    for (int64_t k = 0; k < 4 && j + k < n; ++k)
      for (int c = 0; c < 4; ++c) s[c][j + k] = r[4 * c + k];
  }
}

// 2 output rows x 4 vectors of D: 8 accumulators stay in registers across the n terms.
template <typename Real, int VB>
XMC_ALWAYS_INLINE void combine_2_impl(Real* out0, Real* out1, const Real* w0, const Real* w1,
                                      const Real* const* rows, int64_t n, int64_t D) {
  using V = typename Simd<Real, VB>::V;
  constexpr int64_t W = Simd<Real, VB>::kLanes;
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

// The AVX2 clones and the baseline: 32-byte vectors (two SSE registers each on the baseline).
template <typename Real>
XMC_CPU_CLONES void scores_2_v3(const Real* q0, const Real* q1, const Real* const* rows, int64_t n, int64_t D,
                                Real* s0, Real* s1) {
  scores_2_impl<Real, 32>(q0, q1, rows, n, D, s0, s1);
}
template <typename Real>
XMC_CPU_CLONES void combine_2_v3(Real* out0, Real* out1, const Real* w0, const Real* w1, const Real* const* rows,
                                 int64_t n, int64_t D) {
  combine_2_impl<Real, 32>(out0, out1, w0, w1, rows, n, D);
}

#if XMC_CPU_AVX512
template <typename Real>
__attribute__((target("arch=x86-64-v4"))) void scores_4_v4(const Real* const* q, const Real* const* rows, int64_t n,
                                                           int64_t D, Real* const* s) {
  scores_4_impl<Real, 64>(q, rows, n, D, s);
}
template <typename Real>
__attribute__((target("arch=x86-64-v4"))) void scores_2_v4(const Real* q0, const Real* q1, const Real* const* rows,
                                                           int64_t n, int64_t D, Real* s0, Real* s1) {
  scores_2_impl<Real, 64>(q0, q1, rows, n, D, s0, s1);
}
template <typename Real>
__attribute__((target("arch=x86-64-v4"))) void combine_2_v4(Real* out0, Real* out1, const Real* w0, const Real* w1,
                                                            const Real* const* rows, int64_t n, int64_t D) {
  combine_2_impl<Real, 64>(out0, out1, w0, w1, rows, n, D);
}
#endif

}  // namespace

bool avx512_enabled() {
#if XMC_CPU_AVX512
  // XMC_NO_AVX512=1 keeps the AVX2 path (to compare the two, or on a CPU that down-clocks under AVX-512).
  static const bool enabled = [] {
    __builtin_cpu_init();
    const char* off = std::getenv("XMC_NO_AVX512");
    return !(off && off[0] == '1') && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }();
  return enabled;
#else
  return false;
#endif
}

template <typename Real>
void scores_2(const Real* q0, const Real* q1, const Real* const* rows, int64_t n, int64_t D, Real* s0, Real* s1) {
#if XMC_CPU_AVX512
  if (avx512_enabled()) return scores_2_v4(q0, q1, rows, n, D, s0, s1);
#endif
  scores_2_v3(q0, q1, rows, n, D, s0, s1);
}

template <typename Real>
void scores_4(const Real* const* q, const Real* const* rows, int64_t n, int64_t D, Real* const* s) {
#if XMC_CPU_AVX512
  if (avx512_enabled()) return scores_4_v4(q, rows, n, D, s);
#endif
  scores_2_v3(q[0], q[1], rows, n, D, s[0], s[1]);
  scores_2_v3(q[2], q[3], rows, n, D, s[2], s[3]);
}

template <typename Real>
void combine_2(Real* out0, Real* out1, const Real* w0, const Real* w1, const Real* const* rows, int64_t n,
               int64_t D) {
#if XMC_CPU_AVX512
  if (avx512_enabled()) return combine_2_v4(out0, out1, w0, w1, rows, n, D);
#endif
  combine_2_v3(out0, out1, w0, w1, rows, n, D);
}

template void scores_2<float>(const float*, const float*, const float* const*, int64_t, int64_t, float*, float*);
template void scores_2<double>(const double*, const double*, const double* const*, int64_t, int64_t, double*,
                               double*);
template void scores_4<float>(const float* const*, const float* const*, int64_t, int64_t, float* const*);
template void scores_4<double>(const double* const*, const double* const*, int64_t, int64_t, double* const*);
template void combine_2<float>(float*, float*, const float*, const float*, const float* const*, int64_t, int64_t);
template void combine_2<double>(double*, double*, const double*, const double*, const double* const*, int64_t,
                                int64_t);

}  // namespace cpu
}  // namespace ops
}  // namespace xmc
