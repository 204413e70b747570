"""LightAttention (AttentionXML + dynamic negative label sampling).

The paper (lightattention-attentionxml-dynamic-negatives, Algorithm 2) adds to
AttentionXML a generator that scores label clusters from the document
representation; labels of high-scoring clusters that hold no positive label
are handed to the label-wise attention model (the discriminator) as hard
negatives, and the two are trained together on one shared encoder:

    loss = BCE(generator logits, cluster targets)
         + BCE(attention logits over the candidates, label targets)

where the candidates of a document are the labels of its positive clusters
(static negatives, as AttentionXML's) and of the generator's top
``generator_top_k`` clusters, at most a quarter of all clusters (dynamic
negatives, recomputed at every step as the generator learns). Clusters are the leaves of the balanced label tree
(``tree.max_leaf_size`` labels at most, fewer on small label sets: see
:meth:`LightAttentionParams.cluster_size`). At prediction the generator picks
the top ``beam`` clusters and a label scores sigmoid(generator) x
sigmoid(attention).

Over another model's candidates (:mod:`xmc.models.candidates`: by default a
linear PLT's, above ``auto_candidates_above`` labels) that model takes the
generator's place: its proposals are the hard negatives the discriminator is
trained on and the labels it scores, and there is no generator.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from xmc.layers.encoders import BiLSTMEncoder
from xmc.layers.heads import AttentionScorer, ClusterGenerator
from xmc.layers.losses import masked_bce
from xmc.layers.state import load_state, state_arrays
from xmc.metrics import evaluate
from xmc.models.attentionxml import build_tree_from_texts
from xmc.models.base import DeepModel, Docs, Log
from xmc.models.candidates import CandidateParams, OverCandidates, add_candidate_scale, with_candidate_logits
from xmc.models.params import TreeModelParams
from xmc.params import check_int, param
from xmc.training.batching import clear_empty_slots, dense_targets, eval_batches, row_targets, tensors
from xmc.training.loop import train_epochs
from xmc.tree import LabelTree
from xmc.tree.label_tree import expand_children

KIND = "lightattention"


@dataclass
class LightAttentionParams(TreeModelParams, CandidateParams):
    """LightAttention: AttentionXML's scorer over the tree's leaf clusters and a generator of hard negatives."""

    generator_top_k: int = param(8, "clusters from which the generator's dynamic negatives are drawn")
    generator_hidden: int = param(256, "hidden units of the cluster generator")
    min_clusters: int = param(32, "clusters hold fewer than tree.max_leaf_size labels (2 at least) where that "
                                  "size would leave fewer clusters than this")

    def validate(self) -> None:
        super().validate()
        check_int(self.generator_top_k, "generator_top_k")
        check_int(self.generator_hidden, "generator_hidden")
        check_int(self.min_clusters, "min_clusters")

    def cluster_size(self, n_labels: int) -> int:
        """Most labels per cluster for ``n_labels`` labels: ``tree.max_leaf_size``, or less so that there are
        about ``min_clusters`` clusters, never under 2. With a few clusters the generator has little to tell
        apart and the product of its probability with the discriminator's loses: on Reuters (90 labels) and
        GoEmotions (28) clusters of 2 had the best validation P@1 of 2, 4 and 8."""
        return max(MIN_CLUSTER_SIZE, min(self.tree.max_leaf_size, n_labels // self.min_clusters))


MIN_CLUSTER_SIZE = 2


class LightAttentionNetwork(nn.Module):
    """Shared encoder, cluster generator and label-wise attention discriminator; over candidates
    (``n_clusters`` 0) no generator, and ``stacked`` on the candidate model's log-odds or not."""

    def __init__(self, embeddings: np.ndarray, n_clusters: int, n_labels: int, params: LightAttentionParams,
                 stacked: bool = False) -> None:
        super().__init__()
        self.encoder = BiLSTMEncoder(embeddings, params.hidden, params.lstm_layers, params.embedding_dropout,
                                     params.dropout, params.train_embeddings)
        self.generator = ClusterGenerator(n_clusters, self.encoder.output_dim, params.generator_hidden,
                                          params.dropout) if n_clusters else None
        self.discriminator = AttentionScorer(n_labels, self.encoder.output_dim, params.fc_sizes, params.dropout)
        self.candidate_scale = None
        if stacked:
            last = self.discriminator.fc[-1]
            add_candidate_scale(self, (last.weight, last.bias))

    def candidate_logits(self, ids: torch.Tensor, mask: torch.Tensor, candidates: torch.Tensor,
                         candidate_logits: Optional[torch.Tensor]) -> torch.Tensor:
        """The discriminator's logits of another model's candidates (B, C), plus that model's scaled log-odds
        when stacked."""
        return with_candidate_logits(self, self.discriminator(self.encoder(ids, mask), mask, candidates),
                                     candidate_logits)


