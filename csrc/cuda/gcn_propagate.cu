// CUDA static graph propagation: one block per (output row, document), threads over D.
// The per-element accumulation is csrc/ops/gcn_math.h, the one the CPU kernel runs.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/gcn_propagate_cuda.h"
#include "ops/gcn_math.h"

namespace xmc {
namespace cuda {
namespace {

template <typename Real>
__global__ void propagate_kernel(const int64_t* __restrict__ indptr, const int64_t* __restrict__ indices,
                                 const Real* __restrict__ values, int64_t rows, int64_t cols,
                                 const Real* __restrict__ H, int64_t dim, Real* __restrict__ out) {
  const int64_t i = blockIdx.x, b = blockIdx.y;
  const int64_t begin = indptr[i], end = indptr[i + 1];
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    Real acc = 0;
    for (int64_t e = begin; e < end; ++e)  // the edge order of the CSR row, as on the CPU
      acc = ops::gcn_accumulate(acc, values[e], H[(b * cols + indices[e]) * dim + d]);
    out[(b * rows + i) * dim + d] = acc;
  }
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("xmc._cuda: gcn_propagate: ") + what + ": " + cudaGetErrorString(err));
}

}  // namespace

void gcn_propagate(DType dtype, const int64_t* indptr, const int64_t* indices, const void* values, int64_t rows,
                   int64_t cols, const void* H, int64_t batch, int64_t dim, void* out, void* stream, int device) {
  if (rows > 2147483647 || batch > 65535)
    throw std::invalid_argument("xmc._cuda: gcn_propagate: at most 2^31-1 rows and 65535 documents per call");
  if (rows == 0 || batch == 0 || dim == 0) return;
  check(cudaSetDevice(device), "selecting the tensors' device");
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(batch));
  const int threads = dim >= 256 ? 256 : (dim >= 128 ? 128 : (dim >= 64 ? 64 : 32));
  auto s = static_cast<cudaStream_t>(stream);
  if (dtype == DType::Float64)
    propagate_kernel<double><<<grid, threads, 0, s>>>(indptr, indices, static_cast<const double*>(values), rows,
                                                      cols, static_cast<const double*>(H), dim,
                                                      static_cast<double*>(out));
  else
    propagate_kernel<float><<<grid, threads, 0, s>>>(indptr, indices, static_cast<const float*>(values), rows, cols,
                                                     static_cast<const float*>(H), dim, static_cast<float*>(out));
  check(cudaGetLastError(), "launch");
}

}  // namespace cuda
}  // namespace xmc
