"""Token encoders of the deep models: word ids -> one state per token.

``BiLSTMEncoder``: word embeddings -> BiLSTM token states. ``FeedForwardEncoder``: the same
shape of states from each word alone, for bags of words (no order to read).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def reverse_within_lengths(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) gather index that reverses each row's first ``lengths[b]`` steps and leaves the padding in place.

    It is its own inverse, so the same index turns the backward LSTM's outputs back into token order.
    """
    t = torch.arange(T, device=lengths.device).unsqueeze(0)
    lengths = lengths.unsqueeze(1)
    return torch.where(t < lengths, lengths - 1 - t, t)


def word_embedding(embeddings: np.ndarray, train: bool) -> nn.Embedding:
    """An embedding layer over a copy of ``embeddings`` (row 0: padding). A copy: sharing the caller's array
    would let every network built from it (each AttentionXML level) train one embedding matrix in place, so
    training level d would change level d-1.

    A trained embedding has sparse gradients (the rows a batch uses), which ``xmc.training.optim.LazyAdam``
    updates without touching the other rows."""
    weights = torch.tensor(np.asarray(embeddings, dtype=np.float32))
    return nn.Embedding.from_pretrained(weights, freeze=not train, padding_idx=0, sparse=train)


class BiLSTMEncoder(nn.Module):
    """Embedding -> dropout -> BiLSTM; token states (B, T, 2 * hidden).

    The backward direction runs a forward LSTM over each document reversed within its
    length, so both directions see real tokens before padding, exactly as a packed
    BiLSTM, while running on the fast unpacked (oneDNN / cuDNN) kernels: on the CPU,
    PyTorch's packed-sequence LSTM falls back to a per-step loop whose backward is
    about 30x slower than its forward.
    """

    def __init__(self, embeddings: np.ndarray, hidden: int, layers: int = 1,
                 embedding_dropout: float = 0.2, dropout: float = 0.5, train_embeddings: bool = True) -> None:
        super().__init__()
        self.embedding = word_embedding(embeddings, train_embeddings)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        widths = [self.embedding.embedding_dim] + [2 * hidden] * (layers - 1)
        self.forward_lstms = nn.ModuleList(nn.LSTM(w, hidden, batch_first=True) for w in widths)
        self.backward_lstms = nn.ModuleList(nn.LSTM(w, hidden, batch_first=True) for w in widths)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = 2 * hidden

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.dropout(bidirectional(self.forward_lstms, self.backward_lstms,
                                          self.embedding_dropout(self.embedding(ids)), mask))


class FeedForwardEncoder(nn.Module):
    """Embedding -> dropout -> two position-wise layers (ReLU); token states (B, T, 2 * hidden).

    For documents that are bags of words (Delicious' 500 binary word features): a BiLSTM would read an
    order that is only the feature ids' order. Each word's state depends on that word alone, so the
    label attention above sees a set, and a document's states are the same whatever order its words
    come in.
    """

    def __init__(self, embeddings: np.ndarray, hidden: int, embedding_dropout: float = 0.2, dropout: float = 0.5,
                 train_embeddings: bool = True) -> None:
        super().__init__()
        self.embedding = word_embedding(embeddings, train_embeddings)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.layers = nn.Sequential(nn.Linear(self.embedding.embedding_dim, 2 * hidden), nn.ReLU(),
                                    nn.Linear(2 * hidden, 2 * hidden), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.output_dim = 2 * hidden

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.layers(self.embedding_dropout(self.embedding(ids))))


def token_encoder(embeddings: np.ndarray, params) -> nn.Module:
    """``params.token_encoder``'s encoder ("bilstm" or "feedforward") of a ``DeepParams``."""
    if params.token_encoder == "feedforward":
        return FeedForwardEncoder(embeddings, params.hidden, params.embedding_dropout, params.dropout,
                                  params.train_embeddings)
    return BiLSTMEncoder(embeddings, params.hidden, params.lstm_layers, params.embedding_dropout,
                         params.dropout, params.train_embeddings)


def bidirectional(forward_lstms: nn.ModuleList, backward_lstms: nn.ModuleList, x: torch.Tensor,
                  mask: torch.Tensor) -> torch.Tensor:
    """Stacked BiLSTM states (B, T, 2 * hidden) of the vectors x (B, T, D), each row read within its length."""
    index = reverse_within_lengths(mask.sum(dim=1), x.shape[1]).unsqueeze(-1)
    for forward_lstm, backward_lstm in zip(forward_lstms, backward_lstms):
        ahead, _ = forward_lstm(x)
        behind, _ = backward_lstm(x.gather(1, index.expand(-1, -1, x.shape[2])))
        behind = behind.gather(1, index.expand(-1, -1, behind.shape[2]))
        x = torch.cat([ahead, behind], dim=2)
    return x
