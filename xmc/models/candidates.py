"""Deep models that score another model's proposals instead of every label (LDGN, AttentionXML, LightAttention).

For each document another xmc model (the linear PLT, AttentionXML) proposes ``params.n_candidates`` labels, and
the deep model scores those only: a label-wise attention network costs time in proportion to the labels it
attends with, so over a few thousand labels on a CPU one epoch takes the better part of an hour (on
EURLEX57K's 4,271 labels, 2 cores: 15 training documents a second with every label scored).

Where the candidates come from (``params.candidates``):

- ``"auto"`` (the default): above ``params.auto_candidates_above`` training labels, a linear PLT with its
  defaults, trained first on the same training documents (its time is part of the deep model's training);
  at or below it, every label is scored as the papers do;
- a trained model directory: that model's proposals (``xmc train --model ldgn --set candidates=DIR``, or
  ``Model(params, candidates=model)`` in Python);
- null: every label, whatever their number.

How the two models' scores combine:

- stacked (``params.candidate_input``; null: stacked on automatic candidates, not on given ones): the
  candidate model's log-odds, times a learned scale, are added to the deep model's logits, and the deep
  model's own output starts at zero, so training starts from the candidate model's ranking and learns what
  to change in it (XR-Transformer's ranker reads sparse and neural features together in the same spirit).
  The candidate model scores its own training documents too confidently, so during training the proposals
  and scores come from ``params.candidate_folds`` refits of its settings, each proposing for the fold it did
  not see, and only the proposals are scored, as at prediction;
- otherwise the deep model learns to rank the proposals by itself (training adds a document's positives to
  them, as AttentionXML does on its tree);
- either way ``params.candidate_weight`` w ranks by (1 - w) * the deep model's probability + w * the
  candidate model's score (null, the default: w chosen on the validation documents once training ends, the
  grid 0, 0.05, ..., 1 by the mean of P@1, P@3 and P@5; both alone are logged beside the blend).

The candidate model is saved inside the deep model's directory (``candidates/``); over candidates, a model
predicts from raw text, which the candidate model reads too.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from xmc.data import TextData
from xmc.layers.losses import masked_bce
from xmc.metrics import evaluate
from xmc.params import Params, check, check_int, param
from xmc.registry import load_model
from xmc.search.merge import best_first
from xmc.training.batching import eval_batches, parents_with_positives, row_targets, tensors
from xmc.training.loop import train_epochs
from xmc.utils.modeldir import ModelFormatError

AUTO = "auto"
CANDIDATES_DIR = "candidates"
# candidate scores are clipped to [eps, 1 - eps] before their log-odds (an empty slot scores 0)
CANDIDATE_EPS = 1e-6


@dataclass
class CandidateParams(Params):
    """The fields of a model that can score candidates (mixed into its params class)."""

    candidates: Optional[str] = param(AUTO, "labels scored per document: a trained model directory (linear PLT, "
                                            "AttentionXML) whose proposals are scored; auto: a linear PLT "
                                            "trained first when there are more than auto_candidates_above "
                                            "labels, else every label; null: every label")
    auto_candidates_above: int = param(500, "with candidates auto: label counts above this are scored over a "
                                             "linear PLT's proposals")
    n_candidates: int = param(100, "labels the candidate model proposes per document")
    candidate_weight: Optional[float] = param(None, "over candidates: w of the final score (1 - w) * this "
                                                    "model's + w * the candidate model's (0: this model alone; "
                                                    "null: chosen on the validation documents after training)")
    candidate_input: Optional[bool] = param(None, "over candidates: the candidate model's log-odds (times a "
                                                  "learned scale) are added to the logits, so the model learns "
                                                  "a correction of that model; training reads out-of-fold "
                                                  "scores (candidate_folds refits); null: true with automatic "
                                                  "candidates, false with a given directory")
    candidate_folds: int = param(3, "when stacked: folds of the training documents; each fold's proposals come "
                                    "from the candidate model's settings refitted on the others")

    def validate(self) -> None:
        super().validate()
        check(self.candidates is None or (isinstance(self.candidates, str) and self.candidates != ""),
              "candidates", "null, auto or a model directory", self.candidates)
        check_int(self.n_candidates, "n_candidates")
        check_int(self.auto_candidates_above, "auto_candidates_above", low=0)
        check(self.candidate_weight is None or (not isinstance(self.candidate_weight, bool)
                                                and 0.0 <= self.candidate_weight <= 1.0), "candidate_weight",
              "null or a number in [0, 1]", self.candidate_weight)
        check(not (self.candidate_input and self.candidates is None), "candidate_input",
              "false or null when candidates is null (there are no candidate scores to read)", self.candidate_input)
        check_int(self.candidate_folds, "candidate_folds", low=2)


def add_candidate_scale(network: nn.Module, own_outputs: Tuple[nn.Parameter, ...]) -> None:
    """Make ``network`` a stacked one: a learned scale of the candidate log-odds (``candidate_scale``, from 1),
    and its own output weights ``own_outputs`` zeroed, so training starts from the candidate model's ranking
    rather than from that ranking plus the noise of random output weights."""
    network.candidate_scale = nn.Parameter(torch.ones(()))
    with torch.no_grad():
        for weight in own_outputs:
            weight.zero_()


def with_candidate_logits(network: nn.Module, logits: torch.Tensor,
                          candidate_logits: Optional[torch.Tensor]) -> torch.Tensor:
    """``logits`` plus the candidate model's log-odds times the network's learned scale, when it is stacked
    (:func:`add_candidate_scale`); else ``logits``."""
    scale = getattr(network, "candidate_scale", None)
    if scale is None:
        return logits
    if candidate_logits is None:
        raise ValueError(f"this {type(network).__name__} is stacked on a candidate model's scores: pass its "
                         f"log-odds")
    return logits + scale * candidate_logits


class OverCandidates:
    """Mixin of a :class:`xmc.models.base.DeepModel` that can score candidates (see the module docstring).

    The model implements ``_candidate_logits_of(ids, mask, candidates, valid, which, index)``, its logits of
    the (B, C) candidate positions of a batch (``which`` and ``index`` locate the batch's candidate scores, for
    :meth:`_candidate_logits`), and ``_candidate_network()``, the network that computes them; over candidates
    it builds a flat tree (positions are label ids) and trains with :meth:`_train_over_candidates`.
    """

    def _init_candidates(self, candidates) -> None:
        self.candidate_model = candidates
        self._given_candidates = candidates is not None
        # (positions, scores) proposed for the documents of the current training or search
        self._candidates: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
        # params.candidate_weight, or the weight chosen on validation when that is null
        self.candidate_weight = self.params.candidate_weight or 0.0
        self.stacked = bool(self.params.candidate_input)

    def unfitted_copy(self):
        return type(self)(self.params, candidates=self.candidate_model if self._given_candidates else None)

    @property
    def over_candidates(self) -> bool:
        return self.candidate_model is not None

    def fit(self, corpus, *args, **kwargs):
        """As :meth:`DeepModel.fit`; a candidates directory in the params is loaded here when no candidate model
        was given (an automatic one is trained once the labels are known)."""
        p = self.params
        if not self._given_candidates and p.candidates not in (None, AUTO):
            self.candidate_model = load_model(p.candidates)
        elif not self._given_candidates:
            self.candidate_model = None  # a refit chooses again
        return super().fit(corpus, *args, **kwargs)

    def _before_training(self, train: TextData, valid: TextData, log) -> None:
        p = self.params
        automatic = self.candidate_model is None and p.candidates == AUTO and len(self.vocab) > p.auto_candidates_above
        if automatic:
            self.candidate_model = self._train_automatic_candidates(train, log)
        self.stacked = self.over_candidates and (p.candidate_input if p.candidate_input is not None else automatic)
        if not self.over_candidates:
            return
        if log is not None:
            log(f"candidates: the {p.n_candidates} labels per document the candidate model proposes"
                + (", stacked on its scores" if self.stacked else ""))
        start = time.perf_counter()
        if self.stacked:
            proposed = self._out_of_fold_proposals(train)
            if log is not None:
                log(f"out-of-fold candidates: {p.candidate_folds} refits of the candidate model in "
                    f"{time.perf_counter() - start:.1f} s")
        else:
            proposed = self._proposals(train)
        self._candidates = {"train": proposed, "valid": self._proposals(valid)}

    def _train_automatic_candidates(self, train: TextData, log):
        from xmc.linear import LinearParams
        from xmc.linear.pipeline import Pipeline

        p = self.params
        start = time.perf_counter()
        model = Pipeline(LinearParams(threads=p.training.threads, seed=p.training.seed)).fit(train, log=None)
        if log is not None:
            log(f"candidates: {len(self.vocab):,} labels, more than auto_candidates_above {p.auto_candidates_above}: "
                f"a linear PLT (its defaults) proposes them, trained in {time.perf_counter() - start:.1f} s")
        return model

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

    def _out_of_fold_proposals(self, train: TextData) -> Tuple[np.ndarray, np.ndarray]:
        """Proposals for the training documents from models that never saw them: the candidate model's settings
        refitted on all folds but one, proposing for that one. The model trained on everything scores its own
        training documents far more confidently than new ones; a network reading those scores would learn to
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
        """The candidate model's log-odds of the proposals of ``index`` (None unless stacked)."""
        if not self.stacked:
            return None
        p = np.clip(self._candidates[which][1][index], CANDIDATE_EPS, 1.0 - CANDIDATE_EPS)
        return torch.from_numpy(np.log(p) - np.log1p(-p)).to(self.device)

    def _training_slots(self, index: np.ndarray, Y_pos: sp.csr_matrix,
                        rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        """(B, n_candidates) positions a training batch scores and which slots hold one: stacked, the proposals
        as prediction sees them (a positive outside them has no score); else the positives first, then the
        proposals."""
        proposed = self._candidates["train"][0][index]
        if self.stacked:
            return proposed_slots(proposed)
        return parents_with_positives(proposed, Y_pos, index, self.params.n_candidates, rng)

    def features(self, corpus):
        # Over candidates the raw text is the input: the candidate model reads it at prediction.
        return corpus if self.over_candidates else super().features(corpus)

    def predict_topk(self, corpus_or_docs, k: int = 5, beam: Optional[int] = None, threads: Optional[int] = None,
                     batch_size: Optional[int] = None, on_batch=None):
        if self.over_candidates:
            if self._is_docs(corpus_or_docs):
                raise ValueError(f"{type(self).__name__} over candidates predicts from raw text (its candidate "
                                 f"model reads it), not from encoded documents")
            self._candidates = {"search": self._proposals(corpus_or_docs)}
            corpus_or_docs = super().features(corpus_or_docs)
        try:
            return super().predict_topk(corpus_or_docs, k=k, beam=beam, threads=threads, batch_size=batch_size,
                                        on_batch=on_batch)
        finally:
            self._candidates.pop("search", None)

    # ---- training -----------------------------------------------------------------
    def _train_over_candidates(self, net: nn.Module, docs, Y: sp.csr_matrix, valid_docs, Y_valid: sp.csr_matrix,
                               desc: str, progress: bool, log, checkpoint=None, name: str = "network") -> None:
        """The epoch loop over each document's candidates (:meth:`_training_slots`), validated on the model's
        own ranking of the validation proposals; then the blend weight (``candidate_weight`` null)."""
        p = self.params
        rng = np.random.default_rng(p.training.seed)

        def step(index: np.ndarray) -> torch.Tensor:
            ids, mask = tensors(docs, index, p.text.max_len, self.device)
            cand, ok = self._training_slots(index, Y, rng)
            logits = self._candidate_logits_of(ids, mask, cand, ok, "train", index)
            y = torch.from_numpy(row_targets(Y, index, cand)).to(self.device)
            return masked_bce(logits, y, torch.from_numpy(ok).to(self.device))

        def validate() -> Dict[str, float]:
            positions, _ = self._candidate_search(valid_docs, 5, p.training.eval_batch_size, None, which="valid")
            metrics = evaluate(Y_valid, positions, ks=(1, 3, 5))
            return {k: v for k, v in metrics.items() if k.startswith("P@")}

        lengths = np.array([d.size for d in docs])
        loop_checkpoint = checkpoint.for_level(1, name, net, {"candidates": rng}) if checkpoint is not None else None
        train_epochs(net, step, lengths, p.training, validate, desc=desc, log=log, progress=progress,
                     checkpoint=loop_checkpoint, prior=self.label_prior)
        if p.candidate_weight is None:
            self.candidate_weight = self._choose_candidate_weight(valid_docs, Y_valid, log)

    # ---- scoring ----------------------------------------------------------------
    @torch.no_grad()
    def _candidate_probabilities(self, docs, which: str, batch_size: int,
                                 on_batch: Optional[Callable[[int], None]]) -> Tuple[np.ndarray, np.ndarray]:
        """The proposed positions (n, C) of ``self._candidates[which]`` and this model's probabilities of them
        (both -1 where nothing was proposed)."""
        self._candidate_network().eval()
        proposed = self._candidates[which][0]
        cand_all, ok_all = proposed_slots(proposed)
        probs_all = np.full(cand_all.shape, -1.0, dtype=np.float32)
        lengths = np.array([d.size for d in docs])
        for index in eval_batches(lengths, batch_size):
            ids, mask = tensors(docs, index, self.params.text.max_len, self.device)
            cand, ok = cand_all[index], ok_all[index]
            logits = self._candidate_logits_of(ids, mask, cand, ok, which, index)
            probs_all[index] = np.where(ok, torch.sigmoid(logits).cpu().numpy(), -1.0)
            if on_batch is not None:
                on_batch(index.size)
        return proposed, probs_all

    def _candidate_search(self, docs, k: int, batch_size: int, on_batch, which: str = "search"):
        """(positions, scores), each (n, k): the proposals ranked by the blend of ``candidate_weight``."""
        cand, probs = self._candidate_probabilities(docs, which, batch_size, on_batch)
        w = self.candidate_weight
        if w > 0:
            probs = (1.0 - w) * probs + w * self._candidates[which][1]
        return best_first(cand, probs, k)

    def _choose_candidate_weight(self, docs, Y: sp.csr_matrix, log) -> float:
        """The blend weight of the grid with the best mean validation P@1, P@3, P@5 (the smaller on ties)."""
        cand, probs = self._candidate_probabilities(docs, "valid", self.params.training.eval_batch_size, None)
        theirs = self._candidates["valid"][1]
        scores = {}
        for w in np.round(np.linspace(0.0, 1.0, 21), 2):
            positions, _ = best_first(cand, (1.0 - w) * probs + w * theirs, 5)
            metrics = evaluate(Y, positions, ks=(1, 3, 5))
            scores[float(w)] = {k: v for k, v in metrics.items() if k.startswith("P@")}
        best = max(scores, key=lambda w: (np.mean(list(scores[w].values())), -w))
        if log is not None:
            def fmt(w: float) -> str:
                return " ".join(f"{k} {v * 100:.2f}" for k, v in scores[w].items())
            log(f"candidate_weight {best:g}, chosen on validation: valid {fmt(best)}; {type(self).__name__} alone "
                f"{fmt(0.0)}; the candidate model alone {fmt(1.0)}")
        return best

    # ---- persistence ------------------------------------------------------------
    def _manifest_extra(self) -> Dict:
        return {"candidates": self.over_candidates, "candidate_weight": self.candidate_weight,
                "candidate_input": self.stacked}

    def _save_extra(self, directory: Path) -> None:
        if self.over_candidates:
            self.candidate_model.save(directory / CANDIDATES_DIR)

    def _load_candidates(self, info: Dict, directory: Path) -> None:
        """The candidate model, blend weight and stacking a saved model was trained with (its manifest)."""
        where = directory / "xmc.json"
        over = info.get("candidates", False)
        if not isinstance(over, bool):
            raise ModelFormatError(f"{where}: 'candidates' must be true or false, found {over!r}"[:300])
        weight = info.get("candidate_weight", 0.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0:
            raise ModelFormatError(f"{where}: 'candidate_weight' must be a number in [0, 1], found {weight!r}"[:300])
        # Models saved before stacking was recorded here: their params said it.
        stacked = info.get("candidate_input", bool(self.params.candidate_input))
        if not isinstance(stacked, bool):
            raise ModelFormatError(f"{where}: 'candidate_input' must be true or false, found {stacked!r}"[:300])
        self.candidate_weight, self.stacked = float(weight), over and stacked
        self._given_candidates = False
        self.candidate_model = None
        if over and self.device.type != "meta":
            self.candidate_model = load_model(directory / CANDIDATES_DIR)
            if self.candidate_model is self or not hasattr(self.candidate_model, "predict_topk"):
                raise ModelFormatError(f"{directory / CANDIDATES_DIR}: not a model that proposes labels")


def proposed_slots(proposed: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(positions with empty slots at 0, which slots hold a proposal) of proposed positions (-1: none)."""
    ok = proposed >= 0
    return np.where(ok, proposed, 0), ok
