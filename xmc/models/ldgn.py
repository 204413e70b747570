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

The labels scored per document are all of them (the paper's setting, for label sets of up to a few
thousand labels) or another model's candidates (:mod:`xmc.models.candidates`: by default a linear PLT's
above ``auto_candidates_above`` labels). Over candidates LDGN propagates on the co-occurrence graph
restricted to each document's candidates (each document's subgraph normalised on its own) and on a dynamic
graph over them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from xmc.data.label_graph import cooccurrence_graph, normalize_adjacency
from xmc.layers.encoders import token_encoder
from xmc.layers.losses import masked_bce
from xmc.layers.state import WEIGHTS, load_state, state_arrays
from xmc.metrics import evaluate
from xmc.models.base import DeepModel, Docs, Log
from xmc.models.candidates import CandidateParams, OverCandidates, add_candidate_scale, with_candidate_logits
from xmc.models.params import BiLSTMParams
from xmc.ops import SparseGraph, dynamic_graph_propagate, gcn_propagate, label_attention
from xmc.params import check, check_choice, check_int, param
from xmc.training.batching import clear_empty_slots, dense_targets, eval_batches, tensors
from xmc.training.loop import train_epochs
from xmc.tree import LabelTree
from xmc.utils.modeldir import ModelFormatError
from xmc.utils.sparse import compressed_problem

KIND = "ldgn"
GRAPH_ARRAYS = ("graph.indptr", "graph.indices", "graph.values")


GRAPHS = ("both", "static", "dynamic", "none")
OUTPUTS = ("per_label", "mixed")
TOKEN_ENCODERS = ("bilstm", "feedforward")


@dataclass
class LDGNParams(BiLSTMParams, CandidateParams):
    """LDGN: label-specific components, a static co-occurrence graph and a dynamic graph per document."""

    graph: str = param("both", "graphs that propagate: both (the paper's model), static, dynamic or none")
    gcn_dim: int = param(256, "width of the GCN layers")
    graph_width: int = param(64, "width of the dynamic graph's two 1x1 convolutions")
    graph_threshold: float = param(0.0, "co-occurrence edges below this conditional probability are dropped")
    graph_reweight: Optional[float] = param(None, "ML-GCN re-weighting of the static graph, in [0, 1) (null: off)")
    output: str = param("per_label", "output layer over [H2, H4]: per_label, or mixed (per label over H2, one "
                                     "vector shared by all labels over H4)")
    token_encoder: str = param("bilstm", "bilstm (the paper's) or feedforward (each word alone, for bags of words)")

    def validate(self) -> None:
        super().validate()
        check_choice(self.graph, "graph", GRAPHS)
        check_choice(self.output, "output", OUTPUTS)
        check_choice(self.token_encoder, "token_encoder", TOKEN_ENCODERS)
        for name in ("gcn_dim", "graph_width"):
            check_int(getattr(self, name), name)
        check(0.0 <= self.graph_threshold <= 1.0, "graph_threshold", "a number in [0, 1]", self.graph_threshold)
        # 1 would leave a label nothing of itself (a zero self-loop): never what a GCN wants
        check(self.graph_reweight is None or 0.0 <= self.graph_reweight < 1.0, "graph_reweight",
              "null or a number in [0, 1)", self.graph_reweight)


