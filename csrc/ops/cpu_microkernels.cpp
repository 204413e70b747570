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

// NQ query rows (2 or 4) x 4 token rows: 4 NQ accumulators over D-vectors, NQ + 4 loads per 4 NQ FMAs
// (6 per 8 for a pair, 8 per 16 for four: four need 16 registers for their accumulators alone, so
// only the 32 of AVX-512 take them). Rows are read contiguously (a transposed layout would stride
// by a power of two and thrash L1 sets). s[c][j] = q[c] . rows[j] for j < n.
template <typename Real, int VB, int NQ>
XMC_ALWAYS_INLINE void scores_impl(const Real* const* q, const Real* const* rows, int64_t n, int64_t D,
                                   Real* const* s) {
  static_assert(NQ == 2 || NQ == 4, "scores_impl takes 2 or 4 query rows");
  using V = typename Simd<Real, VB>::V;
  constexpr int64_t W = Simd<Real, VB>::kLanes;
  const int64_t Dv = D / W * W;
  for (int64_t j = 0; j < n; j += 4) {
    const Real* h[4];
    for (int k = 0; k < 4; ++k) h[k] = rows[std::min(j + k, n - 1)];  // a short last group repeats its last row
    V acc[NQ / 2][8] = {};  // acc[c / 2][4 (c % 2) + k]: q[c] x h[k]
    for (int64_t d = 0; d < Dv; d += W) {
      V x[4];
      for (int k = 0; k < 4; ++k) x[k] = vload<V>(h[k] + d);
      for (int c = 0; c < NQ; ++c) {
        const V u = vload<V>(q[c] + d);
        for (int k = 0; k < 4; ++k) acc[c / 2][4 * (c % 2) + k] += u * x[k];
      }
    }
    Real r[4 * NQ];  // r[4 c + k]
    for (int g = 0; g < NQ / 2; ++g) reduce_8<Real, VB>(acc[g], r + 8 * g);
    for (int64_t d = Dv; d < D; ++d)  // the tail of D that is not a whole vector
      for (int c = 0; c < NQ; ++c)
        for (int k = 0; k < 4; ++k) r[4 * c + k] += q[c][d] * h[k][d];
    for (int64_t k = 0; k < 4 && j + k < n; ++k)
      for (int c = 0; c < NQ; ++c) s[c][j + k] = r[4 * c + k];
  }
}

template <typename Real, int VB>
XMC_ALWAYS_INLINE void scores_2_impl(const Real* q0, const Real* q1, const Real* const* rows, int64_t n, int64_t D,
                                     Real* s0, Real* s1) {
  const Real* q[2] = {q0, q1};
  Real* s[2] = {s0, s1};
  scores_impl<Real, VB, 2>(q, rows, n, D, s);
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
  scores_impl<Real, 64, 4>(q, rows, n, D, s);
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
  // Without AVX-512 four rows' accumulators do not fit in the registers: two pairs.
  scores_2(q[0], q[1], rows, n, D, s[0], s[1]);
  scores_2(q[2], q[3], rows, n, D, s[2], s[3]);
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
