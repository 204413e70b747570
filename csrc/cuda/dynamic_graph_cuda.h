// Host entry points of the CUDA dynamic graph propagation (csrc/ops/dynamic_graph.h is the CPU
// kernel and states the maths). No CUDA or Python types here, so module.cpp is compiled by the
// host compiler and takes raw device pointers from torch. Asynchronous on `stream`.
#pragma once
#include <cstdint>

#include "cuda/label_attention_cuda.h"  // DType

namespace xmc {
namespace cuda {

// Qa, Kb (B, L, d), H (B, L, D) -> out (B, L, D) and the unclamped degrees (B, L).
void dynamic_graph_forward(DType dtype, const void* Qa, const void* Kb, const void* H, void* out, void* degrees,
                           int64_t batch, int64_t labels, int64_t width, int64_t dim, double min_degree, void* stream,
                           int device);

// Gradients from the forward's degrees and out: grad_Qa, grad_Kb (B, L, d) and grad_H (B, L, D),
// overwritten; degree_grad (B, L) is scratch.
void dynamic_graph_backward(DType dtype, const void* Qa, const void* Kb, const void* H, const void* degrees,
                            const void* out, const void* grad_out, void* grad_Qa, void* grad_Kb, void* grad_H,
                            void* degree_grad, int64_t batch, int64_t labels, int64_t width, int64_t dim,
                            double min_degree, void* stream, int device);

}  // namespace cuda
}  // namespace xmc
