"""LDGN (Ma et al., 2021): label-specific attention, then a dual graph network over the labels.

For every document: BiLSTM token states; label-wise attention gives each label its own
component u_i (``xmc.ops.label_attention``); two GCN layers on the static co-occurrence
graph (``xmc.data.label_graph``, D^-1/2 A D^-1/2, LeakyReLU) give H2; two 1x1
convolutions of H2 (one linear map per side) rebuild a dynamic graph
D^-1/2 sigmoid(Qa Kb^T) D^-1/2 for this document, two GCN layers on it give H4
(``xmc.ops.dynamic_graph_propagate``, the graph never stored); a per-label output layer
scores [H2, H4] (the paper's W1, one per label), trained with binary cross-entropy.

``params.graph`` selects the paper's variants: "both" (LDGN), "static" (no dynamic graph:
the output layer reads H2), "dynamic" (the dynamic graph rebuilt from the components
themselves), "none" (label attention and the output layer only). Every label is scored for
every document: this is the model for label sets of up to a few thousand labels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from xmc.data.label_graph import cooccurrence_graph, normalize_adjacency
from xmc.metrics import evaluate
from xmc.models.base import Docs, DeepModel, Log, load_state, state_arrays
from xmc.models.batching import dense_targets, eval_batches, tensors
from xmc.models.networks import BiLSTMEncoder, masked_bce
from xmc.models.params import DeepParams
from xmc.models.training import train_epochs
from xmc.ops import SparseGraph, dynamic_graph_propagate, gcn_propagate, label_attention
from xmc.tree import LabelTree
from xmc.utils.modeldir import ModelFormatError

KIND = "ldgn"
GRAPH_ARRAYS = ("graph.indptr", "graph.indices", "graph.values")


class LDGNNetwork(nn.Module):
    """Encoder, label-wise attention, the static and dynamic GCNs of ``params.graph``, output layer."""

    def __init__(self, embeddings: np.ndarray, n_labels: int, graph: Optional[SparseGraph], params: DeepParams) -> None:
        super().__init__()
        self.mode = params.graph
        self.graph = graph
        self.encoder = BiLSTMEncoder(embeddings, params.hidden, params.lstm_layers, params.embedding_dropout,
                                     params.dropout, params.train_embeddings)
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
        else:
            self.dynamic = None
        out_width = (first + gcn) if uses_dynamic else first
        self.dropout = nn.Dropout(params.dropout)
        self.act = nn.LeakyReLU(0.2)
        # One weight vector and bias per label over its final representation: after propagation
        # neighbouring labels' components look alike, so the label's identity lives here.
        self.out_weight = nn.Parameter(torch.empty(n_labels, out_width))
        nn.init.xavier_uniform_(self.out_weight)
        self.out_bias = nn.Parameter(torch.zeros(n_labels))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        H = self.encoder(ids, mask)
        x = label_attention(H, mask, self.queries)  # B, L, width: each label's component u_i
        if self.static is not None:  # H^{l+1} = LeakyReLU(A_s H^l W^l)
            for layer in self.static:
                x = self.act(gcn_propagate(self.graph, layer(x)))
        parts = [x]
        if self.dynamic is not None:
            Qa, Kb = self.conv_a(x), self.conv_b(x)  # the dynamic graph is rebuilt once, from H2
            y = x
            for layer in self.dynamic:
                y = self.act(dynamic_graph_propagate(Qa, Kb, layer(y)))
            parts.append(y)
        final = self.dropout(torch.cat(parts, dim=2))  # B, L, out_width
        return (final * self.out_weight).sum(dim=2) + self.out_bias


class LDGN(DeepModel):
    """LDGN over all labels; see the module docstring."""

    KIND = KIND

    def __init__(self, params: Optional[DeepParams] = None) -> None:
        super().__init__(params)
        self.network: Optional[LDGNNetwork] = None
        self.graph_matrix: Optional[sp.csr_matrix] = None

    def _build_tree(self, texts: Sequence[str], Y: sp.csr_matrix) -> LabelTree:
        return LabelTree.flat(Y.shape[1])  # every label is scored: the tree only orders them

    def _static_graph(self) -> Optional[SparseGraph]:
        if self.params.graph not in ("both", "static"):
            return None
        return SparseGraph.from_scipy(self.graph_matrix, device=self.device)

    def _fit_networks(self, docs: Docs, Y: sp.csr_matrix, valid_docs: Docs, Y_valid: sp.csr_matrix,
                      embeddings: np.ndarray, progress: bool, log: Optional[Log], checkpoint=None) -> None:
        p = self.params
        order = self.tree.label_order
        # Columns in tree order (the identity for a flat tree) so positions and graph nodes agree.
        Y_pos, Y_valid_pos = Y[:, order].tocsr(), Y_valid[:, order].tocsr()
        self.graph_matrix = normalize_adjacency(cooccurrence_graph(Y_pos, p.graph_threshold, p.graph_reweight))
        torch.manual_seed(p.seed)
        self.network = LDGNNetwork(embeddings, Y.shape[1], self._static_graph(), p).to(self.device)
        net = self.network
        lengths = np.array([d.size for d in docs])

        def step(index: np.ndarray) -> torch.Tensor:
            ids, mask = tensors(docs, index, p.text.max_len, self.device)
            return masked_bce(net(ids, mask), torch.from_numpy(dense_targets(Y_pos, index)).to(self.device))

        def validate() -> Dict[str, float]:
            positions, _ = self._search(valid_docs, k=5, beam=0, batch_size=p.eval_batch_size, on_batch=None)
            metrics = evaluate(Y_valid_pos, positions, ks=(1, 3, 5))
            return {name: value for name, value in metrics.items() if name.startswith("P@")}

        loop_checkpoint = checkpoint.for_level(1, "network", net) if checkpoint is not None else None
        train_epochs(net, step, lengths, p, validate, desc=f"{self.KIND} ({p.graph} graph)", log=log,
                     progress=progress, checkpoint=loop_checkpoint)

    @torch.no_grad()
    def _search(self, docs: Docs, k: int, beam: int, batch_size: int,
                on_batch: Optional[Callable[[int], None]]) -> Tuple[np.ndarray, np.ndarray]:
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
        return out_pos, out_scores

    # ---- persistence ------------------------------------------------------------
    def _weights(self) -> Dict[str, np.ndarray]:
        if self.network is None:
            return {}
        g = self.graph_matrix
        return {**state_arrays("network", self.network), "graph.indptr": g.indptr.astype(np.int64),
                "graph.indices": g.indices.astype(np.int64), "graph.values": g.data.astype(np.float32)}

    def _load_weights(self, arrays: Dict[str, np.ndarray], info: Dict, directory: Path) -> None:
        self.graph_matrix = _graph_from_arrays(arrays, self.tree.n_labels, self.params.graph_reweight, directory)
        rows = len(self.text.vocab)
        self.network = LDGNNetwork(np.broadcast_to(np.float32(0), (rows, self.params.embedding.dim)),
                                   self.tree.n_labels, None, self.params)
        load_state("network", self.network, arrays, directory)
        self.network.to(self.device).eval()
        if self.device.type != "meta":
            self.network.graph = self._static_graph()


def _graph_from_arrays(arrays: Dict[str, np.ndarray], n_labels: int, reweight: Optional[float],
                       directory: Path) -> sp.csr_matrix:
    """The saved static graph, checked (the native propagation trusts its ids)."""
    from xmc.models.base import WEIGHTS

    where = directory / WEIGHTS
    missing = [name for name in GRAPH_ARRAYS if name not in arrays]
    if missing:
        raise ModelFormatError(f"{where}: array {missing[0]!r} is missing")
    indptr, indices, values = (arrays[name] for name in GRAPH_ARRAYS)
    if (indptr.ndim != 1 or indices.ndim != 1 or values.ndim != 1 or indptr.dtype.kind not in "iu"
            or indices.dtype.kind not in "iu" or values.dtype.kind != "f" or indptr.shape[0] != n_labels + 1
            or indices.shape != values.shape or indptr[0] != 0 or indptr[-1] != indices.shape[0]
            or np.any(np.diff(indptr) < 0)):
        raise ModelFormatError(f"{where}: the label graph's arrays do not form a {n_labels} x {n_labels} CSR matrix")
    if indices.size and (indices.min() < 0 or indices.max() >= n_labels):
        raise ModelFormatError(f"{where}: the label graph names labels outside [0, {n_labels})")
    # D^-1/2 A D^-1/2 of a co-occurrence graph with self-loops lies in [0, 1] (every degree is at least the
    # self-loop's 1), or in [0, p / (1 - p)] re-weighted with p (self-loops of 1 - p, neighbours p at most).
    # A forged -1e30 is finite, but it overflowed propagation into NaN scores.
    top = 1.0 if reweight is None else max(1.0, reweight / (1.0 - reweight))
    if not np.all((values >= 0) & (values <= top * (1 + 1e-5))):
        raise ModelFormatError(f"{where}: the label graph holds weights outside [0, {top:g}] (or not numbers); "
                               f"its normalised adjacency never does")
    return sp.csr_matrix((values.astype(np.float32), indices.astype(np.int64), indptr.astype(np.int64)),
                         shape=(n_labels, n_labels))
