// xmc._cuda: the CUDA kernels (label-wise attention, graph propagation) behind raw device
// pointers. It links no torch and the CUDA runtime statically, so it imports on machines
// without a GPU or a driver;
// xmc/ops/_native.py passes tensor.data_ptr() values and the current stream.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>

#include "cuda/dynamic_graph_cuda.h"
#include "cuda/gcn_propagate_cuda.h"
#include "cuda/label_attention_cuda.h"

namespace py = pybind11;

#ifndef XMC_CUDA_ARCHITECTURES
#define XMC_CUDA_ARCHITECTURES ""
#endif

namespace {

xmc::cuda::DType dtype_of(int code) {
  if (code == 0) return xmc::cuda::DType::Float32;
  if (code == 1) return xmc::cuda::DType::Float64;
  throw std::invalid_argument("xmc._cuda: dtype code must be 0 (float32) or 1 (float64), got " +
                              std::to_string(code));
}

template <typename P>
P* ptr(uintptr_t p) {
  return reinterpret_cast<P*>(p);
}

xmc::cuda::AttentionShape shape_of(int64_t B, int64_t T, int64_t D, int64_t L, int64_t C, int device) {
  xmc::cuda::AttentionShape s;
  s.batch = B;
  s.tokens = T;
  s.dim = D;
  s.labels = L;
  s.cand_per_doc = C;
  s.device = device;
  return s;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "xmc CUDA kernels (label-wise attention, static and dynamic graph propagation) taking raw device pointers";
  m.attr("architectures") = XMC_CUDA_ARCHITECTURES;
  m.def("device_count", &xmc::cuda::device_count, "Visible CUDA devices; 0 without a GPU or driver.");
  m.def(
      "label_attention_forward",
      [](uintptr_t H, uintptr_t mask, uintptr_t Q, uintptr_t candidates, uintptr_t out, uintptr_t lse, int64_t B,
         int64_t T, int64_t D, int64_t L, int64_t C, int dtype, uintptr_t stream, int device) {
        auto s = shape_of(B, T, D, L, C, device);
        auto dt = dtype_of(dtype);
        py::gil_scoped_release nogil;
        xmc::cuda::label_attention_forward(dt, s, ptr<const void>(H), ptr<const uint8_t>(mask), ptr<const void>(Q),
                                           ptr<const int64_t>(candidates), ptr<void>(out), ptr<void>(lse),
                                           ptr<void>(stream));
      },
      py::arg("H"), py::arg("mask"), py::arg("Q"), py::arg("candidates"), py::arg("out"), py::arg("lse"),
      py::arg("B"), py::arg("T"), py::arg("D"), py::arg("L"), py::arg("C"), py::arg("dtype"), py::arg("stream"),
      py::arg("device"),
      "Forward on device pointers (candidates = 0: all labels). Writes out (B, C, D) and lse (B, C).");
  m.def(
      "label_attention_backward",
      [](uintptr_t H, uintptr_t mask, uintptr_t Q, uintptr_t candidates, uintptr_t out, uintptr_t lse,
         uintptr_t grad_out, uintptr_t grad_H, uintptr_t grad_Q, uintptr_t delta, int64_t B, int64_t T, int64_t D,
         int64_t L, int64_t C, int dtype, uintptr_t stream, int device) {
        auto s = shape_of(B, T, D, L, C, device);
        auto dt = dtype_of(dtype);
        py::gil_scoped_release nogil;
        xmc::cuda::label_attention_backward(dt, s, ptr<const void>(H), ptr<const uint8_t>(mask), ptr<const void>(Q),
                                            ptr<const int64_t>(candidates), ptr<const void>(out),
                                            ptr<const void>(lse), ptr<const void>(grad_out), ptr<void>(grad_H),
                                            ptr<void>(grad_Q), ptr<void>(delta), ptr<void>(stream));
      },
      py::arg("H"), py::arg("mask"), py::arg("Q"), py::arg("candidates"), py::arg("out"), py::arg("lse"),
      py::arg("grad_out"), py::arg("grad_H"), py::arg("grad_Q"), py::arg("delta"), py::arg("B"), py::arg("T"),
      py::arg("D"), py::arg("L"), py::arg("C"), py::arg("dtype"), py::arg("stream"), py::arg("device"),
      "Backward on device pointers; overwrites grad_H and grad_Q, uses delta (B, C) as scratch.");
  m.def(
      "gcn_propagate",
      [](uintptr_t indptr, uintptr_t indices, uintptr_t values, int64_t rows, int64_t cols, uintptr_t H, int64_t B,
         int64_t D, uintptr_t out, int dtype, uintptr_t stream, int device) {
        auto dt = dtype_of(dtype);
        py::gil_scoped_release nogil;
        xmc::cuda::gcn_propagate(dt, ptr<const int64_t>(indptr), ptr<const int64_t>(indices), ptr<const void>(values),
                                 rows, cols, ptr<const void>(H), B, D, ptr<void>(out), ptr<void>(stream), device);
      },
      py::arg("indptr"), py::arg("indices"), py::arg("values"), py::arg("rows"), py::arg("cols"), py::arg("H"),
      py::arg("B"), py::arg("D"), py::arg("out"), py::arg("dtype"), py::arg("stream"), py::arg("device"),
      "out (B, rows, D) = A @ H[b] on device pointers, for a CSR A (int64 indptr and indices).");
  m.def(
      "dynamic_graph_forward",
      [](uintptr_t Qa, uintptr_t Kb, uintptr_t H, uintptr_t out, uintptr_t degrees, int64_t B, int64_t L, int64_t d,
         int64_t D, double min_degree, int dtype, uintptr_t stream, int device) {
        auto dt = dtype_of(dtype);
        py::gil_scoped_release nogil;
        xmc::cuda::dynamic_graph_forward(dt, ptr<const void>(Qa), ptr<const void>(Kb), ptr<const void>(H),
                                         ptr<void>(out), ptr<void>(degrees), B, L, d, D, min_degree,
                                         ptr<void>(stream), device);
      },
      py::arg("Qa"), py::arg("Kb"), py::arg("H"), py::arg("out"), py::arg("degrees"), py::arg("B"), py::arg("L"),
      py::arg("d"), py::arg("D"), py::arg("min_degree"), py::arg("dtype"), py::arg("stream"), py::arg("device"),
      "Dynamic graph propagation on device pointers: Qa, Kb (B, L, d), H (B, L, D). Writes out (B, L, D) and "
      "degrees (B, L).");
  m.def(
      "dynamic_graph_backward",
      [](uintptr_t Qa, uintptr_t Kb, uintptr_t H, uintptr_t degrees, uintptr_t out, uintptr_t grad_out,
         uintptr_t grad_Qa, uintptr_t grad_Kb, uintptr_t grad_H, uintptr_t degree_grad, int64_t B, int64_t L,
         int64_t d, int64_t D, double min_degree, int dtype, uintptr_t stream, int device) {
        auto dt = dtype_of(dtype);
        py::gil_scoped_release nogil;
        xmc::cuda::dynamic_graph_backward(dt, ptr<const void>(Qa), ptr<const void>(Kb), ptr<const void>(H),
                                          ptr<const void>(degrees), ptr<const void>(out), ptr<const void>(grad_out),
                                          ptr<void>(grad_Qa), ptr<void>(grad_Kb), ptr<void>(grad_H),
                                          ptr<void>(degree_grad), B, L, d, D, min_degree, ptr<void>(stream), device);
      },
      py::arg("Qa"), py::arg("Kb"), py::arg("H"), py::arg("degrees"), py::arg("out"), py::arg("grad_out"),
      py::arg("grad_Qa"), py::arg("grad_Kb"), py::arg("grad_H"), py::arg("degree_grad"), py::arg("B"), py::arg("L"),
      py::arg("d"), py::arg("D"), py::arg("min_degree"), py::arg("dtype"), py::arg("stream"), py::arg("device"),
      "Backward on device pointers; overwrites grad_Qa, grad_Kb (B, L, d) and grad_H (B, L, D), uses degree_grad "
      "(B, L) as scratch.");
}
