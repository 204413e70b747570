"""Static graph propagation, LDGN's GCN step: ``out[b] = A @ H[b]`` for a sparse (normalised)
adjacency A shared by the whole batch and dense per-document node states H (B, nodes, D).

Backends, all behind :func:`gcn_propagate` (differentiable in H; A is a constant):

- ``"reference"``: torch.sparse (``xmc/ops/_reference.py``).
- ``"cpu"``: the fused C++ kernel in ``xmc._core`` (``csrc/ops/gcn_propagate.cpp``), OpenMP over
  (document, row), the backward the same kernel with A's transpose.
- ``"cuda"``: the CUDA kernel in ``xmc._cuda`` (``csrc/cuda/gcn_propagate.cu``).
- ``"auto"``: ``"cuda"`` for CUDA tensors when ``xmc._cuda`` is built, ``"reference"`` for other
  CUDA tensors, ``"cpu"`` for CPU tensors.

``XMC_OPS_REFERENCE=1`` forces ``"reference"``, as for :func:`xmc.ops.label_attention`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.sparse as sp
import torch
from torch.autograd.function import once_differentiable

from xmc import _core
from xmc.ops import _native
from xmc.ops._reference import gcn_propagate_reference

BACKENDS = ("auto", "reference", "cpu", "cuda")


@dataclass
class SparseGraph:
    """A sparse (rows x cols) adjacency as CSR tensors, with its transpose for the backward."""

    indptr: torch.Tensor  # int64, rows + 1
    indices: torch.Tensor  # int64
    values: torch.Tensor
    t_indptr: torch.Tensor  # the transpose's CSR
    t_indices: torch.Tensor
    t_values: torch.Tensor
    shape: tuple
    _coo: Optional[torch.Tensor] = None

    @classmethod
    def from_scipy(cls, A, dtype: torch.dtype = torch.float32, device="cpu") -> "SparseGraph":
        """From any scipy sparse matrix; ids are checked once here, not per call."""
        A = sp.csr_matrix(A)
        A.sum_duplicates()
        if A.nnz and (A.indices.min() < 0 or A.indices.max() >= A.shape[1]):
            raise ValueError(f"SparseGraph: column ids outside [0, {A.shape[1]})")
        if A.nnz and not np.isfinite(A.data).all():
            raise ValueError("SparseGraph: the adjacency holds NaN or infinite values")
        T = A.T.tocsr()

        def t(a, kind=None):
            return torch.as_tensor(np.ascontiguousarray(a), dtype=kind or dtype, device=device)

        return cls(t(A.indptr, torch.int64), t(A.indices, torch.int64), t(A.data), t(T.indptr, torch.int64),
                   t(T.indices, torch.int64), t(T.data), tuple(int(x) for x in A.shape))

    def to(self, device=None, dtype: Optional[torch.dtype] = None) -> "SparseGraph":
        f = (lambda x: x.to(device=device, dtype=dtype)) if dtype is not None else (lambda x: x.to(device=device))
        return SparseGraph(self.indptr.to(device), self.indices.to(device), f(self.values), self.t_indptr.to(device),
                           self.t_indices.to(device), f(self.t_values), self.shape)

    def coo(self) -> torch.Tensor:
        """The torch.sparse COO tensor of A (for the reference)."""
        if self._coo is None:
            rows = torch.repeat_interleave(torch.arange(self.shape[0], device=self.indptr.device),
                                           self.indptr[1:] - self.indptr[:-1])
            # check_invariants=False: from_scipy checked the ids once.
            self._coo = torch.sparse_coo_tensor(torch.stack([rows, self.indices]), self.values, self.shape,
                                                check_invariants=False).coalesce()
        return self._coo


def gcn_propagate(graph: SparseGraph, H: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """``graph`` (rows x cols) times each document's node states H (B, cols, D) -> (B, rows, D)."""
    if H.dim() != 3 or H.shape[1] != graph.shape[1]:
        raise ValueError(f"gcn_propagate: H must be (B, {graph.shape[1]}, D) for a graph of shape {graph.shape}, "
                         f"got {tuple(H.shape)}")
    if H.dtype != graph.values.dtype or H.device != graph.values.device:
        raise ValueError(f"gcn_propagate: H is {H.dtype} on {H.device} but the graph is {graph.values.dtype} on "
                         f"{graph.values.device}; use graph.to(...)")
    backend = _resolve(H, backend)
    if backend == "reference":
        return gcn_propagate_reference(graph.coo(), H)
    return _Propagate.apply(graph, H.contiguous(), backend)


def _resolve(H: torch.Tensor, backend: str) -> str:
    return _native.resolve("gcn_propagate", H, backend, BACKENDS, "cpu", cuda_fallback="reference")


def _apply(indptr, indices, values, n_cols: int, H: torch.Tensor, backend: str) -> torch.Tensor:
    B, _, D = H.shape
    out = H.new_empty((B, indptr.shape[0] - 1, D))
    if backend == "cpu":
        _core.ops_gcn_propagate(indptr.numpy(), indices.numpy(), values.numpy(), n_cols, H.numpy(), out.numpy(),
                                torch.get_num_threads())
    else:
        _native.cuda_gcn_propagate(indptr, indices, values, n_cols, H, out)
    return out


class _Propagate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, graph: SparseGraph, H: torch.Tensor, backend: str) -> torch.Tensor:
        ctx.graph, ctx.backend = graph, backend
        return _apply(graph.indptr, graph.indices, graph.values, graph.shape[1], H, backend)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        g = ctx.graph
        grad_H = _apply(g.t_indptr, g.t_indices, g.t_values, g.shape[0], grad_out.contiguous(), ctx.backend)
        return None, grad_H, None