def cluster_candidates(generated: np.ndarray, positive_clusters: sp.csr_matrix, rows: np.ndarray,
                       top_k: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clusters to draw candidates from: the row's positive clusters, then the generator's best others.

    Returns (clusters (B, P + top_k), valid, dynamic): ``dynamic`` marks the
    clusters chosen by the generator that hold no positive label.
    """
    counts = np.diff(positive_clusters.indptr)[rows]
    width = int(counts.max(initial=0)) + top_k
    clusters = np.zeros((rows.size, width), dtype=np.int64)
    valid = np.zeros((rows.size, width), dtype=bool)
    dynamic = np.zeros((rows.size, width), dtype=bool)
    for b, r in enumerate(rows):
        pos = positive_clusters.indices[positive_clusters.indptr[r]:positive_clusters.indptr[r + 1]]
        clusters[b, :pos.size] = pos
        positive = set(pos.tolist())
        extra = [c for c in generated[b] if c not in positive][:top_k]
        clusters[b, pos.size:pos.size + len(extra)] = extra
        valid[b, :pos.size + len(extra)] = True
        dynamic[b, pos.size:pos.size + len(extra)] = True
    return clusters, valid, dynamic


class LightAttention(OverCandidates, DeepModel):
    """AttentionXML's label-wise attention trained with a cluster generator's hard negatives (or another
    model's candidates)."""

    KIND = KIND
    PARAMS = LightAttentionParams

    def __init__(self, params: Optional[LightAttentionParams] = None, candidates=None, **settings) -> None:
        """``candidates``: a trained xmc model whose predictions are the labels scored (None: as
        ``params.candidates`` says)."""
        super().__init__(params, **settings)
        self.network: Optional[LightAttentionNetwork] = None
        self._init_candidates(candidates)

    @property
    def cluster_indptr(self) -> np.ndarray:
        """Leaf i (a cluster) holds the label positions cluster_indptr[i]:cluster_indptr[i+1]."""
        return self.tree.layer_indptr[-1]

    def _build_tree(self, texts: Sequence[str], Y: sp.csr_matrix) -> LabelTree:
        if self.over_candidates:
            return LabelTree.flat(Y.shape[1])
        p = self.params
        return build_tree_from_texts(texts, Y, p, replace(p.tree, max_leaf_size=p.cluster_size(Y.shape[1])))

    def _fit_networks(self, docs: Docs, Y: sp.csr_matrix, valid_docs: Docs, Y_valid: sp.csr_matrix,
                      embeddings: np.ndarray, progress: bool, log: Optional[Log], checkpoint=None) -> None:
        p = self.params
        torch.manual_seed(p.training.seed)
        if self.over_candidates:
            self.network = LightAttentionNetwork(embeddings, 0, self.tree.n_labels, p, self.stacked).to(self.device)
            self._train_over_candidates(self.network, docs, Y, valid_docs, Y_valid, f"{self.KIND} over candidates",
                                        progress, log, checkpoint)
            return
        n_clusters = self.tree.n_leaves
        self.network = LightAttentionNetwork(embeddings, n_clusters, self.tree.n_labels, p).to(self.device)
        net = self.network
        depth = self.tree.depth
        cluster_targets = self.tree.node_targets(Y, depth - 1) if depth > 1 else sp.csr_matrix(
            np.ones((Y.shape[0], 1), dtype=np.float32))
        label_targets = self.tree.node_targets(Y, depth)  # columns are label positions
        valid_targets = self.tree.node_targets(Y_valid, depth)
        # At most a quarter of the clusters: with few clusters, "the generator's best" would be all of them.
        # Measured without the cap (the top 8 of Reuters' few clusters): test P@1 fell from 93.01 to 92.38,
        # and on GoEmotions the best validation P@1 in 6 epochs from 57.7 to 53.2.
        top_k = max(1, min(p.generator_top_k, n_clusters // 4))

        def step(index: np.ndarray) -> torch.Tensor:
            ids, mask = tensors(docs, index, p.text.max_len, self.device)
            H = net.encoder(ids, mask)
            g_logits = net.generator(H, mask)
            g_loss = masked_bce(g_logits, torch.from_numpy(dense_targets(cluster_targets, index)).to(self.device))
            # Enough of the generator's best clusters that top_k of them hold no positive.
            most_positive = int(np.diff(cluster_targets.indptr)[index].max(initial=0))
            with torch.no_grad():
                generated = g_logits.topk(min(top_k + most_positive, n_clusters), dim=1).indices.cpu().numpy()
            clusters, cvalid, _ = cluster_candidates(generated, cluster_targets, index, top_k)
            labels, lvalid, _ = expand_children(clusters, cvalid, self.cluster_indptr)
            d_logits = net.discriminator(H, mask, torch.from_numpy(labels).to(self.device))
            y = torch.from_numpy(row_targets(label_targets, index, labels)).to(self.device)
            return g_loss + masked_bce(d_logits, y, torch.from_numpy(lvalid).to(self.device))

        def validate() -> Dict[str, float]:
            positions, _ = self._search(valid_docs, k=5, beam=p.top_k, batch_size=p.training.eval_batch_size,
                                        on_batch=None)
            metrics = evaluate(valid_targets, positions, ks=(1, 3, 5))
            return {name: value for name, value in metrics.items() if name.startswith("P@")}

        lengths = np.array([d.size for d in docs])
        loop_checkpoint = checkpoint.for_level(1, "network", net) if checkpoint is not None else None
        train_epochs(net, step, lengths, p.training, validate, desc=self.KIND, log=log, progress=progress,
                     checkpoint=loop_checkpoint,
                     prior=self.label_prior)

    def _candidate_logits_of(self, ids: torch.Tensor, mask: torch.Tensor, candidates: np.ndarray, valid: np.ndarray,
                             which: str, index: np.ndarray) -> torch.Tensor:
        return self.network.candidate_logits(ids, mask, torch.from_numpy(candidates).to(self.device),
                                             self._candidate_logits(which, index))

    def _candidate_network(self) -> nn.Module:
        return self.network

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
        n_clusters = self.tree.n_leaves
        for index in eval_batches(lengths, batch_size):
            ids, mask = tensors(docs, index, self.params.text.max_len, self.device)
            H = net.encoder(ids, mask)
            g_probs = torch.sigmoid(net.generator(H, mask))
            g_best, clusters = g_probs.topk(min(beam, n_clusters), dim=1)
            labels, valid, slot = expand_children(clusters.cpu().numpy(), np.ones(clusters.shape, dtype=bool),
                                                  self.cluster_indptr)
            cand = torch.from_numpy(labels).to(self.device)
            d_probs = torch.sigmoid(net.discriminator(H, mask, cand))
            scores = d_probs * g_best.gather(1, torch.from_numpy(slot).to(self.device))
            scores = torch.where(torch.from_numpy(valid).to(self.device), scores, torch.full_like(scores, -1.0))
            top = min(k, scores.shape[1])
            best, where = scores.topk(top, dim=1)
            out_pos[index, :top] = cand.gather(1, where).cpu().numpy()
            out_scores[index, :top] = best.cpu().numpy()
            if on_batch is not None:
                on_batch(index.size)
        return clear_empty_slots(out_pos, out_scores)  # clusters of unequal sizes leave -1.0 fills

    def _weights(self) -> Dict[str, np.ndarray]:
        return state_arrays("network", self.network) if self.network is not None else {}

    def _load_weights(self, arrays: Dict[str, np.ndarray], info: Dict, directory: Path) -> None:
        self._load_candidates(info, directory)
        rows = len(self.text.vocab)
        over = info.get("candidates", False)  # the candidate model itself is not loaded in the dry run
        self.network = LightAttentionNetwork(np.broadcast_to(np.float32(0), (rows, self.params.embedding.dim)),
                                             0 if over else self.tree.n_leaves, self.tree.n_labels, self.params,
                                             self.stacked)
        load_state("network", self.network, arrays, directory)
        self.network.to(self.device).eval()
