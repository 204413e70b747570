"""Plain PyTorch label-wise attention: the truth the other backends are tested against."""
from __future__ import annotations

from typing import Optional

import torch


def label_attention_reference(
    H: torch.Tensor, mask: torch.Tensor, Q: torch.Tensor, candidates: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """softmax over real tokens of h_t . q_c, then the weighted sum of the h_t; autograd does the backward.

    Materialises the (B, C, T) scores and probabilities, which is what the other backends avoid.
    """
    if candidates is None:
        scores = torch.einsum("btd,cd->bct", H, Q)  # B, L, T
    else:
        scores = torch.einsum("btd,bcd->bct", H, Q[candidates])  # B, C, T
    keep = mask[:, None, :]  # B, 1, T
    # A document without real tokens gets uniform scores (0) instead of all -inf, whose softmax
    # and its gradient are NaN; multiplying by the mask then zeroes its output and gradients.
    fill = torch.where(mask.any(dim=1), float("-inf"), 0.0).to(scores.dtype)  # B
    scores = torch.where(keep, scores, fill[:, None, None])
    attn = torch.softmax(scores, dim=-1) * keep  # B, C, T
    return torch.einsum("bct,btd->bcd", attn, H)  # B, C, D


def gcn_propagate_reference(A: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """out[b] = A @ H[b] with torch.sparse (A a sparse COO (rows, cols) tensor; H (B, cols, D)).

    All documents go through one sparse-dense product over (cols, B * D); autograd does the backward.
    """
    B, cols, D = H.shape
    stacked = H.permute(1, 0, 2).reshape(cols, B * D)
    return torch.sparse.mm(A, stacked).reshape(A.shape[0], B, D).permute(1, 0, 2)
