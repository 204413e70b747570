"""Losses of the deep models."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Binary cross-entropy averaged over the valid (document, candidate) pairs."""
    loss = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if valid is None:
        return loss.mean()
    valid = valid.to(loss.dtype)
    return (loss * valid).sum() / valid.sum().clamp(min=1.0)
