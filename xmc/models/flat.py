"""What the deep models that score every label at once share (LW-PT, LACO): a flat label tree, the
probabilities of all labels batch by batch, top-k search over them, and label sets by threshold."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp
import torch

from xmc.models.base import DeepModel, Docs
from xmc.training.batching import eval_batches, top_k
from xmc.tree import LabelTree


class FlatLabelModel(DeepModel):
    """A DeepModel whose network maps a batch of documents to logits over all labels (``_logits``); its
    class is ``NETWORK``."""

    def _build_tree(self, texts: Sequence[str], Y: sp.csr_matrix) -> LabelTree:
        return LabelTree.flat(Y.shape[1])  # every label is scored: positions are label ids

    def _logits(self, docs: Docs, index: np.ndarray) -> torch.Tensor:
        """(len(index), L) logits of the documents ``docs[index]``."""
        raise NotImplementedError

    @torch.no_grad()
    def _probabilities(self, docs: Docs, batch_size: int, on_batch: Optional[Callable[[int], None]]) -> np.ndarray:
        self.network.eval()
        out = np.zeros((len(docs), self.tree.n_labels), dtype=np.float32)
        for index in eval_batches(np.array([d.size for d in docs]), batch_size):
            out[index] = torch.sigmoid(self._logits(docs, index)).cpu().numpy()
            if on_batch is not None:
                on_batch(index.size)
        return out

    def _search(self, docs: Docs, k: int, beam: int, batch_size: int,
                on_batch: Optional[Callable[[int], None]]) -> Tuple[np.ndarray, np.ndarray]:
        return top_k(self._probabilities(docs, batch_size, on_batch), k)

    def predict_sets(self, corpus_or_docs, threshold: float = 0.5, threads: Optional[int] = None,
                     batch_size: Optional[int] = None) -> sp.csr_matrix:
        """Labels of probability >= ``threshold``, (n, n_labels) binary CSR in the model's label ids."""
        docs = self._prediction_docs(corpus_or_docs, threads)
        probs = self._probabilities(docs, batch_size or self.params.training.eval_batch_size, None)
        return sp.csr_matrix(probs[:, np.argsort(self.tree.label_order)] >= threshold, dtype=np.float32)

    def _load_weights(self, arrays: Dict[str, np.ndarray], info: Dict, directory: Path) -> None:
        self._load_network(arrays, directory)
