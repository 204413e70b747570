// Per-element math of graph propagation, shared by the CPU kernel (csrc/ops/gcn_propagate.cpp)
// and the CUDA kernel (csrc/cuda/gcn_propagate.cu), so the CPU tests exercise the GPU's arithmetic.
//
// Static propagation with a sparse normalised adjacency A (rows x cols, CSR) shared by a batch:
//   out[b, i, :] = sum over the stored a_ij of a_ij * H[b, j, :]
// Its gradient in H is the same product with the transpose: grad_H = A^T grad_out.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define XMC_GCN_HOST_DEVICE __host__ __device__
#else
#define XMC_GCN_HOST_DEVICE
#endif

namespace xmc {
namespace ops {

// One neighbour's contribution to an output value, accumulated in edge order (the order of the
// CSR row), so every backend sums the same terms in the same order for one output element.
template <typename Real>
XMC_GCN_HOST_DEVICE inline Real gcn_accumulate(Real acc, Real weight, Real value) {
  return acc + weight * value;
}

}  // namespace ops
}  // namespace xmc
