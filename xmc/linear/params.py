"""Parameters of the linear PLT trainer, saved as JSON beside every model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from xmc.data.tfidf import TfidfParams
from xmc.linear.neighbours import NeighbourParams
from xmc.linear.rerank import RerankParams
from xmc.params import MAX_THREADS, Params, check, check_choice, check_int, param
from xmc.tree.params import TreeParams

LOSSES = ("squared_hinge", "logistic")
ACTIVATIONS = ("l3-hinge", "sigmoid")
# The activation that turns each loss's margin into a node probability (PECOS pairs l3-hinge with squared hinge).
DEFAULT_ACTIVATION = {"squared_hinge": "l3-hinge", "logistic": "sigmoid"}


@dataclass
class PLTParams(Params):
    """How every node classifier of a linear PLT is trained.

    Each node is an L2-regularised binary classifier solved by dual coordinate
    descent (liblinear), trained on the documents positive at its parent.
    Weights with ``|w| < weight_threshold`` are dropped. The bias is an extra
    feature of value ``bias``; the saved bias row holds ``w_bias * bias`` so a
    scorer always uses an implicit 1.0.

    ``C=0.5`` (PECOS and omikuji use 1.0): the best single value on the validation splits of
    six corpora (benchmarks/compare_linear.py --split valid); the best C differs per corpus, and
    ``tune.C`` chooses it on held-out training documents. ``normalize_rows`` scales every
    document's feature row to unit L2 norm at fit and predict time, the input these solvers
    expect (on bibtex's binary features it is worth about 10 points of P@1).
    """

    FLAGS = {"seed": ("seed", "tree.seed"), "threads": ("threads", "tree.threads")}

    loss: str = param("squared_hinge", "loss of the node classifiers: squared_hinge or logistic")
    C: float = param(0.5, "inverse regularisation strength")
    eps: float = param(0.1, "stopping tolerance of the dual coordinate descent")
    max_iter: int = param(100, "most passes of the dual coordinate descent per node")
    weight_threshold: float = param(0.1, "weights smaller than this in magnitude are pruned")
    bias: float = param(1.0, "value of the bias feature (0: no bias)")
    activation: Optional[str] = param(None, "l3-hinge or sigmoid; null: the loss's own (l3-hinge for squared "
                                            "hinge, sigmoid for logistic)")
    threads: int = param(0, "threads (0: all cores)")
    seed: int = param(0, "seed of the solver's coordinate order")
    normalize_rows: bool = param(True, "scale every document's feature row to unit L2 norm")
    tree: TreeParams = param(TreeParams(), "the label tree")

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


# Most trees of one linear model: each is a full PLT, so a forged count must not reach a loop.
MAX_TREES = 64
# Fields of LinearParams that are not the PLT's (the PLT saves its own params without them).
LINEAR_ONLY = ("tfidf", "neighbours", "rerank", "tune", "trees")
TUNE_METRICS = ("P@1", "P@3", "P@5", "nDCG@3", "nDCG@5")


@dataclass
class TuneParams(Params):
    """Choosing C on a held-out part of the training documents (:mod:`xmc.linear.tuning`)."""

    C: List[float] = param([], "values of C to try (empty: keep the C given); e.g. [0.5, 1, 2, 4]")
    holdout: float = param(0.1, "share of the training documents held out to compare them")
    metric: str = param("nDCG@5", "held-out ranking metric that picks C: " + ", ".join(TUNE_METRICS))

    def validate(self) -> None:
        check(all(c > 0 for c in self.C), "C", "positive values", self.C)
        check(0.0 < self.holdout < 1.0, "holdout", "a share in (0, 1)", self.holdout)
        check_choice(self.metric, "metric", TUNE_METRICS)


@dataclass
class LinearParams(PLTParams):
    """The linear model as ``xmc train --model linear`` trains it: the PLT, and for raw text the TF-IDF
    featurizer in front of it (``--set tfidf.ngram_range=[1,2]``)."""

    tfidf: TfidfParams = param(TfidfParams(), "how raw text becomes TF-IDF features (text input only)")
    neighbours: NeighbourParams = param(NeighbourParams(), "re-ranking with the labels of the nearest training "
                                                           "documents (neighbours.k=10 turns it on)")
    rerank: RerankParams = param(RerankParams(), "re-ranking of the trees' proposals by per-label classifiers "
                                                  "trained on their hard negatives (rerank.candidates=100 turns it on)")
    trees: int = param(1, "PLTs on trees of seeds tree.seed, tree.seed + 1, ...; a label's score is their mean")
    tune: TuneParams = param(TuneParams(), "choose C on held-out training documents (tune.C=[0.5,1,2,4] turns "
                                           "it on)")

    def validate(self) -> None:
        super().validate()
        check_int(self.trees, "trees", low=1, high=MAX_TREES)

    def plt(self) -> PLTParams:
        """The PLT's own params (what ``PLTLinear`` trains with and saves)."""
        return PLTParams.from_dict({k: v for k, v in self.to_dict().items() if k not in LINEAR_ONLY})
