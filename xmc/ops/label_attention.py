"""Label-wise attention: for every document b and (candidate) label c, a softmax over the
document's real tokens of h_t . q_c, then the probability-weighted sum of the token states.

Backends, all behind :func:`label_attention`:

- ``"reference"``: plain PyTorch (``xmc/ops/_reference.py``); builds the (B, C, T) scores.
- ``"chunked"``: labels in tiles with torch GEMMs; saves only the (B, C) log-sum-exp and
  recomputes each tile's scores in the backward (flash-attention style). Any device.
- ``"cpu"``: the fused C++ kernel in ``xmc._core`` (``csrc/ops/``), OpenMP over
  documents x label tiles, one online-softmax pass over tokens. CPU tensors only.
- ``"cuda"``: the CUDA kernels in ``xmc._cuda`` (``csrc/cuda/``). CUDA tensors only.
- ``"auto"``: ``"cuda"`` for CUDA tensors when ``xmc._cuda`` is built, ``"chunked"`` for
  other CUDA tensors, and the faster CPU path (:data:`CPU_AUTO_BACKEND`) for CPU tensors.

Setting the environment variable ``XMC_OPS_REFERENCE=1`` forces ``"reference"`` for every
call, whatever ``backend`` says: a switch to rule the kernels out when a result looks wrong.

The native backends use ``torch.get_num_threads()`` threads on the CPU.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch.autograd.function import once_differentiable

from xmc.ops import _native
from xmc.ops._reference import label_attention_reference

BACKENDS = ("auto", "reference", "chunked", "cpu", "cuda")
# The winner of benchmarks/label_attention.py on the CPU (see benchmarks/results/label_attention.md).
CPU_AUTO_BACKEND = "cpu"
# Bytes of one (B, tile, T) score block of the chunked backend; its backward holds about three.
CHUNK_BYTES = 32 * 2**20


def label_attention(
    H: torch.Tensor,
    mask: torch.Tensor,
    Q: torch.Tensor,
    candidates: Optional[torch.Tensor] = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Attention of every (candidate) label over each document's tokens.

    Args:
        H: (B, T, D) float32 or float64 token states.
        mask: (B, T) bool, True for a real token, False for padding.
        Q: (L, D) label queries, same dtype and device as H.
        candidates: (B, C) int64 label ids per document (repeats allowed), or None for all L labels.
        backend: one of :data:`BACKENDS`; see the module docstring.

    Returns:
        (B, C, D), or (B, L, D) without candidates. Differentiable in H and Q. A document
        whose mask is all False gets a zero output and zero gradients.
    """
    _check_inputs(H, mask, Q, candidates)
    backend = resolve_backend(H, backend)
    if backend == "reference":
        return label_attention_reference(H, mask, Q, candidates)
    H, mask, Q = H.contiguous(), mask.contiguous(), Q.contiguous()
    if candidates is not None:
        candidates = candidates.contiguous()
    if backend == "chunked":
        return _Chunked.apply(H, mask, Q, candidates)
    if backend == "cpu":
        return _Fused.apply(H, mask, Q, candidates, _native.cpu_forward, _native.cpu_backward)
    return _Fused.apply(H, mask, Q, candidates, _native.cuda_forward, _native.cuda_backward)


