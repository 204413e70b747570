// Register-blocked inner loops of the fused CPU label-attention kernel, written with GCC/Clang
// vector extensions (no intrinsics, so they build for any target). On x86-64 each has an
// AVX2+FMA clone picked at load time (target_clones): still no -march=native.
#pragma once
#include <cstdint>

namespace xmc {
namespace ops {
namespace cpu {

// s0[j] = q0 . rows[j] and s1[j] = q1 . rows[j] for j < n (rows of length D).
void scores_2(const float* q0, const float* q1, const float* const* rows, int64_t n, int64_t D, float* s0,
              float* s1);
void scores_2(const double* q0, const double* q1, const double* const* rows, int64_t n, int64_t D, double* s0,
              double* s1);

// out0 += sum_i w0[i] rows[i] and out1 += sum_i w1[i] rows[i] for i < n (rows of length D).
void combine_2(float* out0, float* out1, const float* w0, const float* w1, const float* const* rows, int64_t n,
               int64_t D);
void combine_2(double* out0, double* out1, const double* w0, const double* w1, const double* const* rows,
               int64_t n, int64_t D);

}  // namespace cpu
}  // namespace ops
}  // namespace xmc
