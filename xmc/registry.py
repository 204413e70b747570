"""The one list of model kinds: each kind's model class and params class, and :func:`load_model`.

The CLI's ``--model`` choices, ``xmc params``, :func:`load_model`, the benchmarks and the loader fuzzer read
:data:`MODELS`. Adding a model is one file (its params dataclass and its model class) and one
:func:`register` line below. Classes are named by import path and imported on first use, so the linear
model's kinds never import torch.

A model class has ``KIND``, ``PARAMS``, a constructor taking its params, ``fit(corpus, valid=None, tree=None,
progress=True, log=print, checkpoint_dir=None, resume=False)``, ``labels(corpus, unseen="drop")`` (``"keep"``:
labels unseen in training as ids past the model's, so metrics count them as misses), ``features``,
``predict_topk``, ``save`` and a ``load`` classmethod. Optional: ``stage_seconds`` after ``fit`` (a
:class:`xmc.utils.resources.StageTimes`, for the time per stage ``xmc train`` prints) and a
``from_checkpoint(checkpoint_dir)`` classmethod (the model of an interrupted training's best weights so far).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Union

from xmc.utils.modeldir import MANIFEST, ModelFormatError, load_json


INSTALL_DEEP = ("pip install 'xmc[deep]' (for the CPU-only build of torch, first: pip install torch "
                "--index-url https://download.pytorch.org/whl/cpu)")


class MissingDependency(ImportError):
    """A model kind needs a package that is not installed (torch for the deep models)."""


@dataclass(frozen=True)
class ModelEntry:
    """One model kind: where its classes live and what it needs."""

    kind: str  # the name users give to --model and xmc params
    model: str  # "module:Class"
    params: str  # "module:Class"
    summary: str  # one line for --help
    saved_kind: str = ""  # the manifest kind of its model directories, when it is not ``kind``
    needs_torch: bool = True

    def model_class(self) -> type:
        return self._import(self.model)

    def params_class(self) -> type:
        return self._import(self.params)

    def _import(self, target: str) -> type:
        module, _, name = target.partition(":")
        try:
            return getattr(importlib.import_module(module), name)
        except ModuleNotFoundError as e:
            if e.name and e.name.split(".")[0] == "torch":
                raise MissingDependency(f"--model {self.kind} needs PyTorch, which is not installed: "
                                        f"{INSTALL_DEEP}") from None
            raise


MODELS: Dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    """Add a model kind (tests register toy models here too)."""
    if entry.kind in MODELS:
        raise ValueError(f"model kind {entry.kind!r} is registered already")
    MODELS[entry.kind] = entry
    return entry


def unregister(kind: str) -> None:
    MODELS.pop(kind, None)


def get(kind: str) -> ModelEntry:
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(MODELS)}")
    return MODELS[kind]


def by_saved_kind(saved_kind: str) -> Optional[ModelEntry]:
    """The entry whose model directories carry ``saved_kind`` in their manifest."""
    for entry in MODELS.values():
        if (entry.saved_kind or entry.kind) == saved_kind:
            return entry
    return None


def load_model(directory: Union[str, Path]):
    """Load any model directory xmc wrote: the class is chosen by the manifest's kind."""
    directory = Path(directory)
    manifest = directory / MANIFEST
    if not manifest.exists():
        hint = ""
        if (directory / "checkpoint").is_dir():
            hint = ("; it holds a training checkpoint: run the same xmc train command with --resume to finish "
                    "the model")
        raise ModelFormatError(f"{directory}: not an xmc model directory ({MANIFEST} is missing){hint}")
    info = load_json(manifest)
    saved_kind = info.get("kind") if isinstance(info, dict) else None
    entry = by_saved_kind(saved_kind) if isinstance(saved_kind, str) else None
    if entry is None:
        known = [e.saved_kind or e.kind for e in MODELS.values()]
        raise ModelFormatError(f"{manifest}: unknown model kind {saved_kind!r}; expected one of {known}")
    return entry.model_class().load(directory)


register(ModelEntry("linear", "xmc.linear.pipeline:Pipeline", "xmc.linear.params:LinearParams",
                    "probabilistic label tree of linear classifiers on sparse or TF-IDF features",
                    saved_kind="pipeline", needs_torch=False))
register(ModelEntry("attentionxml", "xmc.models.attentionxml:AttentionXML",
                    "xmc.models.attentionxml:AttentionXMLParams",
                    "BiLSTM + label-wise attention on raw text, over the label tree (You et al., 2019)"))
register(ModelEntry("lightattention", "xmc.models.light_attention:LightAttention",
                    "xmc.models.light_attention:LightAttentionParams",
                    "label-wise attention over label clusters with a generator of hard negatives"))
register(ModelEntry("ldgn", "xmc.models.ldgn:LDGN", "xmc.models.ldgn:LDGNParams",
                    "label attention + static and dynamic label graphs (LDGN), over all labels or candidates"))
register(ModelEntry("seq2seq-mdc", "xmc.models.seq2seq_mdc:Seq2SeqMDC", "xmc.models.seq2seq_mdc:Seq2SeqMDCParams",
                    "labels decoded as a sequence: dilated convolutions, hybrid attention"))
register(ModelEntry("lwpt", "xmc.models.lwpt:LWPT", "xmc.models.lwpt:LWPTParams",
                    "label-wise pre-training of two label-wise encoders, then fine-tuning (LW-PT)"))
register(ModelEntry("laco", "xmc.models.laco:LACO", "xmc.models.laco:LACOParams",
                    "document-label joint embedding in a transformer, cross attention, PLCP/CLCP tasks"))
register(ModelEntry("ensemble", "xmc.models.ensemble:Ensemble", "xmc.models.ensemble:EnsembleParams",
                    "several deep models on trees of different seeds, scores averaged (AttentionXML used 3)"))
