"""LW-PT: label-wise pre-training for multi-label text classification (Liu et al., "Label-Wise Document
Pre-Training for Multi-Label Text Classification", NLPCC 2020).

Two label-wise encoders give every document one vector per label k:

- LW-LSTM (``params.encoder = "lw"``): BiLSTM word states H, then Q_k = softmax(H U_k)^T H, one attention
  vector U_k per label (``xmc.ops.label_attention``);
- HLW-LSTM (``"hlw"``, for long documents): the same at word level inside each sentence gives sentence
  vectors [S_k]_j, a second BiLSTM runs over each label's sentence vectors and a sentence-level attention
  vector per label gives Q_k. Sentences end at ``.``, ``!`` or ``?`` (kept as tokens: the HLW model's
  tokenizer adds them to its pattern); longer ones are cut every ``params.sentence_len`` words.

Pre-training (``params.pretrain_steps`` steps): a target document T, one of its labels k, one candidate
document C+ that also has k and n-1 (``params.pretrain_candidates`` = n) that do not; the T-Encoder's
Q_k(T) and the C-Encoder's Q_k(C_i) are compared by dot product and a softmax over the n candidates is
trained to pick C+ (the paper's eq. 3). Fine-tuning: M_k = [Q_k^t; Q_k^c] for every label, all of them
concatenated, one linear layer to the L logits, binary cross-entropy; both encoders keep training.
``pretrain_steps = 0`` is the paper's "LW-LSTM" baseline (the same model without pre-training).

The pre-trained encoders are saved with the model, in ``MODEL_DIR/pretrained/`` (an LW-PT model directory
whose encoders are those pre-training left and whose head is untrained), and are reusable:
``LWPT(params, pretrained=MODEL_DIR/pretrained)`` (``xmc train --model lwpt --set pretrained=DIR``) fine-tunes
from them, on their word and label vocabularies, without pre-training again.

Layer normalisation on the encoders' outputs and dropout follow the paper's details. Predicted label sets
(micro-/macro-F1, Hamming loss) are the labels of probability >= 0.5: :meth:`LWPT.predict_sets`.
"""
from __future__ import annotations

import copy
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from xmc.data import TextData
from xmc.layers.encoders import BiLSTMEncoder, bidirectional
from xmc.layers.losses import masked_bce
from xmc.metrics import evaluate
from xmc.models.base import Docs, Log
from xmc.models.flat import FlatLabelModel
from xmc.models.params import BiLSTMParams
from xmc.ops import label_attention
from xmc.params import check_choice, check_int, param
from xmc.text.tokens import DEFAULT_TOKEN_PATTERN
from xmc.training.batching import dense_targets, tensors
from xmc.training.loop import distributed_steps, train_epochs
from xmc.training.optim import LazyAdam, clip_grad_norm
from xmc.utils.progress import progress as show_progress

KIND = "lwpt"
PRETRAINED_DIR = "pretrained"
SENTENCE_END = r"[.!?]+"
# The head maps all labels' representations to all labels: L * 4d * L weights. Past this, LW-PT is the wrong tool.
MAX_HEAD_WEIGHTS = 200_000_000


ENCODERS = ("lw", "hlw")


@dataclass
class LWPTParams(BiLSTMParams):
    """LW-PT: label-wise pre-training of two label-wise encoders on label pairs, then fine-tuning."""

    encoder: str = param("lw", "lw (LW-LSTM) or hlw (HLW-LSTM: words, then sentences, for long documents)")
    pretrain_steps: int = param(1000, "steps of the pre-training task (0: none, the paper's baseline)")
    pretrain_candidates: int = param(3, "candidate documents per pre-training example: one positive, the rest not")
    max_sentences: int = param(30, "HLW-LSTM: sentences kept per document")
    sentence_len: int = param(50, "HLW-LSTM: words kept per sentence")
    pretrained: Optional[str] = param(None, "fine-tune from these pre-trained encoders (a model's "
                                            "MODEL_DIR/pretrained) instead of pre-training")

    def validate(self) -> None:
        super().validate()
        check_choice(self.encoder, "encoder", ENCODERS)
        check_int(self.pretrain_steps, "pretrain_steps", low=0, high=10**9)
        check_int(self.pretrain_candidates, "pretrain_candidates", low=2, high=1024)
        check_int(self.max_sentences, "max_sentences")
        check_int(self.sentence_len, "sentence_len")

