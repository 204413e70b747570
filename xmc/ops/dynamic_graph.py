"""Dynamic graph propagation, LDGN's re-learning step: per document b,

    S = sigmoid(Qa[b] Kb[b]^T)            (labels x labels, rebuilt for every document)
    out[b] = D^-1/2 S D^-1/2 H[b]          D = diag(row sums of S)

without ever holding S: one pass over label tiles for the degrees, one for the product, and a
backward that recomputes each tile of S twice (once for the gradient through the product, once
for the gradient of the scores). Memory is a few tiles per document instead of (labels x labels).

Backends, all behind :func:`dynamic_graph_propagate` (differentiable in Qa, Kb and H):

- ``"reference"``: materialises S with plain PyTorch; autograd does the backward.
- ``"chunked"``: the tiled passes above with torch GEMMs, (TILE, labels) rows of S at a time
  (any device, any floating dtype).
- ``"cpu"``: the fused C++ kernel in ``xmc._core`` (``csrc/ops/dynamic_graph.cpp``): the same
  passes over (96 x 128) tiles of S that stay in cache, OpenMP over each document's row tiles;
  float32 and float64.
- ``"cuda"``: the CUDA kernel in ``xmc._cuda`` (``csrc/cuda/dynamic_graph.cu``); float32 and float64.
- ``"auto"``: ``"cpu"`` for float32/float64 CPU tensors, ``"cuda"`` for CUDA tensors when
  ``xmc._cuda`` is built, ``"chunked"`` otherwise. ``XMC_OPS_REFERENCE=1`` forces ``"reference"``.

Derivation of the backward (r = d^-1/2, G = r * H, out = r * (S G)):
    dG_j = sum_i S_ij r_i dO_i                    dH = r * dG
    dr_i = H_i . dG_i + dO_i . (S G)_i            dd = -r^3 dr / 2
    dS_ij = r_i dO_i . G_j + dd_i                 dZ = dS * S (1 - S)
    dQa = dZ Kb                                   dKb = dZ^T Qa
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from xmc.ops import _native

BACKENDS = ("auto", "reference", "chunked", "cpu", "cuda")
# The dtypes of the native kernels ("cpu", "cuda").
NATIVE_DTYPES = (torch.float32, torch.float64)
# Degrees are clamped here from below: sigmoid > 0 in exact arithmetic, but a row of large negative
# scores underflows to 0 in float32, and d^-1/2 (and the backward's d^-3/2) would be infinite.
MIN_DEGREE = 1e-6
# Rows of S per tile: a (TILE, L) block of one document's scores is the largest thing the chunked
# path holds beyond its (B, L, D) inputs and outputs.
TILE = 256


def dynamic_graph_propagate_reference(Qa: torch.Tensor, Kb: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """The formula as written, S materialised: the truth the other backends are tested against."""
    S = torch.sigmoid(Qa @ Kb.transpose(1, 2))  # B, L, L
    r = S.sum(dim=2).clamp_min(MIN_DEGREE).rsqrt()  # B, L
    return r[..., None] * (S @ (r[..., None] * H))


def dynamic_graph_propagate(Qa: torch.Tensor, Kb: torch.Tensor, H: torch.Tensor,
                            backend: str = "auto") -> torch.Tensor:
    """Qa, Kb (B, L, d), H (B, L, D) -> (B, L, D); see the module docstring."""
    if Qa.dim() != 3 or Kb.shape != Qa.shape or H.dim() != 3 or H.shape[:2] != Qa.shape[:2]:
        raise ValueError(f"dynamic_graph_propagate: Qa and Kb must be (B, L, d) and H (B, L, D) with the same B "
                         f"and L; got {tuple(Qa.shape)}, {tuple(Kb.shape)}, {tuple(H.shape)}")
    backend = _resolve(Qa, Kb, H, backend)
    if backend == "reference":
        return dynamic_graph_propagate_reference(Qa, Kb, H)
    Qa, Kb, H = Qa.contiguous(), Kb.contiguous(), H.contiguous()
    if backend == "chunked":
        return _Chunked.apply(Qa, Kb, H)
    if backend == "cpu":
        return _Fused.apply(Qa, Kb, H, _native.cpu_dynamic_graph_forward, _native.cpu_dynamic_graph_backward)
    return _Fused.apply(Qa, Kb, H, _native.cuda_dynamic_graph_forward, _native.cuda_dynamic_graph_backward)


def _resolve(Qa: torch.Tensor, Kb: torch.Tensor, H: torch.Tensor, backend: str) -> str:
    native = Qa.dtype in NATIVE_DTYPES and Kb.dtype == Qa.dtype and H.dtype == Qa.dtype
    if backend == "auto" and not native:
        backend = "chunked"  # the native kernels' dtypes only; the torch paths take any
    backend = _native.resolve("dynamic_graph_propagate", H, backend, BACKENDS, "cpu", cuda_fallback="chunked")
    if backend in ("cpu", "cuda"):
        if not native:
            raise TypeError(f"dynamic_graph_propagate: backend={backend!r} needs Qa, Kb and H of one dtype, float32 "
                            f"or float64; got {Qa.dtype}, {Kb.dtype}, {H.dtype}")
        if Qa.device != H.device or Kb.device != H.device:
            raise ValueError(f"dynamic_graph_propagate: Qa, Kb and H must be on one device; got {Qa.device}, "
                             f"{Kb.device}, {H.device}")
    return backend


def _rows(L: int):
    """(first row, end row) of every tile of one document's S."""
    for i0 in range(0, L, TILE):
        yield i0, min(i0 + TILE, L)


