"""LDGN (Ma et al., 2021): label-specific attention, then a dual graph network over the labels.

For every document: BiLSTM token states (or, for bags of words such as Delicious' binary word
features, ``params.token_encoder = "feedforward"``: each word's state from that word alone, since there
is no word order to read); label-wise attention gives each label its own
component u_i (``xmc.ops.label_attention``); two GCN layers on the static co-occurrence
graph (``xmc.data.label_graph``, D^-1/2 A D^-1/2, LeakyReLU) give H2; two 1x1
convolutions of H2 (one linear map per side) rebuild a dynamic graph
D^-1/2 sigmoid(Qa Kb^T / sqrt(d1)) D^-1/2 for this document, two GCN layers on it give H4
(``xmc.ops.dynamic_graph_propagate``, the graph never stored); an output layer scores
[H2, g H4], trained with binary cross-entropy. ``params.output`` chooses that layer:
"per_label" (one weight vector per label over all of [H2, H4]) or "mixed" (per label over H2, one
vector shared by all labels over H4, as the paper's W1; a bias per label). Without the dynamic
graph the two are the same layer.

Two details the paper leaves open are chosen for stability. Qa Kb^T is divided by sqrt(d1) (d1 =
``params.graph_width``), as in scaled dot-product attention, so the sigmoid starts unsaturated. And
g is one learned scalar that starts at 0: training begins from the variant without the dynamic graph
and opens the dynamic branch as far as the loss gains from it (the measurements behind both choices
are in benchmarks/README.md).

``params.graph`` selects the paper's variants: "both" (LDGN), "static" (no dynamic graph:
the output layer reads H2), "dynamic" (the dynamic graph rebuilt from the components
themselves), "none" (label attention and the output layer only).

Two ways to choose the labels scored per document:

- all of them (the paper's setting), for label sets of up to a few thousand labels;
- over candidates (``LDGN(params, candidates=model)``, ``xmc train --model ldgn --set candidates=DIR``):
  another xmc model (the linear PLT, AttentionXML) proposes ``params.n_candidates`` labels per
  document, and LDGN scores those only, on the co-occurrence graph restricted to them (each
  document's subgraph normalised on its own) and a dynamic graph over them. Training adds the
  document's positives to the proposals, as AttentionXML does on its tree. The candidate model
  is saved inside the LDGN model directory (``candidates/``).

Over candidates, ``params.candidate_weight`` w ranks by (1 - w) * LDGN's probability + w * the candidate
model's score: the two read the text differently (word order and label attention, n-gram TF-IDF), and their
errors differ. 0 is LDGN alone; null chooses w on the validation documents once training ends (the grid
0, 0.05, ..., 1, by the mean of P@1, P@3 and P@5) and logs both alone beside the blend.

``params.candidate_input`` stacks the two instead: the candidate model's log-odds, times a learned scale,
are added to LDGN's logits, so the network starts from the candidate model's ranking and learns what to
change in it (XR-Transformer's ranker reads sparse and neural features together in the same spirit). The
candidate model scores its own training documents too confidently, so during training the proposals and
scores come from ``params.candidate_folds`` refits of its settings, each proposing for the fold it did not
see (stacking), and only the proposals are scored, as at prediction.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from xmc.data import TextData
from xmc.data.label_graph import cooccurrence_graph, normalize_adjacency
from xmc.layers.encoders import token_encoder
from xmc.layers.losses import masked_bce
from xmc.layers.state import WEIGHTS, load_state, state_arrays
from xmc.metrics import evaluate
from xmc.models.base import DeepModel, Docs, Log
from xmc.models.params import BiLSTMParams
from xmc.ops import SparseGraph, dynamic_graph_propagate, gcn_propagate, label_attention
from xmc.params import check, check_choice, check_int, param
from xmc.registry import load_model
from xmc.training.batching import (clear_empty_slots, dense_targets, eval_batches, parents_with_positives, row_targets,
                                   tensors)
from xmc.training.loop import train_epochs
from xmc.tree import LabelTree
from xmc.utils.modeldir import ModelFormatError
from xmc.utils.sparse import compressed_problem

KIND = "ldgn"
GRAPH_ARRAYS = ("graph.indptr", "graph.indices", "graph.values")
CANDIDATES_DIR = "candidates"
# candidate scores are clipped to [eps, 1 - eps] before their log-odds (an empty slot scores 0)
CANDIDATE_EPS = 1e-6


GRAPHS = ("both", "static", "dynamic", "none")
OUTPUTS = ("per_label", "mixed")
TOKEN_ENCODERS = ("bilstm", "feedforward")


@dataclass
class LDGNParams(BiLSTMParams):
    """LDGN: label-specific components, a static co-occurrence graph and a dynamic graph per document."""

    graph: str = param("both", "graphs that propagate: both (the paper's model), static, dynamic or none")
    gcn_dim: int = param(256, "width of the GCN layers")
    graph_width: int = param(64, "width of the dynamic graph's two 1x1 convolutions")
    graph_threshold: float = param(0.0, "co-occurrence edges below this conditional probability are dropped")
    graph_reweight: Optional[float] = param(None, "ML-GCN re-weighting of the static graph, in [0, 1) (null: off)")
    output: str = param("per_label", "output layer over [H2, H4]: per_label, or mixed (per label over H2, one "
                                     "vector shared by all labels over H4)")
    token_encoder: str = param("bilstm", "bilstm (the paper's) or feedforward (each word alone, for bags of words)")
    candidates: Optional[str] = param(None, "a trained model directory (linear PLT, AttentionXML) whose "
                                            "proposals LDGN scores instead of all labels; saved inside the model")
    n_candidates: int = param(100, "labels the candidate model proposes per document")
    candidate_weight: Optional[float] = param(0.0, "over candidates: w of the final score (1 - w) * LDGN's + w * "
                                                   "the candidate model's (0: LDGN alone; null: chosen on the "
                                                   "validation documents after training)")
    candidate_input: bool = param(False, "over candidates: the candidate model's log-odds (times a learned scale) "
                                         "are added to LDGN's logits, so LDGN learns a correction of that model; "
                                         "training reads out-of-fold scores (candidate_folds refits)")
    candidate_folds: int = param(3, "with candidate_input: folds of the training documents; each fold's "
                                    "proposals come from the candidate model's settings refitted on the others")

    def validate(self) -> None:
        super().validate()
        check_choice(self.graph, "graph", GRAPHS)
        check_choice(self.output, "output", OUTPUTS)
        check_choice(self.token_encoder, "token_encoder", TOKEN_ENCODERS)
        for name in ("gcn_dim", "graph_width", "n_candidates"):
            check_int(getattr(self, name), name)
        check(self.candidate_weight is None or 0.0 <= self.candidate_weight <= 1.0, "candidate_weight",
              "null or a number in [0, 1]", self.candidate_weight)
        check_int(self.candidate_folds, "candidate_folds", low=2)
        check(0.0 <= self.graph_threshold <= 1.0, "graph_threshold", "a number in [0, 1]", self.graph_threshold)
        # 1 would leave a label nothing of itself (a zero self-loop): never what a GCN wants
        check(self.graph_reweight is None or 0.0 <= self.graph_reweight < 1.0, "graph_reweight",
              "null or a number in [0, 1)", self.graph_reweight)


class LDGNNetwork(nn.Module):
    """Encoder, label-wise attention, the static and dynamic GCNs of ``params.graph``, output layer."""

    def __init__(self, embeddings: np.ndarray, n_labels: int, graph: Optional[SparseGraph], params: LDGNParams) -> None:
        super().__init__()
        self.mode = params.graph
        self.graph = graph
        self.encoder = token_encoder(embeddings, params)
        width, gcn = self.encoder.output_dim, params.gcn_dim
        self.queries = nn.Parameter(torch.empty(n_labels, width))
        nn.init.xavier_uniform_(self.queries)
        uses_static = self.mode in ("both", "static")
        uses_dynamic = self.mode in ("both", "dynamic")
        self.static = nn.ModuleList([nn.Linear(width, gcn), nn.Linear(gcn, gcn)]) if uses_static else None
        first = gcn if uses_static else width
        if uses_dynamic:
            self.conv_a = nn.Linear(first, params.graph_width, bias=False)
            self.conv_b = nn.Linear(first, params.graph_width, bias=False)
            self.dynamic = nn.ModuleList([nn.Linear(first, gcn), nn.Linear(gcn, gcn)])
            self.logit_scale = 1.0 / math.sqrt(params.graph_width)  # of Qa Kb^T (module docstring)
            self.dynamic_gate = nn.Parameter(torch.zeros(()))  # g of [H2, g H4], opened by training
        else:
            self.dynamic = None
        out_width = (first + gcn) if uses_dynamic else first
        self.dropout = nn.Dropout(params.dropout)
        self.act = nn.LeakyReLU(0.2)
        # The first ``per_label_width`` features of [H2, H4] are scored by one weight vector per label (after
        # propagation neighbouring labels' components look alike, so there the label's identity lives in
        # the output layer), the rest by one vector shared by all labels (the paper's W1).
        self.per_label_width = out_width if params.output == "per_label" else first
        self.out_weight = nn.Parameter(torch.empty(n_labels, self.per_label_width))
        nn.init.xavier_uniform_(self.out_weight)
        shared_width = out_width - self.per_label_width
        self.shared_out = nn.Linear(shared_width, 1, bias=False) if shared_width else None
        self.out_bias = nn.Parameter(torch.zeros(n_labels))
        # params.candidate_input: the scale of the candidate model's log-odds in the logits, learned from 1
        self.candidate_scale = nn.Parameter(torch.ones(())) if params.candidate_input else None
        if params.candidate_input:
            # The network's own part starts at 0, so training starts from the candidate model's ranking rather
            # than from that ranking plus the noise of random output weights.
            nn.init.zeros_(self.out_weight)
            if self.shared_out is not None:
                nn.init.zeros_(self.shared_out.weight)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, candidates: Optional[torch.Tensor] = None,
                graph: Optional[SparseGraph] = None, candidate_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits (B, L), or (B, C) for ``candidates`` (B, C) with ``graph`` the block-diagonal static graph
        over the B x C candidate slots and ``candidate_logits`` (B, C) the candidate model's log-odds of them
        (read when ``params.candidate_input``)."""
        H = self.encoder(ids, mask)
        x = label_attention(H, mask, self.queries, candidates)  # B, L or C, width: each label's component u_i
        if self.static is not None:  # H^{l+1} = LeakyReLU(A_s H^l W^l)
            B, C = x.shape[:2]
            for layer in self.static:
                h = layer(x)
                if candidates is None:
                    x = self.act(gcn_propagate(self.graph, h))
                else:  # the documents' subgraphs as one block-diagonal graph over the B x C slots
                    x = self.act(gcn_propagate(graph, h.reshape(1, B * C, -1)).reshape(B, C, -1))
        parts = [x]
        if self.dynamic is not None:
            Qa, Kb = self.conv_a(x) * self.logit_scale, self.conv_b(x)  # the dynamic graph is rebuilt once, from H2
            y = x
            for layer in self.dynamic:
                y = self.act(dynamic_graph_propagate(Qa, Kb, layer(y)))
            parts.append(self.dynamic_gate * y)
        final = self.dropout(torch.cat(parts, dim=2))  # B, L or C, out_width
        own, shared = final[..., :self.per_label_width], final[..., self.per_label_width:]
        weight, bias = (self.out_weight, self.out_bias) if candidates is None else \
            (self.out_weight[candidates], self.out_bias[candidates])
        logits = (own * weight).sum(dim=2) + bias
        if self.shared_out is not None:
            logits = logits + self.shared_out(shared).squeeze(2)
        if self.candidate_scale is not None:
            if candidate_logits is None:
                raise ValueError("this LDGN reads the candidate model's scores (candidate_input): pass "
                                 "candidate_logits")
            logits = logits + self.candidate_scale * candidate_logits
        return logits


