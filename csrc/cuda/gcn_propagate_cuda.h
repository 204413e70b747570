// Host entry point of the CUDA static graph propagation. No CUDA or Python types here, so
// module.cpp is compiled by the host compiler and takes raw device pointers from torch.
#pragma once
#include <cstdint>

#include "cuda/label_attention_cuda.h"  // DType

namespace xmc {
namespace cuda {

// out (B, rows, D) = A @ H[b] for a CSR A on the device (int64 indptr (rows + 1), int64
// indices and values of the dtype), H (B, cols, D). Column ids must already be checked (the
// Python side checks them once per graph). Asynchronous on `stream`.
void gcn_propagate(DType dtype, const int64_t* indptr, const int64_t* indices, const void* values, int64_t rows,
                   int64_t cols, const void* H, int64_t batch, int64_t dim, void* out, void* stream, int device);

}  // namespace cuda
}  // namespace xmc
