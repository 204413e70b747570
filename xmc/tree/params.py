"""Parameters of the label-tree builder, saved as JSON beside every model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class TreeParams:
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

    branching_factor: int = 16
    max_leaf_size: int = 100
    max_iter: int = 20
    tol: float = 0.0
    split_sample: int = 16384
    height: Optional[int] = None
    embedding: str = "pifa"
    seed: int = 0
    threads: int = 0
