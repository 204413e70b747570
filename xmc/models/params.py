"""What the deep models' params share: the text pipeline, the word vectors, the training loop, dropout.

Each model's own params class (in its own file) adds its fields to one of these common parts:

- :class:`DeepParams`: text, word vectors, training loop, dropout (every deep model);
- :class:`BiLSTMParams`: and a BiLSTM token encoder (all but LACO);
- :class:`TreeModelParams`: and a label tree searched level by level, with the attention scorer's layers
  (AttentionXML, LightAttention).

Defaults follow AttentionXML (You et al., 2019) scaled to a 2-core CPU: the paper uses 300-d GloVe vectors,
a 256-unit BiLSTM per direction, FC layers of 256 units, dropout 0.2 on embeddings and 0.5 elsewhere, Adam
at 1e-3, batch 40. Here the BiLSTM has 128 units per direction, documents are cut at 500 tokens, and the
word vectors are skip-gram trained on the training texts.

Model directories of format version 1 saved one flat params object with every model's fields;
:meth:`DeepParams.from_saved` reads those too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping

from xmc.params import Params, check, check_int, param
from xmc.text.embeddings import EmbeddingParams
from xmc.text.tokens import TextParams
from xmc.training.params import TrainingParams
from xmc.tree.params import TreeParams


@dataclass
class DeepParams(Params):
    """The part every deep model has."""

    # A flag sets the fields a model has: LDGN has no tree, so --seed leaves no tree seed to set there.
    FLAGS = {"epochs": ("training.epochs",), "device": ("training.device",),
             "seed": ("training.seed", "embedding.seed", "tree.seed"),
             "threads": ("training.threads", "embedding.threads", "tree.threads")}

    text: TextParams = param(TextParams(), "how raw text becomes word ids")
    embedding: EmbeddingParams = param(EmbeddingParams(source="skipgram", dim=300), "the initial word vectors")
    training: TrainingParams = param(TrainingParams(), "the epoch loop")
    embedding_dropout: float = param(0.2, "dropout on the word vectors")
    dropout: float = param(0.5, "dropout after the encoders")
    train_embeddings: bool = param(True, "fine-tune the word vectors")

    def validate(self) -> None:
        super().validate()  # the fields mixed in beside these (xmc.models.candidates.CandidateParams)
        for name in ("embedding_dropout", "dropout"):
            check(0.0 <= getattr(self, name) < 1.0, name, "a rate in [0, 1)", getattr(self, name))

    @classmethod
    def from_saved(cls, data: Mapping[str, Any]) -> "DeepParams":
        """Params of a saved model: this layout, or format version 1's flat object of every model's fields
        (its loop fields move under ``training``; the fields of other models are dropped)."""
        if isinstance(data, Mapping) and "training" not in data:
            data = _from_flat(data, cls)
        return cls.from_dict(data, strict=False)

    @classmethod
    def from_flat(cls, data: Mapping[str, Any]) -> "DeepParams":
        """Params from one flat object, the loop's fields beside the model's (``{"epochs": 5, "hidden": 64}``);
        a field neither has is an error."""
        known = set(cls().to_dict()) | set(_FLAT_TRAINING_FIELDS) | set(_RENAMED)
        unknown = [k for k in data if k not in known]
        if unknown:
            raise ValueError(f"{unknown[0]}: no such field in {cls.__name__} or its training params")
        return cls.from_dict(_from_flat(data, cls))


@dataclass
class BiLSTMParams(DeepParams):
    """A deep model that reads the tokens with a BiLSTM."""

    hidden: int = param(128, "BiLSTM units per direction (AttentionXML: 256)")
    lstm_layers: int = param(1, "stacked BiLSTM layers")

    def validate(self) -> None:
        super().validate()
        check_int(self.hidden, "hidden")
        check_int(self.lstm_layers, "lstm_layers")


@dataclass
class TreeModelParams(BiLSTMParams):
    """A deep model over a label tree: each level scores the children of the previous level's best nodes."""

    tree: TreeParams = param(TreeParams(branching_factor=16, max_leaf_size=8), "the label tree")
    top_k: int = param(16, "nodes kept per level: their children are the next level's candidates (train, predict)")
    fc_sizes: List[int] = param([256], "fully connected layers after the label-wise attention")

    def validate(self) -> None:
        super().validate()
        check_int(self.top_k, "top_k")
        check(len(self.fc_sizes) > 0 and all(isinstance(s, int) and s >= 1 for s in self.fc_sizes), "fc_sizes",
              "a list of positive integers", self.fc_sizes)


# Format version 1's flat DeepParams: the fields that now sit in the training loop's params.
_FLAT_TRAINING_FIELDS = ("lr", "weight_decay", "batch_size", "epochs", "patience", "valid_fraction", "grad_clip",
                         "swa_start", "seed", "threads", "device", "eval_batch_size", "checkpoint_every")


# Version 1's names of fields that have another name in their model's params now.
_RENAMED = {"ldgn_output": "output"}


def _from_flat(data: Mapping[str, Any], cls: type) -> Dict[str, Any]:
    names = set(cls().to_dict())
    data = {_RENAMED.get(k, k): v for k, v in data.items()}
    out = {k: v for k, v in data.items() if k in names and k not in _FLAT_TRAINING_FIELDS}
    out["training"] = {k: data[k] for k in _FLAT_TRAINING_FIELDS if k in data}
    if "tree" in names and isinstance(out.get("tree"), dict):
        # Version 1 built the tree with the loop's seed and threads whatever its own fields said.
        out["tree"] = {**out["tree"], "seed": data.get("seed", 0), "threads": data.get("threads", 0)}
    return out
