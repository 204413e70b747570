"""Seq2Seq with multi-level dilated convolution and hybrid attention (Lin et al., 2018, "Semantic-Unit-Based
Dilated Convolution for Multi-Label Text Classification").

A document's labels are generated as a sequence, most frequent label first:

- the BiLSTM encoder of the other models gives word states h (B, T, 2 * hidden);
- multi-level dilated convolution (MDC): three 1-d convolutions over h, kernel 3, dilation rates 1, 2, 3,
  no padding, give the semantic units g (B, T - 12, 2 * hidden). Rates without a common factor cover every
  position of the 13-word receptive field (no gridding);
- an LSTM decoder reads the previous label and its output s_t attends first to the semantic units
  (s'_t = tanh(W [s_t; c(s_t, g)])) and then, from s'_t, to the words (s~_t = tanh(W' [s'_t; c(s'_t, h)]));
  o_t = [s'_t; s~_t] scores every label and end-of-sequence. Attention is the paper's bilinear
  e_{t,i} = s^T W_a h_i. ``params.decoder_attention`` selects the paper's ablations: "hybrid" (the model),
  "additive" (s_t attends to g and to h separately, o_t = s'_t + s~_t), "units" (MDC only), "words" (the
  conventional attention over the word states) and "none";
- decoding is a beam search (width ``beam``, the ``--beam`` of ``xmc predict``) that never emits a label
  twice and stops at end-of-sequence; a hypothesis that reaches the longest label set seen in training
  must end there.

The decoded label set is what the paper evaluates (Hamming loss, micro-F1): :meth:`Seq2SeqMDC.predict_sets`.
For ranking metrics every label gets a score from the decoder's probabilities: the highest probability any
step of the best hypothesis gave it (so the labels it emitted score what they were emitted with).

The label tree of the other models holds the labels' frequency order here: one leaf, labels by descending
training frequency, so a decoder output index is a label's frequency rank.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from xmc.data import TextData
from xmc.layers.encoders import BiLSTMEncoder
from xmc.layers.heads import masked_softmax
from xmc.metrics import f1_scores
from xmc.models.base import DeepModel, Docs, Log
from xmc.models.params import BiLSTMParams
from xmc.params import check_choice, check_int, param
from xmc.training.batching import eval_batches, tensors, top_k
from xmc.training.loop import train_epochs
from xmc.tree import LabelTree
from xmc.utils.modeldir import ModelFormatError

KIND = "seq2seq-mdc"
DILATION_RATES = (1, 2, 3)
KERNEL = 3
MAX_STEPS_KEY = "max_steps"


DECODER_ATTENTIONS = ("hybrid", "additive", "units", "words", "none")


@dataclass
class Seq2SeqMDCParams(BiLSTMParams):
    """Seq2Seq-MDC: labels decoded as a sequence, multi-level dilated convolutions, hybrid attention."""

    decoder_attention: str = param("hybrid", "hybrid (semantic units, then words: the paper's), additive, units, "
                                             "words (conventional attention) or none")
    label_embedding_dim: int = param(256, "width of the decoder's label embeddings")
    top_k: int = param(16, "the decoder's beam width")

    def validate(self) -> None:
        super().validate()
        check_choice(self.decoder_attention, "decoder_attention", DECODER_ATTENTIONS)
        check_int(self.label_embedding_dim, "label_embedding_dim")
        check_int(self.top_k, "top_k")


class DilatedConvolutions(nn.Module):
    """MDC: 1-d convolutions with ``rates`` dilations, no padding, ReLU; (B, T, W) -> (B, T - shrink, W)."""

    def __init__(self, width: int, rates: Sequence[int] = DILATION_RATES, kernel: int = KERNEL) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(width, width, kernel, dilation=r) for r in rates)
        self.shrink = sum((kernel - 1) * r for r in rates)

    @property
    def receptive_field(self) -> int:
        return self.shrink + 1

    def forward(self, H: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Semantic units and their mask: unit j sees words j .. j + shrink, and is real when they all are
        (a document shorter than the receptive field keeps one unit, over its words and zeros)."""
        x = (H * mask.unsqueeze(-1).to(H.dtype)).transpose(1, 2)
        short = self.receptive_field - x.shape[2]
        if short > 0:
            x = nn.functional.pad(x, (0, short))
        for conv in self.convs:
            x = torch.relu(conv(x))
        units = x.transpose(1, 2)
        lengths = mask.sum(dim=1, keepdim=True)
        unit_mask = torch.arange(units.shape[1], device=H.device).unsqueeze(0) < (lengths - self.shrink).clamp(min=1)
        return units, unit_mask