def resolve_backend(H: torch.Tensor, backend: str) -> str:
    """The backend a call with these inputs runs ("auto" resolved, XMC_OPS_REFERENCE applied)."""
    return _native.resolve("label_attention", H, backend, BACKENDS, CPU_AUTO_BACKEND, cuda_fallback="chunked")


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def _check_inputs(H: torch.Tensor, mask: torch.Tensor, Q: torch.Tensor, candidates: Optional[torch.Tensor]) -> None:
    if H.dim() != 3:
        raise ValueError(f"label_attention: H must be (B, T, D); found shape {_shape(H)}")
    if H.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"label_attention: H must be float32 or float64; found {H.dtype}")
    B, T, D = H.shape
    if mask.shape != (B, T):
        raise ValueError(f"label_attention: mask must be (B, T) = ({B}, {T}) like H; found {_shape(mask)}")
    if mask.dtype != torch.bool:
        raise TypeError(f"label_attention: mask must be bool (True = real token); found {mask.dtype}")
    if Q.dim() != 2 or Q.shape[1] != D:
        raise ValueError(f"label_attention: Q must be (L, D) with D = {D} like H; found {_shape(Q)}")
    if Q.dtype != H.dtype:
        raise TypeError(f"label_attention: Q must have H's dtype {H.dtype}; found {Q.dtype}")
    for name, t in (("mask", mask), ("Q", Q), ("candidates", candidates)):
        if t is not None and t.device != H.device:
            raise ValueError(f"label_attention: {name} is on {t.device} but H is on {H.device}")
    if candidates is None:
        return
    if candidates.dim() != 2 or candidates.shape[0] != B:
        raise ValueError(f"label_attention: candidates must be (B, C) with B = {B} like H; found {_shape(candidates)}")
    if candidates.dtype != torch.int64:
        raise TypeError(f"label_attention: candidates must be int64 label ids; found {candidates.dtype}")
    bad = (candidates < 0) | (candidates >= Q.shape[0])
    if candidates.numel() and bool(bad.any()):
        b, c = (int(i) for i in bad.nonzero()[0])
        raise IndexError(
            f"label_attention: candidates[{b}, {c}] = {int(candidates[b, c])} is outside [0, {Q.shape[0]}) "
            f"(Q has {Q.shape[0]} rows)"
        )


class _Fused(torch.autograd.Function):
    """The native kernels (CPU or CUDA): out and the (B, C) log-sum-exp saved, scores recomputed."""

    @staticmethod
    def forward(ctx, H, mask, Q, candidates, forward_kernel, backward_kernel):  # type: ignore[override]
        out, lse = forward_kernel(H, mask, Q, candidates)
        ctx.backward_kernel = backward_kernel
        ctx.save_for_backward(H, mask, Q, candidates, out, lse)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        H, mask, Q, candidates, out, lse = ctx.saved_tensors
        grad_H, grad_Q = ctx.backward_kernel(H, mask, Q, candidates, out, lse, grad_out.contiguous())
        return (
            grad_H if ctx.needs_input_grad[0] else None,
            None,
            grad_Q if ctx.needs_input_grad[2] else None,
            None,
            None,
            None,
        )