Batch = Tuple[torch.Tensor, ...]


def sentence_token_pattern(pattern: str) -> str:
    """``pattern`` that also keeps runs of sentence-ending punctuation as tokens."""
    return f"(?:{pattern})|{SENTENCE_END}"


def split_sentences(doc: np.ndarray, is_end: np.ndarray, max_words: int, max_sentences: int) -> List[np.ndarray]:
    """A document's word ids as sentences: cut after each sentence-ending token and every ``max_words`` words;
    the first ``max_sentences`` of them (an empty document is one empty sentence)."""
    pieces = np.split(doc, np.flatnonzero(is_end[doc]) + 1) if doc.size else [doc]
    sentences = [p[i:i + max_words] for p in pieces for i in range(0, p.size, max_words)]
    return sentences[:max_sentences] or [doc[:0]]


def sentence_batch(docs: Sequence[np.ndarray], is_end: np.ndarray, max_words: int, max_sentences: int,
                   device: torch.device) -> Batch:
    """(ids (B, m, t), word mask (B, m, t), sentence mask (B, m)) of the documents split into sentences."""
    split = [split_sentences(d, is_end, max_words, max_sentences) for d in docs]
    m = max(len(s) for s in split)
    t = max(1, max(p.size for s in split for p in s))
    ids = np.zeros((len(docs), m, t), dtype=np.int64)
    for b, sentences in enumerate(split):
        for j, words in enumerate(sentences):
            ids[b, j, :words.size] = words
    sentence_mask = np.zeros((len(docs), m), dtype=bool)
    for b, sentences in enumerate(split):
        sentence_mask[b, :len(sentences)] = True
    word_mask = ids != 0
    return (torch.from_numpy(ids).to(device), torch.from_numpy(word_mask).to(device),
            torch.from_numpy(sentence_mask).to(device))


