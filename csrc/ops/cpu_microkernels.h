// Register-blocked inner loops of the fused CPU label-attention kernel, written with GCC/Clang
// vector extensions (no intrinsics, so they build for any target). On x86-64 each has an
// AVX2+FMA clone picked at load time (target_clones) and an AVX-512 version picked at run
// time (avx512_enabled): still no -march=native.
#pragma once
#include <cstdint>

namespace xmc {
namespace ops {
namespace cpu {

// True when the AVX-512 versions run: the CPU has AVX-512 F/BW/DQ/VL, the build is x86-64
// GCC 12+, and XMC_NO_AVX512 is not 1.
bool avx512_enabled();

// s0[j] = q0 . rows[j] and s1[j] = q1 . rows[j] for j < n (rows of length D). Real: float, double.
template <typename Real>
void scores_2(const Real* q0, const Real* q1, const Real* const* rows, int64_t n, int64_t D, Real* s0, Real* s1);

// scores_2 for four query rows q[0..3] into s[0..3]: s[c][j] = q[c] . rows[j].
template <typename Real>
void scores_4(const Real* const* q, const Real* const* rows, int64_t n, int64_t D, Real* const* s);

// out0 += sum_i w0[i] rows[i] and out1 += sum_i w1[i] rows[i] for i < n (rows of length D).
template <typename Real>
void combine_2(Real* out0, Real* out1, const Real* w0, const Real* w1, const Real* const* rows, int64_t n,
               int64_t D);

}  // namespace cpu
}  // namespace ops
}  // namespace xmc