class BilinearAttention(nn.Module):
    """c = sum_i softmax_i(s^T W_a k_i) k_i, then tanh(W [s; c]) (Luong's 'general' attention)."""

    def __init__(self, query_dim: int, key_dim: int) -> None:
        super().__init__()
        self.key_map = nn.Linear(key_dim, query_dim, bias=False)
        self.combine = nn.Linear(query_dim + key_dim, query_dim)

    def keys(self, values: torch.Tensor) -> torch.Tensor:
        """W_a k_i for every key, computed once per document (not once per decoding step)."""
        return self.key_map(values)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """``query`` (B * W, d): W queries per document, document-major (W beam hypotheses when decoding, 1
        in training); ``keys``, ``values`` (B, T, .) and ``mask`` (B, T) once per document, never copied W
        times (the beam's copies of the memory held gigabytes)."""
        B = keys.shape[0]
        energy = torch.bmm(query.view(B, -1, query.shape[1]), keys.transpose(1, 2))  # B, W, T
        context = torch.bmm(masked_softmax(energy, mask.unsqueeze(1), dim=2), values).view(query.shape[0], -1)
        return torch.tanh(self.combine(torch.cat([query, context], dim=1)))


class Seq2SeqNetwork(nn.Module):
    """Encoder, MDC, LSTM decoder with the attention of ``params.decoder_attention``, output over labels + EOS."""

    def __init__(self, embeddings: np.ndarray, n_labels: int, params: Seq2SeqMDCParams) -> None:
        super().__init__()
        self.mode = params.decoder_attention
        self.n_labels = n_labels
        self.eos, self.bos = n_labels, n_labels + 1
        self.encoder = BiLSTMEncoder(embeddings, params.hidden, params.lstm_layers, params.embedding_dropout,
                                     params.dropout, params.train_embeddings)
        width = self.encoder.output_dim
        self.mdc = DilatedConvolutions(width) if self.mode in ("hybrid", "additive", "units") else None
        self.label_embedding = nn.Embedding(n_labels + 2, params.label_embedding_dim)
        self.init_state = nn.Linear(width, width)
        self.decoder = nn.LSTMCell(params.label_embedding_dim, width)
        self.unit_attention = BilinearAttention(width, width) if self.mdc is not None else None
        self.word_attention = BilinearAttention(width, width) if self.mode in ("hybrid", "additive", "words") else None
        self.dropout = nn.Dropout(params.dropout)
        self.output = nn.Linear(2 * width if self.mode == "hybrid" else width, n_labels + 1)

    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        """What every decoding step reads: word states, semantic units, their projected keys, masks."""
        H = self.encoder(ids, mask)
        memory = {"words": H, "word_mask": mask}
        if self.word_attention is not None:
            memory["word_keys"] = self.word_attention.keys(H)
        if self.mdc is not None:
            units, unit_mask = self.mdc(H, mask)
            memory.update(units=units, unit_mask=unit_mask, unit_keys=self.unit_attention.keys(units))
        return memory

    def start(self, memory: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """The decoder's first state from the mean of the word states."""
        mask = memory["word_mask"].unsqueeze(-1).to(memory["words"].dtype)
        mean = (memory["words"] * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        h = torch.tanh(self.init_state(mean))
        return h, torch.zeros_like(h)

    def step(self, previous: torch.Tensor, state: Tuple[torch.Tensor, torch.Tensor],
             memory: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Logits over labels + EOS for one step, and the decoder's new state."""
        h, c = self.decoder(self.label_embedding(previous), state)
        s = h
        if self.mode == "hybrid":  # first the semantic units, then the words from what the units gave
            s_units = self.unit_attention(s, memory["unit_keys"], memory["units"], memory["unit_mask"])
            s_words = self.word_attention(s_units, memory["word_keys"], memory["words"], memory["word_mask"])
            out = torch.cat([s_units, s_words], dim=1)
        elif self.mode == "additive":
            out = (self.unit_attention(s, memory["unit_keys"], memory["units"], memory["unit_mask"])
                   + self.word_attention(s, memory["word_keys"], memory["words"], memory["word_mask"]))
        elif self.mode == "units":
            out = self.unit_attention(s, memory["unit_keys"], memory["units"], memory["unit_mask"])
        elif self.mode == "words":
            out = self.word_attention(s, memory["word_keys"], memory["words"], memory["word_mask"])
        else:
            out = s
        return self.output(self.dropout(out)), (h, c)

    def teacher_forced_loss(self, ids: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the label sequences ``targets`` (B, S): labels by frequency rank, EOS, then -1."""
        memory = self.encode(ids, mask)
        state = self.start(memory)
        B, S = targets.shape
        previous = torch.full((B,), self.bos, dtype=torch.long, device=ids.device)
        emitted = torch.zeros(B, self.n_labels + 1, dtype=torch.bool, device=ids.device)
        losses = []
        for t in range(S):
            logits, state = self.step(previous, state, memory)
            # As in decoding, a label already in the sequence cannot come again.
            losses.append(nn.functional.cross_entropy(logits.masked_fill(emitted, float("-inf")), targets[:, t],
                                                      ignore_index=-1, reduction="sum"))
            previous = targets[:, t].clamp(min=0)
            emitted = emitted | nn.functional.one_hot(previous, self.n_labels + 1).bool()
            emitted[:, self.eos] = False
        return torch.stack(losses).sum() / (targets >= 0).sum().clamp(min=1)

    @torch.no_grad()
    def beam_search(self, ids: torch.Tensor, mask: torch.Tensor, beam: int,
                    max_steps: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The best hypothesis of each document: (B, L) bool, the labels it emitted; (B, L) float, the
        highest probability any of its steps gave each label; (B, steps) its tokens (EOS = n_labels, then
        EOS again once finished)."""
        B, L, V = ids.shape[0], self.n_labels, self.n_labels + 1
        W = max(1, beam)
        memory = self.encode(ids, mask)  # once per document: the attention reads it for all W hypotheses
        h, c = (x.repeat_interleave(W, dim=0) for x in self.start(memory))
        device = ids.device
        scores = torch.full((B, W), float("-inf"), device=device)
        scores[:, 0] = 0.0  # one live hypothesis to start: W copies would fill the beam with duplicates
        finished = torch.zeros(B, W, dtype=torch.bool, device=device)
        emitted = torch.zeros(B, W, V, dtype=torch.bool, device=device)
        best_prob = torch.zeros(B, W, L, device=device)
        previous = torch.full((B * W,), self.bos, dtype=torch.long, device=device)
        stay = torch.full((V,), float("-inf"), device=device)
        stay[self.eos] = 0.0  # a finished hypothesis continues with a free EOS and keeps its score
        rows = torch.arange(B, device=device).unsqueeze(1)
        history = torch.zeros(B, W, 0, dtype=torch.long, device=device)
        for t in range(max_steps):
            logits, (h, c) = self.step(previous, (h, c), memory)
            logits = logits.view(B, W, V).masked_fill(emitted, float("-inf"))
            if t == max_steps - 1:
                logits[:, :, :L] = float("-inf")  # the longest label set seen in training ends here
            log_probs = torch.log_softmax(logits, dim=2)
            live = ~finished
            best_prob = torch.where(live.unsqueeze(2), torch.maximum(best_prob, log_probs[:, :, :L].exp()), best_prob)
            log_probs = torch.where(finished.unsqueeze(2), stay, log_probs)
            top_scores, top = (scores.unsqueeze(2) + log_probs).view(B, W * V).topk(W, dim=1)
            source, token = top // V, top % V
            emitted, best_prob, finished = emitted[rows, source], best_prob[rows, source], finished[rows, source]
            history = torch.cat([history[rows, source], token.unsqueeze(2)], dim=2)
            is_label = token < L
            emitted = emitted | (nn.functional.one_hot(token, V).bool() & is_label.unsqueeze(2))
            finished = finished | ~is_label
            scores = top_scores
            flat_source = (rows * W + source).view(-1)
            h, c = h[flat_source], c[flat_source]
            previous = token.view(-1)
            if bool(finished.all()):
                break
        best = scores.argmax(dim=1)
        batch = torch.arange(B, device=device)
        return emitted[batch, best, :L], best_prob[batch, best], history[batch, best]


class Seq2SeqMDC(DeepModel):
    """See the module docstring."""

    KIND = KIND
    PARAMS = Seq2SeqMDCParams
    NETWORK = Seq2SeqNetwork

    def __init__(self, params: Optional[Seq2SeqMDCParams] = None, **settings) -> None:
        super().__init__(params, **settings)
        self.network: Optional[Seq2SeqNetwork] = None
        self.max_steps = 0  # decoding steps: the longest training label set + EOS

    def fit(self, corpus: TextData, y=None, valid: Optional[TextData] = None, tree: Optional[LabelTree] = None,
            **kwargs) -> "Seq2SeqMDC":
        if tree is not None:
            raise ValueError(f"{KIND} orders its labels by training frequency and uses no label tree; "
                             f"leave out --tree")
        return super().fit(corpus, y, valid=valid, tree=None, **kwargs)

    def _build_tree(self, texts: Sequence[str], Y: sp.csr_matrix) -> LabelTree:
        frequency = np.asarray(Y.sum(axis=0)).ravel()
        by_frequency = np.argsort(-frequency, kind="stable")  # ties: the label vocabulary's order
        return LabelTree([np.array([0, Y.shape[1]])], by_frequency)

    def _sequences(self, Y_pos: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """(B, S) targets: each row's labels by frequency rank, then EOS, padded with -1."""
        sub = Y_pos[rows]
        counts = np.diff(sub.indptr)
        out = np.full((rows.size, int(counts.max()) + 1), -1, dtype=np.int64)
        for b in range(rows.size):
            ranks = np.sort(sub.indices[sub.indptr[b]:sub.indptr[b + 1]])
            out[b, :ranks.size] = ranks
            out[b, ranks.size] = Y_pos.shape[1]
        return out

    def _fit_networks(self, docs: Docs, Y: sp.csr_matrix, valid_docs: Docs, Y_valid: sp.csr_matrix,
                      embeddings: np.ndarray, progress: bool, log: Optional[Log], checkpoint=None) -> None:
        p = self.params
        order = self.tree.label_order
        Y_pos, Y_valid_pos = Y[:, order].tocsr(), Y_valid[:, order].tocsr()
        Y_pos.sort_indices()
        self.max_steps = int(np.diff(Y_pos.indptr).max()) + 1
        torch.manual_seed(p.training.seed)
        self.network = Seq2SeqNetwork(embeddings, Y.shape[1], p).to(self.device)
        net = self.network
        lengths = np.array([d.size for d in docs])

        def step(index: np.ndarray) -> torch.Tensor:
            ids, mask = tensors(docs, index, p.text.max_len, self.device)
            targets = torch.from_numpy(self._sequences(Y_pos, index)).to(self.device)
            return net.teacher_forced_loss(ids, mask, targets)

        def validate() -> Dict[str, float]:
            predicted, scores = self._decode_all(valid_docs, p.top_k, p.training.eval_batch_size, None)
            micro, macro = f1_scores(Y_valid_pos, predicted)
            return {"micro-F1": micro, "macro-F1": macro}

        loop_checkpoint = checkpoint.for_level(1, "network", net) if checkpoint is not None else None
        train_epochs(net, step, lengths, p.training, validate, desc=f"{KIND} ({p.decoder_attention} attention)",
                     log=log, progress=progress, monitor="micro-F1", checkpoint=loop_checkpoint, prior=self.label_prior)

    # ---- prediction -------------------------------------------------------------
    def _decode_all(self, docs: Docs, beam: int, batch_size: int,
                    on_batch: Optional[Callable[[int], None]]) -> Tuple[sp.csr_matrix, np.ndarray]:
        """Decoded sets (n, L) in label positions (frequency ranks) and every label's score (n, L)."""
        net = self.network
        net.eval()
        L = self.tree.n_labels
        sets = np.zeros((len(docs), L), dtype=bool)
        scores = np.zeros((len(docs), L), dtype=np.float32)
        for index in eval_batches(np.array([d.size for d in docs]), batch_size):
            ids, mask = tensors(docs, index, self.params.text.max_len, self.device)
            emitted, probs, _ = net.beam_search(ids, mask, beam, self.max_steps)
            sets[index], scores[index] = emitted.cpu().numpy(), probs.cpu().numpy()
            if on_batch is not None:
                on_batch(index.size)
        return sp.csr_matrix(sets, dtype=np.float32), scores

    def _search(self, docs: Docs, k: int, beam: int, batch_size: int,
                on_batch: Optional[Callable[[int], None]]) -> Tuple[np.ndarray, np.ndarray]:
        return top_k(self._decode_all(docs, beam, batch_size, on_batch)[1], k)

    def predict_sets(self, corpus_or_docs, beam: Optional[int] = None, threads: Optional[int] = None,
                     batch_size: Optional[int] = None) -> sp.csr_matrix:
        """The decoded label sets, (n, n_labels) binary CSR in the model's label ids."""
        docs = self._prediction_docs(corpus_or_docs, threads)
        sets, _ = self._decode_all(docs, max(int(beam or self.params.top_k), 1),
                                   batch_size or self.params.training.eval_batch_size, None)
        # Positions are frequency ranks; the tree's label_order maps them back to label ids.
        return sets[:, np.argsort(self.tree.label_order)].tocsr()

    # ---- persistence ------------------------------------------------------------
    def _manifest_extra(self) -> Dict:
        return {MAX_STEPS_KEY: self.max_steps}

    def _load_weights(self, arrays: Dict[str, np.ndarray], info: Dict, directory: Path) -> None:
        L = self.tree.n_labels
        steps = info.get(MAX_STEPS_KEY)
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= L + 1:
            raise ModelFormatError(f"{directory / 'xmc.json'}: {MAX_STEPS_KEY!r} must be an integer in "
                                   f"[1, {L + 1}] (the longest label set + 1), found {steps!r}"[:300])
        if self.tree.depth != 1:
            raise ModelFormatError(f"{directory / 'tree'}: {KIND} keeps its label order in a one-leaf tree, "
                                   f"found depth {self.tree.depth}")
        self.max_steps = steps
        self._load_network(arrays, directory)
