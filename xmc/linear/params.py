"""Parameters of the linear PLT trainer, saved as JSON beside every model."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from xmc.tree.params import TreeParams
from xmc.utils.modeldir import dataclass_from_dict

LOSSES = ("squared_hinge", "logistic")
ACTIVATIONS = ("l3-hinge", "sigmoid")
# The activation that turns each loss's margin into a node probability (PECOS pairs l3-hinge with squared hinge).
DEFAULT_ACTIVATION = {"squared_hinge": "l3-hinge", "logistic": "sigmoid"}
MAX_THREADS = 1024


@dataclass
class PLTParams:
    """How every node classifier of a linear PLT is trained.

    Each node is an L2-regularised binary classifier solved by dual coordinate
    descent (liblinear), trained on the documents positive at its parent.
    Weights with ``|w| < weight_threshold`` are dropped. The bias is an extra
    feature of value ``bias``; the saved bias row holds ``w_bias * bias`` so a
    scorer always uses an implicit 1.0.

    ``C=0.5`` (PECOS and omikuji use 1.0): in a sweep over C in {0.5, 1, 2} it
    gave the best P@1 on bibtex, delicious and the generated 10k-label corpus
    and trains faster. ``normalize_rows`` scales every document's feature row
    to unit L2 norm at fit and predict time, the input these solvers expect
    (on bibtex's binary features it is worth about 10 points of P@1).
    """

    loss: str = "squared_hinge"
    C: float = 0.5
    eps: float = 0.1
    max_iter: int = 100
    weight_threshold: float = 0.1
    bias: float = 1.0
    activation: Optional[str] = None  # None: derived from the loss
    threads: int = 0  # 0: all cores
    seed: int = 0
    normalize_rows: bool = True
    tree: TreeParams = field(default_factory=TreeParams)

    def __post_init__(self) -> None:
        if isinstance(self.tree, Mapping):
            self.tree = dataclass_from_dict(TreeParams, self.tree)
        self.validate()

    def validate(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS} or None, got {self.activation!r}")
        if not self.C > 0:
            raise ValueError(f"C must be positive, got {self.C}")
        if not self.eps > 0:
            raise ValueError(f"eps must be positive, got {self.eps}")
        if int(self.max_iter) < 1:
            raise ValueError(f"max_iter must be at least 1, got {self.max_iter}")
        if not self.weight_threshold >= 0:
            raise ValueError(f"weight_threshold must be >= 0, got {self.weight_threshold}")
        if not self.bias >= 0:
            raise ValueError(f"bias must be >= 0, got {self.bias}")
        # A loaded model's thread count reaches OpenMP at prediction: a forged 2**31 must stop here.
        if not 0 <= int(self.threads) <= MAX_THREADS:
            raise ValueError(f"threads must be in [0, {MAX_THREADS}] (0: all cores), got {self.threads}")
        if not 0 <= int(self.seed) < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {self.seed}")

    @property
    def resolved_activation(self) -> str:
        return self.activation or DEFAULT_ACTIVATION[self.loss]

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PLTParams":
        return dataclass_from_dict(cls, data)