class _Chunked(torch.autograd.Function):
    """One document at a time and S in (TILE, L) tiles, so beyond the inputs, the output and the
    gradients, nothing larger than (L, D) for one document is ever held."""

    @staticmethod
    def forward(ctx, Qa: torch.Tensor, Kb: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
        B, L = Qa.shape[:2]
        d = Qa.new_empty((B, L))
        SG = torch.empty_like(H)
        for b in range(B):
            Kt = Kb[b].T
            for i0, i1 in _rows(L):
                d[b, i0:i1] = torch.sigmoid(Qa[b, i0:i1] @ Kt).sum(dim=1)
            r = d[b].clamp_min(MIN_DEGREE).rsqrt()
            G = r[:, None] * H[b]
            for i0, i1 in _rows(L):
                SG[b, i0:i1] = torch.sigmoid(Qa[b, i0:i1] @ Kt) @ G
        r = d.clamp_min(MIN_DEGREE).rsqrt()
        out = SG.mul_(r[..., None])  # in place: S G is not kept beside the output
        # The output itself is saved (autograd holds it anyway): the backward recovers S G = out / r.
        ctx.save_for_backward(Qa, Kb, H, d, out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dO: torch.Tensor):
        Qa, Kb, H, d, out = ctx.saved_tensors
        B, L = Qa.shape[:2]
        dQa, dKb, dH = torch.empty_like(Qa), torch.zeros_like(Kb), torch.empty_like(H)
        for b in range(B):
            r = d[b].clamp_min(MIN_DEGREE).rsqrt()
            G = r[:, None] * H[b]
            rdO = r[:, None] * dO[b]
            Kt = Kb[b].T
            # Pass 1: dG = S^T (r dO), tile by tile over the rows of S.
            dG = torch.zeros_like(G)
            for i0, i1 in _rows(L):
                dG += torch.sigmoid(Qa[b, i0:i1] @ Kt).T @ rdO[i0:i1]
            dH[b] = r[:, None] * dG
            dr = (H[b] * dG).sum(dim=1) + (dO[b] * out[b]).sum(dim=1) / r  # out = r S G
            dd = torch.where(d[b] > MIN_DEGREE, -0.5 * r ** 3 * dr, torch.zeros_like(dr))  # clamped: no gradient
            # Pass 2: the scores' gradient, tile by tile, straight into dQa and dKb.
            Gt = G.T
            for i0, i1 in _rows(L):
                S = torch.sigmoid(Qa[b, i0:i1] @ Kt)
                dZ = (rdO[i0:i1] @ Gt + dd[i0:i1, None]) * S * (1 - S)
                dQa[b, i0:i1] = dZ @ Kb[b]
                dKb[b] += dZ.T @ Qa[b, i0:i1]
        return dQa, dKb, dH


class _Fused(torch.autograd.Function):
    """The native kernels (CPU or CUDA): the forward keeps the (B, L) degrees and the output,
    the backward rebuilds S tile by tile from Qa and Kb."""

    @staticmethod
    def forward(ctx, Qa, Kb, H, forward_kernel, backward_kernel):  # type: ignore[override]
        out, degrees = forward_kernel(Qa, Kb, H, MIN_DEGREE)
        ctx.backward_kernel = backward_kernel
        ctx.save_for_backward(Qa, Kb, H, degrees, out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dO: torch.Tensor):
        Qa, Kb, H, degrees, out = ctx.saved_tensors
        dQa, dKb, dH = ctx.backward_kernel(Qa, Kb, H, degrees, out, dO.contiguous(), MIN_DEGREE)
        return dQa, dKb, dH, None, None