class LDGN(DeepModel):
    """LDGN over all labels; see the module docstring."""

    KIND = KIND
    PARAMS = LDGNParams

    def __init__(self, params: Optional[LDGNParams] = None, candidates=None, **settings) -> None:
        """``candidates``: a trained xmc model whose predictions are the labels scored (None: all labels)."""
        super().__init__(params, **settings)
        self.network: Optional[LDGNNetwork] = None
        # All labels: the normalised graph. Over candidates: the raw co-occurrence graph, each document's
        # subgraph normalised when it is cut out.
        self.graph_matrix: Optional[sp.csr_matrix] = None
        self.candidate_model = candidates
        # (positions, scores) proposed for the documents of the current training or search
        self._candidates: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
        # params.candidate_weight, or the weight chosen on validation when that is null
        self.candidate_weight = self.params.candidate_weight or 0.0

    def unfitted_copy(self) -> "LDGN":
        return LDGN(self.params, candidates=self.candidate_model)

    def fit(self, corpus: TextData, *args, **kwargs) -> "LDGN":
        """As :meth:`DeepModel.fit`; ``params.candidates`` (a model directory) is loaded here when no candidate
        model was given."""
        if self.candidate_model is None and self.params.candidates:
            self.candidate_model = load_model(self.params.candidates)
        if self.params.candidate_input and not self.over_candidates:
            raise ValueError("candidate_input reads a candidate model's scores: give candidates (a trained model "
                             "directory) too")
        return super().fit(corpus, *args, **kwargs)

    @property
    def over_candidates(self) -> bool:
        return self.candidate_model is not None

    def _proposals(self, texts: TextData, model=None) -> Tuple[np.ndarray, np.ndarray]:
        """(n, n_candidates) label positions the candidate model (or ``model``) proposes (-1: none), in this
        model's ids, and its scores."""
        model = model if model is not None else self.candidate_model
        ids, scores = model.predict_topk(texts, k=self.params.n_candidates)
        # The candidate model numbers labels its own way: map them by name; labels it alone knows drop out.
        names = model.vocab.labels
        mapping = np.array([self.vocab.id_of(n) if n in self.vocab else -1 for n in names] + [-1], dtype=np.int64)
        positions = mapping[np.where(ids >= 0, ids, len(names))]
        return positions, np.where(positions >= 0, scores, 0.0).astype(np.float32)

    def _before_training(self, train: TextData, valid: TextData, log: Optional[Log]) -> None:
        if self.over_candidates:
            start = time.perf_counter()
            if self.params.candidate_input:
                proposed = self._out_of_fold_proposals(train)
                if log is not None:
                    log(f"out-of-fold candidates: {self.params.candidate_folds} refits of the candidate model in "
                        f"{time.perf_counter() - start:.1f} s")
            else:
                proposed = self._proposals(train)
            self._candidates = {"train": proposed, "valid": self._proposals(valid)}

    def _out_of_fold_proposals(self, train: TextData) -> Tuple[np.ndarray, np.ndarray]:
        """Proposals for the training documents from models that never saw them: the candidate model's settings
        refitted on all folds but one, proposing for that one. The model trained on everything scores its own
        training documents far more confidently than new ones; LDGN, reading those scores, would learn to
        trust them more than prediction can."""
        n, folds = len(train), self.params.candidate_folds
        fold_of = np.random.default_rng(self.params.training.seed).permutation(n) % folds
        positions = np.full((n, self.params.n_candidates), -1, dtype=np.int64)
        scores = np.zeros((n, self.params.n_candidates), dtype=np.float32)
        for fold in range(folds):
            held, rest = np.flatnonzero(fold_of == fold), np.flatnonzero(fold_of != fold)
            refit = self.candidate_model.unfitted_copy().fit(train.subset(rest), progress=False, log=None)
            positions[held], scores[held] = self._proposals(train.subset(held), model=refit)
        return positions, scores

    def _candidate_logits(self, which: str, index: np.ndarray) -> Optional[torch.Tensor]:
        """The candidate model's log-odds of the proposals of ``index`` (None unless params.candidate_input)."""
        if not self.params.candidate_input:
            return None
        p = np.clip(self._candidates[which][1][index], CANDIDATE_EPS, 1.0 - CANDIDATE_EPS)
        return torch.from_numpy(np.log(p) - np.log1p(-p)).to(self.device)

    def _batch_graph(self, candidates: np.ndarray, valid: np.ndarray) -> Optional[SparseGraph]:
        """Block-diagonal graph over the B x C slots: each document's candidates' subgraph, normalised
        (None when the variant has no static graph)."""
        if self.params.graph not in ("both", "static"):
            return None
        blocks = []
        for cand, ok in zip(candidates, valid):
            sub = sp.csr_matrix(self.graph_matrix[cand][:, cand])
            keep = sp.diags(ok.astype(np.float32))
            blocks.append(normalize_adjacency(keep @ sub @ keep))
        return SparseGraph.from_scipy(sp.block_diag(blocks, format="csr"), device=self.device)

    def features(self, corpus: TextData):
        # Over candidates the raw text is the input: the candidate model reads it at prediction.
        return corpus if self.over_candidates else super().features(corpus)

    def predict_topk(self, corpus_or_docs, k: int = 5, beam: Optional[int] = None, threads: Optional[int] = None,
                     batch_size: Optional[int] = None, on_batch=None):
        if self.over_candidates:
            if self._is_docs(corpus_or_docs):
                raise ValueError("LDGN over candidates predicts from raw text (its candidate model reads it), "
                                 "not from encoded documents")
            self._candidates = {"search": self._proposals(corpus_or_docs)}
            corpus_or_docs = super().features(corpus_or_docs)
        try:
            return super().predict_topk(corpus_or_docs, k=k, beam=beam, threads=threads, batch_size=batch_size,
                                        on_batch=on_batch)
        finally:
            self._candidates.pop("search", None)

    def _build_tree(self, texts: Sequence[str], Y: sp.csr_matrix) -> LabelTree:
        return LabelTree.flat(Y.shape[1])  # every label is scored: the tree only orders them

    def _static_graph(self) -> Optional[SparseGraph]:
        if self.params.graph not in ("both", "static") or self.over_candidates:
            return None  # over candidates, each batch gets its own (_batch_graph)
        return SparseGraph.from_scipy(self.graph_matrix, device=self.device)

    def _fit_networks(self, docs: Docs, Y: sp.csr_matrix, valid_docs: Docs, Y_valid: sp.csr_matrix,
                      embeddings: np.ndarray, progress: bool, log: Optional[Log], checkpoint=None) -> None:
        p = self.params
        order = self.tree.label_order
        # Columns in tree order (the identity for a flat tree) so positions and graph nodes agree.
        Y_pos, Y_valid_pos = Y[:, order].tocsr(), Y_valid[:, order].tocsr()
        raw = cooccurrence_graph(Y_pos, p.graph_threshold, p.graph_reweight)
        self.graph_matrix = raw if self.over_candidates else normalize_adjacency(raw)
        torch.manual_seed(p.training.seed)
        self.network = LDGNNetwork(embeddings, Y.shape[1], self._static_graph(), p).to(self.device)
        net = self.network
        lengths = np.array([d.size for d in docs])
        rng = np.random.default_rng(p.training.seed)

        def step(index: np.ndarray) -> torch.Tensor:
            ids, mask = tensors(docs, index, p.text.max_len, self.device)
            if not self.over_candidates:
                return masked_bce(net(ids, mask), torch.from_numpy(dense_targets(Y_pos, index)).to(self.device))
            if p.candidate_input:  # the proposals as prediction sees them: a positive outside them has no score
                cand, ok = _proposed_slots(self._candidates["train"][0][index])
            else:
                cand, ok = parents_with_positives(self._candidates["train"][0][index], Y_pos, index,
                                                  p.n_candidates, rng)
            logits = net(ids, mask, torch.from_numpy(cand).to(self.device), self._batch_graph(cand, ok),
                         self._candidate_logits("train", index))
            y = torch.from_numpy(row_targets(Y_pos, index, cand)).to(self.device)
            return masked_bce(logits, y, torch.from_numpy(ok).to(self.device))

        def validate() -> Dict[str, float]:
            positions, _ = self._search(valid_docs, k=5, beam=0, batch_size=p.training.eval_batch_size, on_batch=None,
                                        which="valid")
            metrics = evaluate(Y_valid_pos, positions, ks=(1, 3, 5))
            return {name: value for name, value in metrics.items() if name.startswith("P@")}

        loop_checkpoint = checkpoint.for_level(1, "network", net) if checkpoint is not None else None
        train_epochs(net, step, lengths, p.training, validate, desc=f"{self.KIND} ({p.graph} graph)", log=log,
                     progress=progress, checkpoint=loop_checkpoint,
                     prior=self.label_prior)
        if self.over_candidates and p.candidate_weight is None:
            self.candidate_weight = self._choose_candidate_weight(valid_docs, Y_valid_pos, log)

    def _choose_candidate_weight(self, docs: Docs, Y: sp.csr_matrix, log: Optional[Log]) -> float:
        """The blend weight of the grid with the best mean validation P@1, P@3, P@5 (the smaller on ties)."""
        cand, probs = self._candidate_probabilities(docs, "valid", self.params.training.eval_batch_size, None)
        theirs = self._candidates["valid"][1]
        scores = {}
        for w in np.round(np.linspace(0.0, 1.0, 21), 2):
            positions, _ = _best(cand, (1.0 - w) * probs + w * theirs, 5)
            metrics = evaluate(Y, positions, ks=(1, 3, 5))
            scores[float(w)] = {k: v for k, v in metrics.items() if k.startswith("P@")}
        best = max(scores, key=lambda w: (np.mean(list(scores[w].values())), -w))
        if log is not None:
            def fmt(w: float) -> str:
                return " ".join(f"{k} {v * 100:.2f}" for k, v in scores[w].items())
            log(f"candidate_weight {best:g}, chosen on validation: valid {fmt(best)}; LDGN alone {fmt(0.0)}; "
                f"the candidate model alone {fmt(1.0)}")
        return best

    @torch.no_grad()
    def _search(self, docs: Docs, k: int, beam: int, batch_size: int,
                on_batch: Optional[Callable[[int], None]], which: str = "search") -> Tuple[np.ndarray, np.ndarray]:
        if self.over_candidates:
            cand, probs = self._candidate_probabilities(docs, which, batch_size, on_batch)
            w = self.candidate_weight
            if w > 0:
                probs = (1.0 - w) * probs + w * self._candidates[which][1]
            return _best(cand, probs, k)
        net = self.network
        net.eval()
        lengths = np.array([d.size for d in docs])
        out_pos = np.full((len(docs), k), -1, dtype=np.int64)
        out_scores = np.zeros((len(docs), k), dtype=np.float32)
        for index in eval_batches(lengths, batch_size):
            ids, mask = tensors(docs, index, self.params.text.max_len, self.device)
            probs = torch.sigmoid(net(ids, mask))
            top = min(k, probs.shape[1])
            best, where = probs.topk(top, dim=1)
            out_pos[index, :top] = where.cpu().numpy()
            out_scores[index, :top] = best.cpu().numpy()
            if on_batch is not None:
                on_batch(index.size)
        return clear_empty_slots(out_pos, out_scores)

    @torch.no_grad()
    def _candidate_probabilities(self, docs: Docs, which: str, batch_size: int,
                                 on_batch: Optional[Callable[[int], None]]) -> Tuple[np.ndarray, np.ndarray]:
        """The proposed positions (n, C) of ``self._candidates[which]`` and LDGN's probabilities of them
        (-1 where nothing was proposed)."""
        net = self.network
        net.eval()
        cand_all, ok_all = _proposed_slots(self._candidates[which][0])
        probs_all = np.full(cand_all.shape, -1.0, dtype=np.float32)
        lengths = np.array([d.size for d in docs])
        for index in eval_batches(lengths, batch_size):
            ids, mask = tensors(docs, index, self.params.text.max_len, self.device)
            cand, ok = cand_all[index], ok_all[index]
            probs = torch.sigmoid(net(ids, mask, torch.from_numpy(cand).to(self.device), self._batch_graph(cand, ok),
                                      self._candidate_logits(which, index)))
            probs_all[index] = np.where(ok, probs.cpu().numpy(), -1.0)
            if on_batch is not None:
                on_batch(index.size)
        return cand_all, probs_all

    # ---- persistence ------------------------------------------------------------
    def _weights(self) -> Dict[str, np.ndarray]:
        if self.network is None:
            return {}
        g = self.graph_matrix
        return {**state_arrays("network", self.network), "graph.indptr": g.indptr.astype(np.int64),
                "graph.indices": g.indices.astype(np.int64), "graph.values": g.data.astype(np.float32)}

    def _manifest_extra(self) -> Dict:
        return {"candidates": self.over_candidates, "candidate_weight": self.candidate_weight}

    def _save_extra(self, directory: Path) -> None:
        if self.over_candidates:
            self.candidate_model.save(directory / CANDIDATES_DIR)

    def _load_weights(self, arrays: Dict[str, np.ndarray], info: Dict, directory: Path) -> None:
        over_candidates = info.get("candidates", False)
        if not isinstance(over_candidates, bool):
            raise ModelFormatError(f"{directory / 'xmc.json'}: 'candidates' must be true or false, "
                                   f"found {over_candidates!r}"[:300])
        weight = info.get("candidate_weight", 0.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0:
            raise ModelFormatError(f"{directory / 'xmc.json'}: 'candidate_weight' must be a number in [0, 1], "
                                   f"found {weight!r}"[:300])
        self.candidate_weight = float(weight)
        if over_candidates and self.device.type != "meta":
            self.candidate_model = load_model(directory / CANDIDATES_DIR)
            if self.candidate_model is self or not hasattr(self.candidate_model, "predict_topk"):
                raise ModelFormatError(f"{directory / CANDIDATES_DIR}: not a model that proposes labels")
        self.graph_matrix = _graph_from_arrays(arrays, self.tree.n_labels, self.params.graph_reweight, directory)
        rows = len(self.text.vocab)
        self.network = LDGNNetwork(np.broadcast_to(np.float32(0), (rows, self.params.embedding.dim)),
                                   self.tree.n_labels, None, self.params)
        load_state("network", self.network, arrays, directory)
        self.network.to(self.device).eval()
        if self.device.type != "meta" and not over_candidates:
            self.network.graph = self._static_graph()


def _graph_from_arrays(arrays: Dict[str, np.ndarray], n_labels: int, reweight: Optional[float],
                       directory: Path) -> sp.csr_matrix:
    """The saved static graph, checked (the native propagation trusts its ids)."""
    where = directory / WEIGHTS
    missing = [name for name in GRAPH_ARRAYS if name not in arrays]
    if missing:
        raise ModelFormatError(f"{where}: array {missing[0]!r} is missing")
    indptr, indices, values = (arrays[name] for name in GRAPH_ARRAYS)
    problem = compressed_problem(GRAPH_ARRAYS, indptr, indices, values, n_outer=n_labels, n_inner=n_labels)
    if problem is not None:
        raise ModelFormatError(f"{where}: the label graph: {problem}")
    # D^-1/2 A D^-1/2 of a co-occurrence graph with self-loops lies in [0, 1] (every degree is at least the
    # self-loop's 1), or in [0, p / (1 - p)] re-weighted with p (self-loops of 1 - p, neighbours p at most).
    # A forged -1e30 is finite, but it overflowed propagation into NaN scores.
    top = 1.0 if reweight is None else max(1.0, reweight / (1.0 - reweight))
    if not np.all((values >= 0) & (values <= top * (1 + 1e-5))):
        raise ModelFormatError(f"{where}: the label graph holds weights outside [0, {top:g}] (or not numbers); "
                               f"its normalised adjacency never does")
    return sp.csr_matrix((values.astype(np.float32), indices.astype(np.int64), indptr.astype(np.int64)),
                         shape=(n_labels, n_labels))


def _proposed_slots(proposed: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(positions with empty slots at 0, which slots hold a proposal) of proposed positions (-1: none)."""
    ok = proposed >= 0
    return np.where(ok, proposed, 0), ok


def _best(candidates: np.ndarray, scores: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """The k best-scored candidates of each row (positions, scores), best first; slots scored below 0
    (nothing proposed) come back empty."""
    top = min(k, scores.shape[1])
    where = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    positions = np.full((scores.shape[0], k), -1, dtype=np.int64)
    best = np.zeros((scores.shape[0], k), dtype=np.float32)
    positions[:, :top] = np.take_along_axis(candidates, where, axis=1)
    best[:, :top] = np.take_along_axis(scores, where, axis=1)
    return clear_empty_slots(positions, best)
