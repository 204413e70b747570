"""An ensemble of deep models on different label trees (AttentionXML's ensemble of three trees).

Member i is trained with seed ``seed + i``, so its label tree (and its
initial weights) differ. A label's ensemble score is the mean of the members'
scores, a member that did not rank the label among its top ``2k`` counting 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Tuple, Union

import numpy as np

from xmc import registry
from xmc.data import TextData
from xmc.estimator import Estimator, text_corpus
from xmc.models.base import Log, raw_texts
from xmc.params import Params, check_int, param
from xmc.search.merge import mean_topk
from xmc.tree import LabelTree
from xmc.utils.modeldir import MANIFEST, ModelFormatError, begin_save, read_manifest, reading, write_manifest
from xmc.utils.resources import StageTimes

KIND = "ensemble"


def member_kinds() -> List[str]:
    """The kinds an ensemble can hold: every deep model of the registry but the ensemble itself."""
    return sorted(kind for kind, entry in registry.MODELS.items() if entry.needs_torch and kind != KIND)


@dataclass
class EnsembleParams(Params):
    """The members' kind and count, and their params."""

    model: str = param("attentionxml", "kind of the members (a deep model)")
    n_models: int = param(3, "members; member i trains with training.seed + i and tree.seed + i")
    member: Any = param(None, "the members' params, as `xmc params MODEL` prints them (null: its defaults)")

    def __post_init__(self) -> None:
        if self.model not in member_kinds():
            raise ValueError(f"model: expected one of {', '.join(member_kinds())}, found {self.model!r}")
        member_class = registry.get(self.model).params_class()
        if self.member is None:
            self.member = member_class()
        elif isinstance(self.member, Mapping):
            self.member = member_class.from_dict(self.member, path="member")
        elif not isinstance(self.member, member_class):
            raise TypeError(f"member: expected {member_class.__name__}, found {type(self.member).__name__}")
        super().__post_init__()

    def validate(self) -> None:
        check_int(self.n_models, "n_models")

    def with_values(self, values: Mapping[str, Any]) -> "EnsembleParams":
        # Another member kind starts from its own defaults: the old kind's params would not fit it.
        if "model" in values and values["model"] != self.model:
            fresh = EnsembleParams(model=values["model"], n_models=self.n_models)
            return fresh.with_values({k: v for k, v in values.items() if k != "model"})
        return super().with_values(values)

    def flag_paths(self, flag: str):
        return tuple(f"member.{p}" for p in self.member.flag_paths(flag))


class Ensemble(Estimator):
    """Several models of one kind on trees with different seeds, scored by their mean (a mean of probabilities:
    a probability)."""

    KIND = KIND
    PARAMS = EnsembleParams

    def __init__(self, params: Optional[EnsembleParams] = None, **settings) -> None:
        """``Ensemble(params)`` or ``Ensemble(model="ldgn", n_models=3, member__training__lr=3e-3)``."""
        self.params = self._params_from(params, settings)
        self.members: List = []
        self.stage_seconds = StageTimes()  # of the last fit, the members' summed

    def fit(self, corpus: TextData, y=None, valid: Optional[TextData] = None, tree: Optional[LabelTree] = None,
            progress: bool = True, log: Optional[Log] = print, checkpoint_dir: Optional[Union[str, Path]] = None,
            resume: bool = False) -> "Ensemble":
        """Train the members in turn (on a corpus, or a list of texts and their labels ``y``); member i
        checkpoints in ``checkpoint_dir/member<i>`` (a finished member's last checkpoint is its final weights,
        so a resume reloads it instead of training it)."""
        corpus = text_corpus(corpus, y)
        self.thresholds = None
        if tree is not None and self.params.n_models > 1:
            raise ValueError("an ensemble builds one tree per member; do not pass a tree")
        self.members = []
        for i in range(self.params.n_models):
            if log is not None:
                log(f"ensemble member {i + 1}/{self.params.n_models}")
            member = registry.get(self.params.model).model_class()(self._member_params(i))
            member_dir = Path(checkpoint_dir) / f"member{i}" if checkpoint_dir is not None else None
            self.members.append(member.fit(corpus, valid=valid, tree=tree, progress=progress, log=log,
                                           checkpoint_dir=member_dir, resume=resume))
        self.stage_seconds = StageTimes()
        for member in self.members:
            self.stage_seconds.add(member.stage_seconds)
        return self

    def _member_params(self, i: int):
        member = self.params.member
        seeds = {"training.seed": member.training.seed + i}
        if hasattr(member, "tree"):
            seeds["tree.seed"] = member.tree.seed + i
        return member.with_values(seeds)

    def features(self, corpus) -> List[str]:
        """The raw texts: each member tokenizes with its own word vocabulary (fit on its own training split)."""
        return raw_texts(corpus, f"an ensemble of {self.params.model} models")

    # Label vocabularies agree: every member fits LabelVocab on the same full corpus.
    def labels(self, corpus, unseen: str = "drop"):
        return self.members[0].labels(corpus, unseen=unseen)

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
        parts = []
        for i, member in enumerate(self.members):
            last = i == len(self.members) - 1
            parts.append(member.predict_topk(texts, k=2 * k, beam=beam, threads=threads, batch_size=batch_size,
                                             on_batch=on_batch if last else None))
        return mean_topk(parts, k)

    def save(self, directory: Union[str, Path]) -> None:
        self._check_fitted()
        directory = begin_save(Path(directory))
        for i, member in enumerate(self.members):
            member.save(directory / f"member{i}")
        self._save_thresholds(directory)
        write_manifest(directory, KIND, {"input_kind": "text", "model": self.params.model,
                                         "members": len(self.members)})

    @classmethod
    def load(cls, directory: Union[str, Path]) -> "Ensemble":
        directory = Path(directory)
        info = read_manifest(directory, KIND)
        kind, count = info.get("model"), info.get("members")
        deep = member_kinds()
        # A crafted manifest may hold any JSON here: check the types before using them as a key or a range.
        if not isinstance(kind, str) or kind not in deep or type(count) is not int or count < 1:
            raise ModelFormatError(f"{directory / MANIFEST}: expected a model kind of {deep} and a member "
                                   f"count >= 1; found {count!r} members of kind {kind!r}"[:400])
        with reading(directory, info):
            members = [registry.get(kind).model_class().load(directory / f"member{i}") for i in range(count)]
            ensemble = cls(EnsembleParams(model=kind, n_models=count, member=members[0].params))
            ensemble.members = members
            # Scores are summed by label id, so every member must number the labels the same way.
            for i, member in enumerate(ensemble.members):
                if member.vocab != ensemble.members[0].vocab:
                    raise ModelFormatError(f"{directory / f'member{i}'}: its labels differ from member0's; an "
                                           f"ensemble's members must number the labels the same way")
            ensemble._load_thresholds(directory, info)
        return ensemble

    def _check_fitted(self) -> None:
        if not self.members:
            raise RuntimeError("this Ensemble is not trained yet: call fit() or Ensemble.load()")
