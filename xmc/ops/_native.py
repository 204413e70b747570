"""Calls into the native kernels: xmc._core (CPU, numpy views) and xmc._cuda (raw device pointers).

Both return (out, lse) from the forward and (grad_H, grad_Q) from the backward, allocating
their outputs with torch so autograd owns them; inputs must already be checked and contiguous.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from xmc import _core

try:
    from xmc import _cuda
    CUDA_IMPORT_ERROR: Optional[BaseException] = None
except ImportError as exc:  # built without nvcc (XMC_CUDA=OFF or AUTO without a toolkit)
    _cuda = None
    CUDA_IMPORT_ERROR = exc


def cuda_module_available() -> bool:
    return _cuda is not None


def _sizes(H: torch.Tensor, Q: torch.Tensor, candidates: Optional[torch.Tensor]) -> Tuple[int, int, int, int, int]:
    B, T, D = H.shape
    L = Q.shape[0]
    C = L if candidates is None else candidates.shape[1]
    return B, T, D, L, C


def _threads() -> int:
    # Follow torch's intra-op setting so one knob (torch.set_num_threads) bounds every backend.
    return torch.get_num_threads()


def cpu_forward(
    H: torch.Tensor, mask: torch.Tensor, Q: torch.Tensor, candidates: Optional[torch.Tensor]
) -> Tuple[torch.Tensor, torch.Tensor]:
    B, T, D, L, C = _sizes(H, Q, candidates)
    out = H.new_empty((B, C, D))
    lse = H.new_empty((B, C))
    cand = None if candidates is None else candidates.numpy()
    _core.ops_label_attention_forward(
        H.numpy(), mask.view(torch.uint8).numpy(), Q.numpy(), cand, out.numpy(), lse.numpy(), _threads()
    )
    return out, lse


def cpu_backward(
    H: torch.Tensor,
    mask: torch.Tensor,
    Q: torch.Tensor,
    candidates: Optional[torch.Tensor],
    out: torch.Tensor,
    lse: torch.Tensor,
    grad_out: torch.Tensor,
) -> Tuple[torch.Tensor, torch.Tensor]:
    grad_H = torch.empty_like(H)
    grad_Q = torch.empty_like(Q)
    cand = None if candidates is None else candidates.numpy()
    _core.ops_label_attention_backward(
        H.numpy(), mask.view(torch.uint8).numpy(), Q.numpy(), cand, out.numpy(), lse.numpy(),
        grad_out.numpy(), grad_H.numpy(), grad_Q.numpy(), _threads(),
    )
    return grad_H, grad_Q


def _dtype_code(t: torch.Tensor) -> int:
    return 1 if t.dtype == torch.float64 else 0


def _stream(t: torch.Tensor) -> int:
    return torch.cuda.current_stream(t.device).cuda_stream


def cuda_forward(
    H: torch.Tensor, mask: torch.Tensor, Q: torch.Tensor, candidates: Optional[torch.Tensor]
) -> Tuple[torch.Tensor, torch.Tensor]:
    assert _cuda is not None
    B, T, D, L, C = _sizes(H, Q, candidates)
    out = H.new_empty((B, C, D))
    lse = H.new_empty((B, C))
    _cuda.label_attention_forward(
        H.data_ptr(), mask.data_ptr(), Q.data_ptr(), 0 if candidates is None else candidates.data_ptr(),
        out.data_ptr(), lse.data_ptr(), B, T, D, L, C, _dtype_code(H), _stream(H), H.device.index,
    )
    return out, lse


def cuda_backward(
    H: torch.Tensor,
    mask: torch.Tensor,
    Q: torch.Tensor,
    candidates: Optional[torch.Tensor],
    out: torch.Tensor,
    lse: torch.Tensor,
    grad_out: torch.Tensor,
) -> Tuple[torch.Tensor, torch.Tensor]:
    assert _cuda is not None
    B, T, D, L, C = _sizes(H, Q, candidates)
    grad_H = torch.empty_like(H)
    grad_Q = torch.empty_like(Q)
    delta = H.new_empty((B, C))
    _cuda.label_attention_backward(
        H.data_ptr(), mask.data_ptr(), Q.data_ptr(), 0 if candidates is None else candidates.data_ptr(),
        out.data_ptr(), lse.data_ptr(), grad_out.data_ptr(), grad_H.data_ptr(), grad_Q.data_ptr(),
        delta.data_ptr(), B, T, D, L, C, _dtype_code(H), _stream(H), H.device.index,
    )
    return grad_H, grad_Q


def cuda_gcn_propagate(indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, n_cols: int,
                       H: torch.Tensor, out: torch.Tensor) -> None:
    assert _cuda is not None
    B, _, D = H.shape
    _cuda.gcn_propagate(indptr.data_ptr(), indices.data_ptr(), values.data_ptr(), indptr.shape[0] - 1, n_cols,
                        H.data_ptr(), B, D, out.data_ptr(), _dtype_code(H), _stream(H), H.device.index)


def cpu_dynamic_graph_forward(Qa: torch.Tensor, Kb: torch.Tensor, H: torch.Tensor,
                              min_degree: float) -> Tuple[torch.Tensor, torch.Tensor]:
    out = torch.empty_like(H)
    degrees = H.new_empty(H.shape[:2])
    _core.ops_dynamic_graph_forward(Qa.numpy(), Kb.numpy(), H.numpy(), out.numpy(), degrees.numpy(), min_degree,
                                    _threads())
    return out, degrees


def cpu_dynamic_graph_backward(Qa: torch.Tensor, Kb: torch.Tensor, H: torch.Tensor, degrees: torch.Tensor,
                               out: torch.Tensor, grad_out: torch.Tensor,
                               min_degree: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    grad_Qa, grad_Kb, grad_H = torch.empty_like(Qa), torch.empty_like(Kb), torch.empty_like(H)
    _core.ops_dynamic_graph_backward(Qa.numpy(), Kb.numpy(), H.numpy(), degrees.numpy(), out.numpy(),
                                     grad_out.numpy(), grad_Qa.numpy(), grad_Kb.numpy(), grad_H.numpy(), min_degree,
                                     _threads())
    return grad_Qa, grad_Kb, grad_H


def cuda_dynamic_graph_forward(Qa: torch.Tensor, Kb: torch.Tensor, H: torch.Tensor,
                               min_degree: float) -> Tuple[torch.Tensor, torch.Tensor]:
    assert _cuda is not None
    (B, L, d), D = Qa.shape, H.shape[2]
    out = torch.empty_like(H)
    degrees = H.new_empty((B, L))
    _cuda.dynamic_graph_forward(Qa.data_ptr(), Kb.data_ptr(), H.data_ptr(), out.data_ptr(), degrees.data_ptr(),
                                B, L, d, D, min_degree, _dtype_code(H), _stream(H), H.device.index)
    return out, degrees


def cuda_dynamic_graph_backward(Qa: torch.Tensor, Kb: torch.Tensor, H: torch.Tensor, degrees: torch.Tensor,
                                out: torch.Tensor, grad_out: torch.Tensor,
                                min_degree: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    assert _cuda is not None
    (B, L, d), D = Qa.shape, H.shape[2]
    grad_Qa, grad_Kb, grad_H = torch.empty_like(Qa), torch.empty_like(Kb), torch.empty_like(H)
    degree_grad = H.new_empty((B, L))  # scratch: the gradient reaching each degree
    _cuda.dynamic_graph_backward(Qa.data_ptr(), Kb.data_ptr(), H.data_ptr(), degrees.data_ptr(), out.data_ptr(),
                                 grad_out.data_ptr(), grad_Qa.data_ptr(), grad_Kb.data_ptr(), grad_H.data_ptr(),
                                 degree_grad.data_ptr(), B, L, d, D, min_degree, _dtype_code(H), _stream(H),
                                 H.device.index)
    return grad_Qa, grad_Kb, grad_H


def resolve(op: str, H: torch.Tensor, backend: str, backends, cpu_default: str, cuda_fallback: str) -> str:
    """The backend an op's call runs: ``backend`` checked against ``backends``, "auto" resolved (the CUDA
    kernel for CUDA tensors when xmc._cuda is built, else ``cuda_fallback``; ``cpu_default`` on the CPU),
    and ``XMC_OPS_REFERENCE=1`` forcing "reference"."""
    import os

    if backend not in backends:
        raise ValueError(f"{op}: backend must be one of {', '.join(backends)}; got {backend!r}")
    if os.environ.get("XMC_OPS_REFERENCE", "") == "1":
        return "reference"
    if backend == "auto":
        if H.is_cuda:
            return "cuda" if cuda_module_available() else cuda_fallback
        return cpu_default
    if backend == "cpu" and H.device.type != "cpu":
        raise ValueError(f"{op}: backend='cpu' needs CPU tensors; H is on {H.device}")
    if backend == "cuda":
        if not cuda_module_available():
            raise RuntimeError(f"{op}: backend='cuda' needs the xmc._cuda module, which this build lacks "
                               f"({CUDA_IMPORT_ERROR}); rebuild with nvcc on PATH (XMC_CUDA=ON) or use "
                               f"backend={cuda_fallback!r}")
        if not H.is_cuda:
            raise ValueError(f"{op}: backend='cuda' needs CUDA tensors; H is on {H.device}")
    return backend
