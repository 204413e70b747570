"""AttentionXML (You et al., NeurIPS 2019) on xmc's label tree.

One network per tree level: word embeddings, BiLSTM, label-wise attention
with one query per node of the level, fully connected layers shared by the
nodes, one logit per candidate node. Level 1 scores all its nodes. Level d
is trained on the children of the top-k nodes that levels 1..d-1 predict,
with the document's positive nodes forced in, and starts from level d-1's
weights (each child's query from its parent's). Prediction is a beam search
over the levels: a node's score is its probability times its parent's score.

Label sets up to ``flat_max_labels`` are one flat level (every label is a
candidate); larger ones get a shallow-and-wide tree of ``tree.height`` levels.
Over another model's candidates (:mod:`xmc.models.candidates`: by default a
linear PLT's, above ``auto_candidates_above`` labels) there is one flat
level whose network scores each document's proposals only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from xmc.data import TextData, TfidfFeaturizer
from xmc.layers.encoders import BiLSTMEncoder
from xmc.layers.heads import AttentionScorer
from xmc.layers.losses import masked_bce
from xmc.layers.state import load_state, state_arrays
from xmc.metrics import evaluate
from xmc.models.base import DeepModel, Docs, Log
from xmc.models.candidates import CandidateParams, OverCandidates, add_candidate_scale, with_candidate_logits
from xmc.models.params import TreeModelParams
from xmc.params import check_int, param
from xmc.training.batching import (clear_empty_slots, dense_targets, eval_batches, parents_with_positives, row_targets,
                                   tensors)
from xmc.training.loop import train_epochs
from xmc.tree import LabelTree, build_label_tree
from xmc.tree.params import TreeParams
from xmc.tree.label_tree import expand_children
from xmc.utils.modeldir import ModelFormatError

KIND = "attentionxml"


@dataclass
class AttentionXMLParams(TreeModelParams, CandidateParams):
    """AttentionXML: a BiLSTM, label-wise attention over the tree's nodes, trained level by level."""

    flat_max_labels: int = param(4096, "label sets up to this size are trained as one flat level")

    def validate(self) -> None:
        super().validate()
        check_int(self.flat_max_labels, "flat_max_labels")


class LevelNetwork(nn.Module):
    """Encoder + label-wise attention scorer over the nodes of one tree level."""

    def __init__(self, embeddings: np.ndarray, n_nodes: int, params: AttentionXMLParams, stacked: bool = False) -> None:
        super().__init__()
        self.encoder = BiLSTMEncoder(embeddings, params.hidden, params.lstm_layers, params.embedding_dropout,
                                     params.dropout, params.train_embeddings)
        self.scorer = AttentionScorer(n_nodes, self.encoder.output_dim, params.fc_sizes, params.dropout)
        self.candidate_scale = None
        if stacked:  # over candidates, stacked on the candidate model's log-odds (xmc.models.candidates)
            last = self.scorer.fc[-1]
            add_candidate_scale(self, (last.weight, last.bias))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, candidates: Optional[torch.Tensor] = None,
                candidate_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        return with_candidate_logits(self, self.scorer(self.encoder(ids, mask), mask, candidates), candidate_logits)

    def init_from_parent_level(self, parent: "LevelNetwork", parent_of_node: np.ndarray) -> None:
        """Encoder and FC from the level above; each node's query from its parent's, plus a little noise."""
        self.encoder.load_state_dict(parent.encoder.state_dict())
        self.scorer.fc.load_state_dict(parent.scorer.fc.state_dict())
        with torch.no_grad():
            q = parent.scorer.queries[torch.from_numpy(parent_of_node)]
            self.scorer.queries.copy_(q + 0.01 * q.std() * torch.randn_like(q))