class LDGNNetwork(nn.Module):
    """Encoder, label-wise attention, the static and dynamic GCNs of ``params.graph``, output layer."""

    def __init__(self, embeddings: np.ndarray, n_labels: int, graph: Optional[SparseGraph], params: LDGNParams,
                 stacked: bool = False) -> None:
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
        self.candidate_scale = None
        if stacked:  # over candidates, stacked on the candidate model's log-odds (xmc.models.candidates)
            add_candidate_scale(self, (self.out_weight,) + ((self.shared_out.weight,) if self.shared_out else ()))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, candidates: Optional[torch.Tensor] = None,
                graph: Optional[SparseGraph] = None, candidate_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits (B, L), or (B, C) for ``candidates`` (B, C) with ``graph`` the block-diagonal static graph
        over the B x C candidate slots and ``candidate_logits`` (B, C) the candidate model's log-odds of them
        (read when the network is stacked)."""
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
        return with_candidate_logits(self, logits, candidate_logits)


class LDGN(OverCandidates, DeepModel):
    """LDGN over all labels or candidates; see the module docstring."""

    KIND = KIND
    PARAMS = LDGNParams

    def __init__(self, params: Optional[LDGNParams] = None, candidates=None, **settings) -> None:
        """``candidates``: a trained xmc model whose predictions are the labels scored (None: as
        ``params.candidates`` says)."""
        super().__init__(params, **settings)
        self.network: Optional[LDGNNetwork] = None
        # All labels: the normalised graph. Over candidates: the raw co-occurrence graph, each document's
        # subgraph normalised when it is cut out.
        self.graph_matrix: Optional[sp.csr_matrix] = None
        self._init_candidates(candidates)

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
        self.network = LDGNNetwork(embeddings, Y.shape[1], self._static_graph(), p, self.stacked).to(self.device)
        net = self.network
        desc = f"{self.KIND} (graphs: {p.graph})"
        if self.over_candidates:
            self._train_over_candidates(net, docs, Y_pos, valid_docs, Y_valid_pos, desc, progress, log, checkpoint)
            return
        lengths = np.array([d.size for d in docs])

        def step(index: np.ndarray) -> torch.Tensor:
            ids, mask = tensors(docs, index, p.text.max_len, self.device)
            return masked_bce(net(ids, mask), torch.from_numpy(dense_targets(Y_pos, index)).to(self.device))

        def validate() -> Dict[str, float]:
            positions, _ = self._search(valid_docs, k=5, beam=0, batch_size=p.training.eval_batch_size, on_batch=None)
            metrics = evaluate(Y_valid_pos, positions, ks=(1, 3, 5))
            return {name: value for name, value in metrics.items() if name.startswith("P@")}

        loop_checkpoint = checkpoint.for_level(1, "network", net) if checkpoint is not None else None
        train_epochs(net, step, lengths, p.training, validate, desc=desc, log=log,
                     progress=progress, checkpoint=loop_checkpoint, prior=self.label_prior)

    def _candidate_network(self) -> nn.Module:
        return self.network

    def _candidate_logits_of(self, ids: torch.Tensor, mask: torch.Tensor, candidates: np.ndarray, valid: np.ndarray,
                             which: str, index: np.ndarray) -> torch.Tensor:
        return self.network(ids, mask, torch.from_numpy(candidates).to(self.device),
                            self._batch_graph(candidates, valid), self._candidate_logits(which, index))

    @torch.no_grad()
    def _search(self, docs: Docs, k: int, beam: int, batch_size: int,
                on_batch: Optional[Callable[[int], None]]) -> Tuple[np.ndarray, np.ndarray]:
        if self.over_candidates:
            return self._candidate_search(docs, k, batch_size, on_batch)
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

    # ---- persistence ------------------------------------------------------------
    def _weights(self) -> Dict[str, np.ndarray]:
        if self.network is None:
            return {}
        g = self.graph_matrix
        return {**state_arrays("network", self.network), "graph.indptr": g.indptr.astype(np.int64),
                "graph.indices": g.indices.astype(np.int64), "graph.values": g.data.astype(np.float32)}

    def _load_weights(self, arrays: Dict[str, np.ndarray], info: Dict, directory: Path) -> None:
        self._load_candidates(info, directory)
        over_candidates = info.get("candidates", False)
        self.graph_matrix = _graph_from_arrays(arrays, self.tree.n_labels, self.params.graph_reweight, directory)
        rows = len(self.text.vocab)
        self.network = LDGNNetwork(np.broadcast_to(np.float32(0), (rows, self.params.embedding.dim)),
                                   self.tree.n_labels, None, self.params, self.stacked)
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
