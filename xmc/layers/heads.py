"""Output heads over token states.

``AttentionScorer``: one query per label (or tree node), ``xmc.ops.label_attention`` over the token
states, then fully connected layers shared by all labels down to one logit per (document, candidate).
``ClusterGenerator``: LightAttention's generator, one logit per label cluster from the pooled document
representation.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from xmc.ops import label_attention


class AttentionScorer(nn.Module):
    """Label-wise attention + shared fully connected layers -> one logit per candidate."""

    def __init__(self, n_outputs: int, input_dim: int, fc_sizes: Sequence[int], dropout: float = 0.5) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.empty(n_outputs, input_dim))
        nn.init.xavier_uniform_(self.queries)
        layers = []
        width = input_dim
        for size in fc_sizes:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.fc = nn.Sequential(*layers)

    @property
    def n_outputs(self) -> int:
        return self.queries.shape[0]

    def forward(self, H: torch.Tensor, mask: torch.Tensor,
                candidates: Optional[torch.Tensor] = None) -> torch.Tensor:
        attended = label_attention(H, mask, self.queries, candidates)
        return self.fc(attended).squeeze(-1)


class ClusterGenerator(nn.Module):
    """LightAttention's generator: masked max-pool of the token states -> one logit per label cluster."""

    def __init__(self, n_clusters: int, input_dim: int, hidden: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, n_clusters))

    def forward(self, H: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = H.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)
        pooled = torch.where(torch.isfinite(pooled), pooled, torch.zeros_like(pooled))
        return self.net(pooled)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over the positions where ``mask`` is True; a row without any (an empty document) gets zeros,
    not the NaN of a softmax over nothing but -inf."""
    has_any = mask.any(dim=dim, keepdim=True)
    scores = torch.where(has_any, scores.masked_fill(~mask, float("-inf")), torch.zeros_like(scores))
    return torch.softmax(scores, dim=dim) * mask.to(scores.dtype)