def _tile(H: torch.Tensor, n_labels: int) -> int:
    B, T, _ = H.shape
    per_label = max(1, B * T * H.element_size())
    return max(1, min(max(n_labels, 1), CHUNK_BYTES // per_label))


class _Tiles:
    """Scores of one label tile. Shared queries (no candidates): (B, T, tile) from one
    (B*T, D) x (D, tile) GEMM, tokens on axis 1. Gathered queries (candidates): (B, tile, T)
    from a batched GEMM, tokens on the last axis so the softmax reductions run over
    contiguous memory."""

    def __init__(self, H: torch.Tensor, mask: torch.Tensor, Q: torch.Tensor, candidates: Optional[torch.Tensor]):
        self.H, self.Q, self.candidates = H, Q, candidates
        B, T, D = H.shape
        self.H2 = H.view(B * T, D)
        self.shared = candidates is None
        self.axis = 1 if self.shared else 2  # the token axis of the scores
        # Unpadded batches skip the masking pass.
        pad = None if bool(mask.all()) else ~mask
        self.pad = None if pad is None else (pad[:, :, None] if self.shared else pad[:, None, :])

    def queries(self, c0: int, c1: int) -> torch.Tensor:
        """(tile, D) shared rows without candidates, else (B, tile, D) gathered rows."""
        return self.Q[c0:c1] if self.shared else self.Q[self.candidates[:, c0:c1]]

    def per_label(self, x: torch.Tensor) -> torch.Tensor:
        """A (B, tile) value laid out to broadcast against the scores."""
        return x[:, None, :] if self.shared else x[..., None]

    def mask_(self, s: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            s.masked_fill_(self.pad, -math.inf)
        return s

    def scores(self, q: torch.Tensor) -> torch.Tensor:
        B, T, _ = self.H.shape
        if self.shared:
            return self.mask_((self.H2 @ q.T).view(B, T, -1))  # B, T, tile
        return self.mask_(torch.bmm(q, self.H.transpose(1, 2)))  # B, tile, T


def _finite_or_zero(x: torch.Tensor) -> torch.Tensor:
    # The max or log-sum-exp of an all-padding document is -inf; shifting by 0 instead keeps
    # exp(-inf - shift) = 0 rather than NaN.
    return x.masked_fill(x == -math.inf, 0.0)


class _Chunked(torch.autograd.Function):
    """Label tiles with torch GEMMs; memory O(B * tile * T) beyond the (B, C, D) output."""

    @staticmethod
    def forward(ctx, H, mask, Q, candidates):  # type: ignore[override]
        B, T, D = H.shape
        C = Q.shape[0] if candidates is None else candidates.shape[1]
        tiles = _Tiles(H, mask, Q, candidates)
        out = H.new_empty((B, C, D))
        lse = H.new_empty((B, C))
        tile = _tile(H, C)
        for c0 in range(0, C, tile):
            c1 = min(C, c0 + tile)
            w = tiles.scores(tiles.queries(c0, c1))
            top = _finite_or_zero(w.amax(dim=tiles.axis))  # B, tile
            w.sub_(tiles.per_label(top)).exp_()
            total = w.sum(dim=tiles.axis)  # B, tile; 0 for a document without real tokens
            o = torch.bmm(w.transpose(1, 2) if tiles.shared else w, H)  # B, tile, D
            out[:, c0:c1] = o.div_(total.masked_fill(total == 0, 1.0)[..., None])
            lse[:, c0:c1] = top + total.log()
        ctx.save_for_backward(H, mask, Q, candidates, out, lse)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        H, mask, Q, candidates, out, lse = ctx.saved_tensors
        want_H, want_Q = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
        B, T, D = H.shape
        C = out.shape[1]
        tiles = _Tiles(H, mask, Q, candidates)
        grad_H = torch.zeros_like(H)
        grad_H2 = grad_H.view(B * T, D)
        grad_Q = torch.zeros_like(Q)
        tile = _tile(H, C)
        for c0 in range(0, C, tile):
            c1 = min(C, c0 + tile)
            q = tiles.queries(c0, c1)  # tile, D or B, tile, D
            g = grad_out[:, c0:c1]  # B, tile, D
            delta = tiles.per_label((g * out[:, c0:c1]).sum(-1))  # gO . out per (document, label)
            shift = tiles.per_label(_finite_or_zero(lse[:, c0:c1]))
            if tiles.shared:
                p = tiles.scores(q)  # B, T, tile: scores, turned into probabilities in place
                p.sub_(shift).exp_()
                ds = torch.bmm(H, g.transpose(1, 2))  # B, T, tile: dp, turned into ds in place
                ds.sub_(delta).mul_(p)
                if want_H:
                    grad_H.baddbmm_(p, g)
                    grad_H2.addmm_(ds.view(B * T, -1), q)  # one GEMM: the queries are shared
                if want_Q:
                    grad_Q[c0:c1] = ds.view(B * T, -1).T @ tiles.H2
                continue
            # Per-document queries: scores and dp in one batched GEMM against [q; g], and
            # grad_H = p g + ds q in one against [g; q]; wider GEMMs, fewer passes over H.
            n = c1 - c0
            both = torch.bmm(torch.cat([q, g], dim=1), H.transpose(1, 2))  # B, 2 tile, T: [s ; dp]
            p, ds = tiles.mask_(both[:, :n]), both[:, n:]
            p.sub_(shift).exp_()
            ds.sub_(delta).mul_(p)
            if want_H:
                grad_H.baddbmm_(both.transpose(1, 2), torch.cat([g, q], dim=1))
            if want_Q:
                dq = torch.bmm(ds, H)  # B, tile, D
                # index_put_ with accumulate sums repeated ids; on the CPU it is ~8x faster than index_add_
                grad_Q.index_put_((candidates[:, c0:c1].reshape(-1),), dq.reshape(-1, D), accumulate=True)
        return (grad_H if want_H else None), None, (grad_Q if want_Q else None), None
