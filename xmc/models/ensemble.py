"""An ensemble of deep models on different label trees (AttentionXML's ensemble of three trees).

Member i is trained with seed ``seed + i``, so its label tree (and its
initial weights) differ. A label's ensemble score is the mean of the members'
scores, a member that did not rank the label among its top ``2k`` counting 0.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from xmc.data import TextData
from xmc.models.base import Log, raw_texts
from xmc.models.params import DeepParams
from xmc.tree import LabelTree
from xmc.utils.modeldir import MANIFEST, ModelFormatError, begin_save, read_manifest, write_manifest

KIND = "ensemble"


class Ensemble:
    """Several models of one kind on trees with different seeds, scored by their mean."""

    KIND = KIND

    def __init__(self, model_kind: str = "attentionxml", params: Optional[DeepParams] = None,
                 n_models: int = 3) -> None:
        from xmc.models import MODELS

        if model_kind not in MODELS:
            raise ValueError(f"unknown model kind {model_kind!r}; expected one of {list(MODELS)}")
        if n_models < 1:
            raise ValueError(f"an ensemble needs at least one model, got {n_models}")
        self.model_kind = model_kind
        self.params = params or DeepParams()
        self.n_models = n_models
        self.members: List = []

    def fit(self, corpus: TextData, valid: Optional[TextData] = None, tree: Optional[LabelTree] = None,
            progress: bool = True, log: Optional[Log] = print, checkpoint_dir: Optional[Union[str, Path]] = None,
            resume: bool = False) -> "Ensemble":
        """Train the members in turn; member i checkpoints in ``checkpoint_dir/member<i>`` (a finished
        member's last checkpoint is its final weights, so a resume reloads it instead of training it)."""
        from xmc.models import MODELS

        if tree is not None and self.n_models > 1:
            raise ValueError("an ensemble builds one tree per member; do not pass a tree")
        self.members = []
        for i in range(self.n_models):
            if log is not None:
                log(f"ensemble member {i + 1}/{self.n_models}")
            params = dataclasses.replace(self.params, seed=self.params.seed + i)
            member_dir = Path(checkpoint_dir) / f"member{i}" if checkpoint_dir is not None else None
            self.members.append(MODELS[self.model_kind](params).fit(corpus, valid=valid, tree=tree,
                                                                    progress=progress, log=log,
                                                                    checkpoint_dir=member_dir, resume=resume))
        return self

    def features(self, corpus) -> List[str]:
        """The raw texts: each member tokenizes with its own word vocabulary (fit on its own training split)."""
        return raw_texts(corpus, f"an ensemble of {self.model_kind} models")

    # Label vocabularies agree: every member fits LabelVocab on the same full corpus.
    def labels(self, corpus):
        return self.members[0].labels(corpus)

    def reader_kwargs(self) -> dict:
        return {}

    @property
    def vocab(self):
        return self.members[0].vocab

    @property
    def n_labels(self) -> int:
        return self.members[0].n_labels

    def predict_topk(self, corpus_or_docs, k: int = 5, beam: Optional[int] = None, threads: Optional[int] = None,
                     batch_size: Optional[int] = None,
                     on_batch: Optional[Callable[[int], None]] = None) -> Tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        texts = self.features(corpus_or_docs)
        n = len(texts)
        sums: List[Dict[int, float]] = [dict() for _ in range(n)]
        for i, member in enumerate(self.members):
            last = i == len(self.members) - 1
            ids, scores = member.predict_topk(texts, k=2 * k, beam=beam, threads=threads, batch_size=batch_size,
                                              on_batch=on_batch if last else None)
            for row in range(n):
                acc = sums[row]
                for label, score in zip(ids[row], scores[row]):
                    if label >= 0:
                        acc[int(label)] = acc.get(int(label), 0.0) + float(score)
        out_ids = np.full((n, k), -1, dtype=np.int32)
        out_scores = np.zeros((n, k), dtype=np.float32)
        for row, acc in enumerate(sums):
            best = sorted(acc.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
            for j, (label, total) in enumerate(best):
                out_ids[row, j] = label
                out_scores[row, j] = total / len(self.members)
        return out_ids, out_scores

    def save(self, directory: Union[str, Path]) -> None:
        self._check_fitted()
        directory = begin_save(Path(directory))
        for i, member in enumerate(self.members):
            member.save(directory / f"member{i}")
        write_manifest(directory, KIND, {"input_kind": "text", "model": self.model_kind,
                                         "members": len(self.members)})

    @classmethod
    def load(cls, directory: Union[str, Path]) -> "Ensemble":
        from xmc.models import MODELS

        directory = Path(directory)
        info = read_manifest(directory, KIND)
        kind, count = info.get("model"), info.get("members")
        # A crafted manifest may hold any JSON here: check the types before using them as a key or a range.
        if not isinstance(kind, str) or kind not in MODELS or type(count) is not int or count < 1:
            raise ModelFormatError(f"{directory / MANIFEST}: expected a model kind of {sorted(MODELS)} and a member "
                                   f"count >= 1; found {count!r} members of kind {kind!r}"[:400])
        ensemble = cls(kind, n_models=count)
        ensemble.members = [MODELS[kind].load(directory / f"member{i}") for i in range(count)]
        ensemble.params = ensemble.members[0].params
        # Scores are summed by label id, so every member must number the labels the same way.
        for i, member in enumerate(ensemble.members):
            if member.vocab != ensemble.members[0].vocab:
                raise ModelFormatError(f"{directory / f'member{i}'}: its labels differ from member0's; an "
                                       f"ensemble's members must number the labels the same way")
        return ensemble

    def _check_fitted(self) -> None:
        if not self.members:
            raise RuntimeError("this Ensemble is not trained yet: call fit() or Ensemble.load()")