def _topk(scores: torch.Tensor, nodes: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    k = min(k, scores.shape[1])
    best, where = scores.topk(k, dim=1)
    return nodes.gather(1, where), best


class AttentionXML(OverCandidates, DeepModel):
    """Level-wise label-wise attention over a label tree or another model's candidates; see the module
    docstring."""

    KIND = KIND
    PARAMS = AttentionXMLParams

    def __init__(self, params: Optional[AttentionXMLParams] = None, candidates=None, **settings) -> None:
        """``candidates``: a trained xmc model whose predictions are the labels scored (None: as
        ``params.candidates`` says)."""
        super().__init__(params, **settings)
        self.levels: List[LevelNetwork] = []
        self._init_candidates(candidates)

    # ---- tree -------------------------------------------------------------------
    def _build_tree(self, texts: Sequence[str], Y: sp.csr_matrix) -> LabelTree:
        if Y.shape[1] <= self.params.flat_max_labels or self.over_candidates:
            return LabelTree.flat(Y.shape[1])
        return build_tree_from_texts(texts, Y, self.params)

    # ---- training ---------------------------------------------------------------
    def _fit_networks(self, docs: Docs, Y: sp.csr_matrix, valid_docs: Docs, Y_valid: sp.csr_matrix,
                      embeddings: np.ndarray, progress: bool, log: Optional[Log], checkpoint=None) -> None:
        p = self.params
        if self.over_candidates:
            torch.manual_seed(p.training.seed + 1)
            net = LevelNetwork(embeddings, self.tree.n_labels, p, self.stacked).to(self.device)
            self.levels = [net]
            self._train_over_candidates(net, docs, Y, valid_docs, Y_valid, f"{self.KIND} over candidates", progress,
                                        log, checkpoint, name="level1")
            return
        lengths = np.array([d.size for d in docs])
        self.levels = []
        rng = np.random.default_rng(p.training.seed)
        first = checkpoint.resume_level if checkpoint is not None else 1
        for level in range(1, first):  # finished before the checkpoint: their best weights are in it
            net = LevelNetwork(embeddings, self.tree.level_size(level), p)
            checkpoint.restore(f"level{level}", net)
            self.levels.append(net.to(self.device).eval())
        for level in range(first, self.tree.depth + 1):
            torch.manual_seed(p.training.seed + level)
            net = LevelNetwork(embeddings, self.tree.level_size(level), p).to(self.device)
            if level > 1:
                net.init_from_parent_level(self.levels[-1], self.tree.node_parents(level - 1))
            targets = self.tree.node_targets(Y, level)
            valid_targets = self.tree.node_targets(Y_valid, level)
            if level == 1:
                step = self._full_level_step(net, docs, targets)
            else:
                parent_targets = self.tree.node_targets(Y, level - 1)
                predicted, _ = self._search_levels(docs, level - 1, beam=p.top_k, k=p.top_k)
                step = self._candidate_level_step(net, docs, targets, parent_targets, predicted, level, rng)
            self.levels.append(net)

            def validate(level=level, valid_targets=valid_targets) -> Dict[str, float]:
                nodes, _ = self._search_levels(valid_docs, level, beam=p.top_k, k=5)
                metrics = evaluate(valid_targets, nodes, ks=(1, 3, 5))
                return {name: value for name, value in metrics.items() if name.startswith("P@")}

            desc = f"{self.KIND} level {level}/{self.tree.depth}"
            loop_checkpoint = (checkpoint.for_level(level, f"level{level}", net, {"candidates": rng})
                               if checkpoint is not None else None)
            # The label prior is a baseline for labels, not for the upper levels' nodes.
            train_epochs(net, step, lengths, p.training, validate, desc=desc, log=log, progress=progress,
                         checkpoint=loop_checkpoint, prior=self.label_prior if level == self.tree.depth else None)

    def _full_level_step(self, net: LevelNetwork, docs: Docs, targets: sp.csr_matrix) -> Callable:
        def step(index: np.ndarray) -> torch.Tensor:
            ids, mask = tensors(docs, index, self.params.text.max_len, self.device)
            logits = net(ids, mask)
            return masked_bce(logits, torch.from_numpy(dense_targets(targets, index)).to(self.device))
        return step

    def _candidate_level_step(self, net: LevelNetwork, docs: Docs, targets: sp.csr_matrix,
                              parent_targets: sp.csr_matrix, predicted: np.ndarray, level: int,
                              rng: np.random.Generator) -> Callable:
        indptr = self.tree.layer_indptr[level - 1]

        def step(index: np.ndarray) -> torch.Tensor:
            parents, parent_valid = parents_with_positives(predicted[index], parent_targets, index,
                                                           self.params.top_k, rng)
            children, valid, _ = expand_children(parents, parent_valid, indptr)
            ids, mask = tensors(docs, index, self.params.text.max_len, self.device)
            logits = net(ids, mask, torch.from_numpy(children).to(self.device))
            y = torch.from_numpy(row_targets(targets, index, children)).to(self.device)
            return masked_bce(logits, y, torch.from_numpy(valid).to(self.device))
        return step

    def _candidate_logits_of(self, ids: torch.Tensor, mask: torch.Tensor, candidates: np.ndarray, valid: np.ndarray,
                             which: str, index: np.ndarray) -> torch.Tensor:
        return self.levels[0](ids, mask, torch.from_numpy(candidates).to(self.device),
                              self._candidate_logits(which, index))

    def _candidate_network(self) -> nn.Module:
        return self.levels[0]

    # ---- prediction -------------------------------------------------------------
    def _search(self, docs: Docs, k: int, beam: int, batch_size: int,
                on_batch: Optional[Callable[[int], None]]) -> Tuple[np.ndarray, np.ndarray]:
        if self.over_candidates:
            return self._candidate_search(docs, k, batch_size, on_batch)
        return self._search_levels(docs, self.tree.depth, beam=beam, k=k, batch_size=batch_size,
                                   on_batch=on_batch)

    def level_beams(self, corpus: TextData, beam: Optional[int] = None) -> List[np.ndarray]:
        """The nodes the beam search keeps at each level (``beam`` of them; at the last level every label it
        scores, as positions of the tree), for :func:`xmc.search.recall.beam_recall`."""
        beam = beam or self.params.top_k
        docs = self.features(corpus)
        widest = int(max(np.diff(ptr).max() for ptr in self.tree.layer_indptr))
        return [self._search_levels(docs, level, beam=beam, k=beam if level < self.tree.depth else beam * widest)[0]
                for level in range(1, self.tree.depth + 1)]

    @torch.no_grad()
    def _search_levels(self, docs: Docs, upto: int, beam: int, k: int, batch_size: Optional[int] = None,
                       on_batch: Optional[Callable[[int], None]] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Beam search through levels 1..upto; (nodes of level ``upto``, scores), each (n, k), -1 padded."""
        batch_size = batch_size or self.params.training.eval_batch_size
        lengths = np.array([d.size for d in docs])
        out_nodes = np.full((len(docs), k), -1, dtype=np.int64)
        out_scores = np.zeros((len(docs), k), dtype=np.float32)
        for net in self.levels[:upto]:
            net.eval()
        for index in eval_batches(lengths, batch_size):
            ids, mask = tensors(docs, index, self.params.text.max_len, self.device)
            nodes, scores = self._beam_batch(ids, mask, upto, beam, k)
            width = nodes.shape[1]
            out_nodes[index, :width] = nodes.cpu().numpy()
            out_scores[index, :width] = scores.cpu().numpy()
            if on_batch is not None:
                on_batch(index.size)
        return clear_empty_slots(out_nodes, out_scores)  # the -1.0 fills of _beam_batch

    def _beam_batch(self, ids: torch.Tensor, mask: torch.Tensor, upto: int, beam: int,
                    k: int) -> Tuple[torch.Tensor, torch.Tensor]:
        probs = torch.sigmoid(self.levels[0](ids, mask))
        all_nodes = torch.arange(probs.shape[1], device=probs.device).expand_as(probs)
        nodes, scores = _topk(probs, all_nodes, beam if upto > 1 else k)
        for level in range(2, upto + 1):
            children, valid, slot = expand_children(nodes.cpu().numpy(), (scores > 0).cpu().numpy(),
                                                    self.tree.layer_indptr[level - 1])
            cand = torch.from_numpy(children).to(ids.device)
            probs = torch.sigmoid(self.levels[level - 1](ids, mask, cand))
            parent_scores = scores.gather(1, torch.from_numpy(slot).to(ids.device))
            combined = torch.where(torch.from_numpy(valid).to(ids.device), probs * parent_scores,
                                   torch.full_like(probs, -1.0))
            nodes, scores = _topk(combined, cand, beam if level < upto else k)
        return nodes, scores

    # ---- persistence ------------------------------------------------------------
    def _weights(self) -> Dict[str, np.ndarray]:
        arrays: Dict[str, np.ndarray] = {}
        for level, net in enumerate(self.levels, start=1):
            arrays.update(state_arrays(f"level{level}", net))
        return arrays

    def _manifest_extra(self) -> Dict:
        return {**super()._manifest_extra(), "levels": len(self.levels)}

    def _load_weights(self, arrays: Dict[str, np.ndarray], info: Dict, directory: Path) -> None:
        if info.get("levels") != self.tree.depth:
            raise ModelFormatError(f"{directory}: the manifest lists {info.get('levels')} levels but the tree "
                                   f"has {self.tree.depth}")
        self._load_candidates(info, directory)
        vocab_rows = len(self.text.vocab)
        self.levels = []
        for level in range(1, self.tree.depth + 1):
            dim = self.params.embedding.dim
            net = LevelNetwork(np.broadcast_to(np.float32(0), (vocab_rows, dim)), self.tree.level_size(level),
                               self.params, self.stacked)
            load_state(f"level{level}", net, arrays, directory)
            self.levels.append(net.to(self.device).eval())


def build_tree_from_texts(texts: Sequence[str], Y: sp.csr_matrix, params: AttentionXMLParams,
                          tree: Optional[TreeParams] = None) -> LabelTree:
    """PIFA label embeddings over TF-IDF features of the texts, then the balanced tree (AttentionXML does the
    same) of ``tree`` (default: ``params.tree``)."""
    X = TfidfFeaturizer().fit_transform(list(texts))
    return build_label_tree(X, Y, tree or params.tree)
