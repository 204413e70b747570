"""Parameters of the label-tree builder, saved as JSON beside every model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from xmc.params import Params, param


@dataclass
class TreeParams(Params):
    """How labels are clustered into a tree.

    Labels are embedded (PIFA by default), split recursively by balanced
    spherical 2-means until a cluster holds at most ``max_leaf_size`` labels,
    and the binary levels are then merged so each node has
    ``branching_factor`` children (a power of two: every log2(B)-th level is
    kept). ``height`` switches to AttentionXML's shallow-and-wide compression:
    the kept levels are chosen so the tree has exactly ``height`` layers.
    Each split runs at most ``max_iter`` iterations and stops early once at most
    ``tol`` times its labels change halves in one iteration (0: once none does).
    A cluster of more than ``split_sample`` labels runs its 2-means on that many
    of them drawn at random, then three passes over all of its labels from the
    sample's centroids; 0 runs every split on all of its labels. Big clusters
    need the most iterations, so sampling bounds the cost of the top levels of
    trees over hundreds of thousands of labels; trees of at most ``split_sample``
    labels are unchanged.
    """

    branching_factor: int = param(16, "children per node (a power of two)")
    max_leaf_size: int = param(100, "most labels in a leaf")
    max_iter: int = param(20, "most 2-means iterations per split")
    tol: float = param(0.0, "a split stops once at most this share of its labels change halves in an iteration")
    split_sample: int = param(16384, "a larger cluster runs its 2-means on this many of its labels (0: all)")
    height: Optional[int] = param(None, "AttentionXML's shallow-and-wide tree: exactly this many layers (null: off)")
    embedding: str = param("pifa", "label embedding clustered: pifa (the mean feature row of its documents)")
    seed: int = param(0, "seed of the clustering")
    threads: int = param(0, "threads (0: all cores)")