class LWLSTM(nn.Module):
    """LW-LSTM: BiLSTM, one attention vector per label; (B, L or C, 2 * hidden)."""

    def __init__(self, embeddings: np.ndarray, n_labels: int, params: LWPTParams) -> None:
        super().__init__()
        self.words = BiLSTMEncoder(embeddings, params.hidden, params.lstm_layers, params.embedding_dropout,
                                   params.dropout, params.train_embeddings)
        self.output_dim = self.words.output_dim
        self.queries = nn.Parameter(torch.empty(n_labels, self.output_dim))
        nn.init.xavier_uniform_(self.queries)
        self.norm = nn.LayerNorm(self.output_dim)

    def forward(self, batch: Batch, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        ids, mask = batch
        return self.norm(label_attention(self.words(ids, mask), mask, self.queries, labels))


class HLWLSTM(nn.Module):
    """HLW-LSTM: word-level BiLSTM and label attention per sentence, then per label a sentence-level
    BiLSTM and label attention; (B, L or C, 2 * hidden)."""

    def __init__(self, embeddings: np.ndarray, n_labels: int, params: LWPTParams) -> None:
        super().__init__()
        self.words = BiLSTMEncoder(embeddings, params.hidden, params.lstm_layers, params.embedding_dropout,
                                   params.dropout, params.train_embeddings)
        width = self.output_dim = self.words.output_dim
        self.word_queries = nn.Parameter(torch.empty(n_labels, width))
        self.sentence_queries = nn.Parameter(torch.empty(n_labels, width))
        nn.init.xavier_uniform_(self.word_queries)
        nn.init.xavier_uniform_(self.sentence_queries)
        self.sentence_forward = nn.ModuleList([nn.LSTM(width, params.hidden, batch_first=True)])
        self.sentence_backward = nn.ModuleList([nn.LSTM(width, params.hidden, batch_first=True)])
        self.dropout = nn.Dropout(params.dropout)
        self.norm = nn.LayerNorm(width)

    def forward(self, batch: Batch, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        ids, word_mask, sentence_mask = batch
        B, m, t = ids.shape
        if labels is None:
            labels = torch.arange(self.word_queries.shape[0], device=ids.device).expand(B, -1)
        C, W = labels.shape[1], self.output_dim
        flat_mask = word_mask.reshape(B * m, t)
        words = self.words(ids.reshape(B * m, t), flat_mask)
        # Row b * m + j is sentence j of document b: each sentence attends with its document's labels.
        sentences = label_attention(words, flat_mask, self.word_queries, labels.repeat_interleave(m, dim=0))
        sentences = sentences.reshape(B, m, C, W).permute(0, 2, 1, 3).reshape(B * C, m, W)
        per_label_mask = sentence_mask.repeat_interleave(C, dim=0)  # row b * C + c: label c of document b
        states = self.dropout(bidirectional(self.sentence_forward, self.sentence_backward, sentences,
                                            per_label_mask))
        document = label_attention(states, per_label_mask, self.sentence_queries, labels.reshape(B * C, 1))
        return self.norm(document.reshape(B, C, W))


class LWPTNetwork(nn.Module):
    """T-Encoder and C-Encoder (same architecture, own weights) and the fine-tuning head."""

    def __init__(self, embeddings: np.ndarray, n_labels: int, params: LWPTParams) -> None:
        super().__init__()
        encoder = LWLSTM if params.encoder == "lw" else HLWLSTM
        self.target = encoder(embeddings, n_labels, params)
        self.context = encoder(embeddings, n_labels, params)
        width = 2 * self.target.output_dim
        if n_labels * width * n_labels > MAX_HEAD_WEIGHTS:
            raise ValueError(f"LW-PT's head reads every label's representation for every label: {n_labels:,} labels "
                             f"need {n_labels * width * n_labels:,} weights; use it for label sets of a few "
                             f"hundred labels, or another model (attentionxml, ldgn) beyond")
        self.dropout = nn.Dropout(params.dropout)
        self.head = nn.Linear(n_labels * width, n_labels)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Fine-tuning logits (B, L) from M = [Q^t; Q^c] of every label."""
        M = torch.cat([self.target(batch), self.context(batch)], dim=2)
        return self.head(self.dropout(M.flatten(1)))

    @staticmethod
    def pretraining_scores(q_target: torch.Tensor, q_candidates: torch.Tensor) -> torch.Tensor:
        """(B, n) dot products Q_k(T)^T Q_k(C_i) of the target's label-k vector (B, W) (T-Encoder) and its n
        candidates' (B, n, W) (C-Encoder), divided by sqrt(W).

        The paper's score is the plain dot product, but its vectors leave a layer norm, so each entry is of
        order 1 and the product of order sqrt(W): unscaled, the softmax over 3 candidates started saturated
        (first loss 2.76 on Reuters-21578 and 4.09 on GoEmotions against ln 3 = 1.10) and 100 steps left
        GoEmotions at chance. Dividing by sqrt(W), as scaled dot-product attention does, starts it at ln n.
        """
        return torch.einsum("bw,bnw->bn", q_target, q_candidates) / math.sqrt(q_target.shape[-1])


class PretrainingSampler:
    """The pre-training examples: (target, label k of it, [C+ with k, n-1 documents without k]).

    Pairs (target, k) are drawn uniformly over the positive entries of Y, so each of a document's labels
    makes examples, as in the paper. Labels in fewer than 2 documents have no C+, and labels in more than
    N - (n-1) documents too few negatives: their pairs are left out.
    """

    def __init__(self, Y: sp.csr_matrix, n_candidates: int) -> None:
        self.Y = sp.csr_matrix(Y, dtype=np.float32)
        self.Y.sort_indices()
        self.by_label = self.Y.tocsc()
        self.by_label.sort_indices()
        self.n = int(n_candidates)
        frequency = np.diff(self.by_label.indptr)
        n_docs = self.Y.shape[0]
        self.eligible = (frequency >= 2) & (n_docs - frequency >= self.n - 1)
        rows = np.repeat(np.arange(n_docs), np.diff(self.Y.indptr))
        keep = self.eligible[self.Y.indices]
        self.pair_rows, self.pair_labels = rows[keep], self.Y.indices[keep].astype(np.int64)
        if self.pair_rows.size == 0:
            raise ValueError(f"LW-PT pre-training needs a label that is in at least 2 documents and missing from at "
                             f"least {self.n - 1}; none is (use pretrain_steps 0)")

    def has_label(self, doc: int, label: int) -> bool:
        row = self.Y.indices[self.Y.indptr[doc]:self.Y.indptr[doc + 1]]
        i = np.searchsorted(row, label)
        return bool(i < row.size and row[i] == label)

    def sample(self, batch: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(targets (B,), labels (B,), candidates (B, n)): column 0 is the positive, the rest negatives."""
        pick = rng.integers(0, self.pair_rows.size, size=batch)
        targets, labels = self.pair_rows[pick], self.pair_labels[pick]
        candidates = np.empty((batch, self.n), dtype=np.int64)
        n_docs = self.Y.shape[0]
        for b, (target, k) in enumerate(zip(targets, labels)):
            holders = self.by_label.indices[self.by_label.indptr[k]:self.by_label.indptr[k + 1]]
            others = holders[holders != target]
            candidates[b, 0] = others[rng.integers(0, others.size)]
            chosen = set()
            while len(chosen) < self.n - 1:  # eligible labels leave at least n-1 documents without them
                doc = int(rng.integers(0, n_docs))
                if doc not in chosen and not self.has_label(doc, k):
                    chosen.add(doc)
            candidates[b, 1:] = sorted(chosen)
        return targets, labels, candidates


class LWPT(FlatLabelModel):
    """See the module docstring."""

    KIND = KIND
    PARAMS = LWPTParams
    NETWORK = LWPTNetwork

    def __init__(self, params: Optional[LWPTParams] = None, pretrained: Union[str, Path, "LWPT", None] = None,
                 **settings) -> None:
        """``pretrained``: an LW-PT model (or its directory, e.g. an earlier model's ``pretrained/``) whose
        encoders, word and label vocabularies fine-tuning starts from, instead of pre-training."""
        super().__init__(params, **settings)
        if self.params.encoder == "hlw" and self.params.text.token_pattern == DEFAULT_TOKEN_PATTERN:
            self.params.text.token_pattern = sentence_token_pattern(DEFAULT_TOKEN_PATTERN)
        self.pretrained = self._matching(pretrained) if pretrained is not None else None
        self._pretrained_encoders: Optional[Dict[str, Dict[str, torch.Tensor]]] = None  # left by _pretrain
        self.network: Optional[LWPTNetwork] = None
        self._is_end: Optional[np.ndarray] = None  # which word ids end a sentence (HLW-LSTM), from the vocabulary
        # What pre-training did (its last fifth's loss and accuracy, the first fifth's loss), for logs and tests.
        self.pretraining: Dict[str, float] = {}


    def _matching(self, pretrained: Union[str, Path, "LWPT"]) -> "LWPT":
        if not isinstance(pretrained, LWPT):
            pretrained = LWPT.load(pretrained)
        if (pretrained.params.encoder, pretrained.params.hidden, pretrained.params.lstm_layers,
                pretrained.params.embedding.dim) != (self.params.encoder, self.params.hidden,
                                                     self.params.lstm_layers, self.params.embedding.dim):
            raise ValueError("the pre-trained encoders were built with another encoder, hidden size, layer count "
                             "or word vector size than these params ask for")
        return pretrained

    def fit(self, corpus: TextData, *args, **kwargs) -> "LWPT":
        """As :meth:`DeepModel.fit`; ``params.pretrained`` (a directory) is read here, not when a saved model
        is loaded."""
        if self.pretrained is None and self.params.pretrained:
            self.pretrained = self._matching(self.params.pretrained)
        return super().fit(corpus, *args, **kwargs)
    def _new_vocabularies(self, corpus) -> bool:
        if self.pretrained is None:
            return super()._new_vocabularies(corpus)
        unknown = sorted({label for labels in corpus.labels for label in labels} - set(self.pretrained.vocab.labels))
        if unknown:
            raise ValueError(f"{len(unknown)} training label(s) are not in the pre-trained model's label set "
                             f"(first: {unknown[0]!r}); its encoders hold one attention vector per label it knows")
        self.vocab, self.text = self.pretrained.vocab, self.pretrained.text
        self.params.text = copy.deepcopy(self.pretrained.params.text)
        return True

    def _sentence_ends(self) -> np.ndarray:
        """Bool over the word ids: which words end a sentence."""
        end = re.compile(SENTENCE_END)
        return np.array([bool(end.fullmatch(w)) for w in self.text.vocab.words], dtype=bool)

    def _batch(self, docs: Docs, index: np.ndarray) -> Batch:
        """The encoders' input for ``docs[index]``: (ids, mask), or HLW-LSTM's sentences."""
        p = self.params
        if p.encoder == "lw":
            return tensors(docs, index, p.text.max_len, self.device)
        if self._is_end is None or self._is_end.size != len(self.text.vocab):
            self._is_end = self._sentence_ends()
        return sentence_batch([docs[i] for i in index], self._is_end, p.sentence_len, p.max_sentences, self.device)

    def _label_vectors(self, encoder: nn.Module, docs: Docs, index: np.ndarray, labels: torch.Tensor,
                       chunk: int) -> torch.Tensor:
        """``encoder``'s vector of label ``labels[i]`` for document ``docs[index[i]]``, (len(index), W).

        Pre-training draws documents at random, and a batch is padded to its longest document, which the
        BiLSTM reads in full: encoding them in chunks of similar length takes 0.58x the time of one padded
        batch on Reuters-21578 (40 targets, 3 candidates each, one thread).
        """
        order = np.argsort([docs[i].size for i in index], kind="stable")
        parts = [encoder(self._batch(docs, index[part]), labels[torch.from_numpy(part).to(labels.device)].unsqueeze(1))
                 for part in np.array_split(order, max(1, -(-order.size // chunk)))]
        return torch.cat(parts)[:, 0][torch.from_numpy(np.argsort(order)).to(labels.device)]

    def _pretrain(self, docs: Docs, Y: sp.csr_matrix, progress: bool, log: Optional[Log]) -> None:
        """The pre-training task on the training documents; trains the two encoders."""
        p, net = self.params, self.network
        sampler = PretrainingSampler(Y, p.pretrain_candidates)
        rng = np.random.default_rng(p.training.seed + 1)
        encoders = list(net.target.parameters()) + list(net.context.parameters())
        optimizer = LazyAdam([w for w in encoders if w.requires_grad], lr=p.training.lr)
        batch: Dict[str, np.ndarray] = {}  # this step's examples; the step loss reads rows of them

        def step_loss(rows: np.ndarray) -> torch.Tensor:
            targets, labels, candidates = batch["targets"][rows], batch["labels"][rows], batch["candidates"][rows]
            labels_t = torch.from_numpy(labels).to(self.device)
            q_target = self._label_vectors(net.target, docs, targets, labels_t, p.training.batch_size)
            q_candidates = self._label_vectors(net.context, docs, candidates.ravel(),
                                               labels_t.repeat_interleave(candidates.shape[1]), p.training.batch_size)
            scores = net.pretraining_scores(q_target, q_candidates.reshape(*candidates.shape, -1))
            batch["right"], batch["seen"] = int((scores.detach().argmax(dim=1) == 0).sum()), len(rows)
            # the positive is candidate 0
            return nn.functional.cross_entropy(scores, torch.zeros(len(rows), dtype=torch.long, device=self.device))

        # Under torchrun each rank encodes its share of every batch (the same batches everywhere: same seed).
        run_step = distributed_steps(net, step_loss)
        start, total_loss, total_right, seen = time.perf_counter(), 0.0, 0, 0
        self.pretraining = {}
        net.train()
        with show_progress(f"{KIND} pre-training", total=p.pretrain_steps, unit="step", enabled=progress) as bar:
            for step in range(p.pretrain_steps):
                batch["targets"], batch["labels"], batch["candidates"] = sampler.sample(p.training.batch_size, rng)
                loss = run_step(np.arange(len(batch["labels"])))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if p.training.grad_clip > 0:
                    clip_grad_norm(encoders, p.training.grad_clip)
                optimizer.step()
                # The figures logged are this rank's share's (all of it in one process).
                total_loss += float(loss.detach()) * batch["seen"]
                total_right += batch["right"]
                seen += batch["seen"]
                bar.update(1)
                if (step + 1) % max(1, p.pretrain_steps // 5) == 0 or step + 1 == p.pretrain_steps:
                    self.pretraining = {"loss": total_loss / seen, "accuracy": total_right / seen, "steps": step + 1,
                                        "first_loss": self.pretraining.get("first_loss", total_loss / seen)}
                    if log is not None:
                        log(f"{KIND} pre-training step {step + 1}: loss {total_loss / seen:.4f}  positive picked "
                            f"{100 * total_right / seen:.1f}% of {p.pretrain_candidates} candidates "
                            f"({time.perf_counter() - start:.0f} s)")
                    total_loss, total_right, seen = 0.0, 0, 0

    def _fit_networks(self, docs: Docs, Y: sp.csr_matrix, valid_docs: Docs, Y_valid: sp.csr_matrix,
                      embeddings: np.ndarray, progress: bool, log: Optional[Log], checkpoint=None) -> None:
        p = self.params
        torch.manual_seed(p.training.seed)
        self.network = LWPTNetwork(embeddings, Y.shape[1], p).to(self.device)
        net = self.network
        resuming_fine_tuning = (checkpoint is not None and checkpoint.state is not None
                                and checkpoint.state["position"].get("loop") is not None)
        if self.pretrained is not None:
            net.target.load_state_dict(self.pretrained.network.target.state_dict())
            net.context.load_state_dict(self.pretrained.network.context.state_dict())
        elif p.pretrain_steps > 0 and not resuming_fine_tuning:  # the checkpoint holds the pre-trained encoders
            self._pretrain(docs, Y, progress, log)
            self._pretrained_encoders = {name: copy.deepcopy(getattr(net, name).state_dict())
                                         for name in ("target", "context")}
        lengths = np.array([d.size for d in docs])

        def step(index: np.ndarray) -> torch.Tensor:
            return masked_bce(net(self._batch(docs, index)), torch.from_numpy(dense_targets(Y, index)).to(self.device))

        def validate() -> Dict[str, float]:
            positions, _ = self._search(valid_docs, k=5, beam=0, batch_size=p.training.eval_batch_size, on_batch=None)
            metrics = evaluate(Y_valid, positions, ks=(1, 3, 5))
            return {name: value for name, value in metrics.items() if name.startswith("P@")}

        loop_checkpoint = checkpoint.for_level(1, "network", net) if checkpoint is not None else None
        name = "HLW-LSTM" if p.encoder == "hlw" else "LW-LSTM"
        train_epochs(net, step, lengths, p.training, validate, desc=f"{KIND} ({name}) fine-tuning", log=log,
                     progress=progress, checkpoint=loop_checkpoint,
                     prior=self.label_prior)

    # ---- prediction -------------------------------------------------------------
    def _logits(self, docs: Docs, index: np.ndarray) -> torch.Tensor:
        return self.network(self._batch(docs, index))

    def _save_extra(self, directory: Path) -> None:
        """The encoders as pre-training left them, as an LW-PT model of their own (untrained head)."""
        if self._pretrained_encoders is None:
            return
        snapshot = LWPT(self.params)
        snapshot.vocab, snapshot.text, snapshot.tree = self.vocab, self.text, self.tree
        zeros = np.broadcast_to(np.float32(0), (len(self.text.vocab), self.params.embedding.dim))
        snapshot.network = LWPTNetwork(zeros, self.tree.n_labels, self.params)
        for name, state in self._pretrained_encoders.items():
            getattr(snapshot.network, name).load_state_dict(state)
        snapshot.save(directory / PRETRAINED_DIR)
