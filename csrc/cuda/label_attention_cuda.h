// Host entry points of the CUDA label-attention kernels. No CUDA or Python types here, so
// module.cpp is compiled by the host compiler and takes raw device pointers from torch.
#pragma once
#include <cstdint>

namespace xmc {
namespace cuda {

enum class DType : int { Float32 = 0, Float64 = 1 };

// Sizes of one call; candidates == nullptr means every label (cand_per_doc == labels).
struct AttentionShape {
  int64_t batch = 0, tokens = 0, dim = 0, labels = 0, cand_per_doc = 0;
  // The device holding the tensors. This module's static CUDA runtime keeps its own current
  // device, apart from torch's, so every call sets it.
  int device = 0;
};

// H (B, T, D), mask (B, T) uint8, Q (L, D), candidates (B, C) int64 or null, all on the device.
// Writes out (B, C, D) and lse (B, C). Asynchronous on `stream` (a cudaStream_t; 0 = default).
void label_attention_forward(DType dtype, const AttentionShape& s, const void* H, const uint8_t* mask,
                             const void* Q, const int64_t* candidates, void* out, void* lse, void* stream);

// Overwrites grad_H (B, T, D) and grad_Q (L, D); delta is (B, C) device scratch of the dtype.
void label_attention_backward(DType dtype, const AttentionShape& s, const void* H, const uint8_t* mask,
                              const void* Q, const int64_t* candidates, const void* out, const void* lse,
                              const void* grad_out, void* grad_H, void* grad_Q, void* delta, void* stream);

// Visible devices; 0 when there is no GPU or no driver (never throws).
int device_count();

}  // namespace cuda
}  // namespace xmc
