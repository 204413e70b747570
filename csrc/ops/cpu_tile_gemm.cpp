#include "ops/cpu_tile_gemm.h"

#include <algorithm>
#include <cstring>

#include "ops/cpu_microkernels.h"  // avx512_enabled
#include "ops/cpu_simd.h"

namespace xmc {
namespace ops {
namespace cpu {
namespace {

using simd::Simd;
using simd::vload;
using simd::vstore;

// Rows of C per register block: 6 rows x 2 AVX2 vectors (12 accumulators, 2 loads of B and a
// broadcast of A: 15 of the 16 ymm registers) or x 4 AVX-512 vectors (24 of 32 zmm).
constexpr int kBlockRows = 6;

template <int VB>
constexpr int block_vectors() {
  return VB == 64 ? 4 : 2;
}

// C[i0 .. i0+MR, j0 .. j0+NV*W] (+)= A B, the accumulators in registers for the whole k loop.
template <typename Real, int VB, int MR, int NV>
XMC_ALWAYS_INLINE void product_block(const TileProduct<Real>& p, int64_t i0, int64_t j0) {
  using V = typename Simd<Real, VB>::V;
  constexpr int64_t W = Simd<Real, VB>::kLanes;
  const int64_t k = p.k, ldb = p.ldb, ldc = p.ldc, a_col = p.a_col;
  Real* c = p.C + i0 * ldc + j0;
  const Real* a[MR];
  for (int r = 0; r < MR; ++r) a[r] = p.A + (i0 + r) * p.a_row;
  V acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = p.accumulate ? vload<V>(c + r * ldc + v * W) : V{};
  const Real* b = p.B + j0;
  for (int64_t q = 0; q < k; ++q, b += ldb) {
    V bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = vload<V>(b + v * W);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const Real ar = a[r][q * a_col];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] += ar * bv[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) vstore(c + r * ldc + v * W, acc[r][v]);
}

// Every row block of one column panel; the panel of B (k x NV*W) stays in L1 meanwhile.
template <typename Real, int VB, int NV>
XMC_ALWAYS_INLINE void product_panel(const TileProduct<Real>& p, int64_t j0) {
  int64_t i0 = 0;
  for (; i0 + kBlockRows <= p.m; i0 += kBlockRows) product_block<Real, VB, kBlockRows, NV>(p, i0, j0);
  switch (p.m - i0) {
    case 5: return product_block<Real, VB, 5, NV>(p, i0, j0);
    case 4: return product_block<Real, VB, 4, NV>(p, i0, j0);
    case 3: return product_block<Real, VB, 3, NV>(p, i0, j0);
    case 2: return product_block<Real, VB, 2, NV>(p, i0, j0);
    case 1: return product_block<Real, VB, 1, NV>(p, i0, j0);
    default: return;
  }
}

// The last columns that do not fill a vector (only for widths that are not multiples of 8 or 16).
template <typename Real>
XMC_ALWAYS_INLINE void product_columns(const TileProduct<Real>& p, int64_t j0) {
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = j0; j < p.n; ++j) {
      Real s = p.accumulate ? p.C[i * p.ldc + j] : Real(0);
      for (int64_t q = 0; q < p.k; ++q) s += p.A[i * p.a_row + q * p.a_col] * p.B[q * p.ldb + j];
      p.C[i * p.ldc + j] = s;
    }
}

template <typename Real, int VB>
XMC_ALWAYS_INLINE void tile_product_impl(const TileProduct<Real>& p) {
  constexpr int NV = block_vectors<VB>();
  constexpr int64_t W = Simd<Real, VB>::kLanes;
  int64_t j0 = 0;
  for (; j0 + NV * W <= p.n; j0 += NV * W) product_panel<Real, VB, NV>(p, j0);
  for (; j0 + W <= p.n; j0 += W) product_panel<Real, VB, 1>(p, j0);
  if (j0 < p.n) product_columns(p, j0);
}

// exp by 2^k e^r with |r| <= ln2 / 2: a Taylor polynomial whose first omitted term is below
// half an ulp (r^8/8! for float, r^14/14! for double), and 2^k built in the exponent bits.
template <typename Real>
struct ExpConstants;

template <>
struct ExpConstants<float> {
  using Int = int32_t;
  static constexpr float kMaxArg = 88.0f;  // exp(88) < FLT_MAX
  static constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  static constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  static constexpr int kMantissaBits = 23, kBias = 127, kTerms = 7;
};

template <>
struct ExpConstants<double> {
  using Int = int64_t;
  static constexpr double kMaxArg = 708.0;  // exp(708) < DBL_MAX
  static constexpr double kLn2Hi = 6.93147180369123816490e-01, kLn2Lo = 1.90821492927058770002e-10;
  static constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr int kMantissaBits = 52, kBias = 1023, kTerms = 13;
};

// c[m] = 1 / m!, each rounded once (m! itself is exact up to 13! in double, 7! in float).
template <typename Real, int N>
struct TaylorCoefficients {
  Real c[N + 1];
  constexpr TaylorCoefficients() : c() {
    Real factorial = 1;
    for (int m = 0; m <= N; ++m) {
      if (m) factorial *= Real(m);
      c[m] = Real(1) / factorial;
    }
  }
};

template <typename To, typename From>
XMC_ALWAYS_INLINE To bits_as(From x) {
  static_assert(sizeof(To) == sizeof(From), "bits_as reinterprets same-size vectors");
  To y;
  std::memcpy(&y, &x, sizeof y);
  return y;
}

template <typename Real, int VB>
XMC_ALWAYS_INLINE typename Simd<Real, VB>::V sigmoid_vector(typename Simd<Real, VB>::V x) {
  using V = typename Simd<Real, VB>::V;
  using C = ExpConstants<Real>;
  typedef typename C::Int IV __attribute__((vector_size(VB)));
  const V max_arg = V{} + C::kMaxArg, round = V{} + C::kRound;
  const V minus_x = -x;
  const IV overflows = minus_x > max_arg;
  V t = minus_x < max_arg ? minus_x : max_arg;
  t = t > -max_arg ? t : -max_arg;
  const V shifted = t * Real(1.44269504088896340736) + round;  // k + 1.5 * 2^mantissa, k = round(t / ln2)
  const V k = shifted - round;
  const V r = (t - k * C::kLn2Hi) - k * C::kLn2Lo;
  constexpr TaylorCoefficients<Real, C::kTerms> kCoef{};
  V poly = V{} + kCoef.c[C::kTerms];
#pragma GCC unroll 16
  for (int m = C::kTerms - 1; m >= 0; --m) poly = poly * r + kCoef.c[m];
  const IV k_int = bits_as<IV>(shifted) - bits_as<IV>(round);
  const V scale = bits_as<V>((k_int + C::kBias) << C::kMantissaBits);
  const V s = Real(1) / (Real(1) + poly * scale);
  return bits_as<V>(bits_as<IV>(s) & ~overflows);
}

template <typename Real, int VB>
XMC_ALWAYS_INLINE void sigmoid_impl(Real* x, int64_t n) {
  using V = typename Simd<Real, VB>::V;
  constexpr int64_t W = Simd<Real, VB>::kLanes;
  int64_t i = 0;
  for (; i + W <= n; i += W) vstore(x + i, sigmoid_vector<Real, VB>(vload<V>(x + i)));
  if (i == n) return;
  Real tail[W] = {};  // the same arithmetic for the last few values
  std::copy(x + i, x + n, tail);
  vstore(tail, sigmoid_vector<Real, VB>(vload<V>(tail)));
  std::copy(tail, tail + (n - i), x + i);
}

template <typename Real>
XMC_CPU_CLONES void tile_product_v3(const TileProduct<Real>& p) {
  tile_product_impl<Real, 32>(p);
}
template <typename Real>
XMC_CPU_CLONES void sigmoid_v3(Real* x, int64_t n) {
  sigmoid_impl<Real, 32>(x, n);
}

#if XMC_CPU_AVX512
template <typename Real>
__attribute__((target("arch=x86-64-v4"))) void tile_product_v4(const TileProduct<Real>& p) {
  tile_product_impl<Real, 64>(p);
}
template <typename Real>
__attribute__((target("arch=x86-64-v4"))) void sigmoid_v4(Real* x, int64_t n) {
  sigmoid_impl<Real, 64>(x, n);
}
#endif

}  // namespace

template <typename Real>
void tile_product(const TileProduct<Real>& p) {
  if (p.m <= 0 || p.n <= 0) return;
#if XMC_CPU_AVX512
  if (avx512_enabled()) return tile_product_v4(p);
#endif
  tile_product_v3(p);
}

template <typename Real>
void sigmoid_inplace(Real* x, int64_t n) {
#if XMC_CPU_AVX512
  if (avx512_enabled()) return sigmoid_v4(x, n);
#endif
  sigmoid_v3(x, n);
}

template void tile_product<float>(const TileProduct<float>&);
template void tile_product<double>(const TileProduct<double>&);
template void sigmoid_inplace<float>(float*, int64_t);
template void sigmoid_inplace<double>(double*, int64_t);

}  // namespace cpu
}  // namespace ops
}  // namespace xmc
