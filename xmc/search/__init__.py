"""xmc.search: beam search over a PLT's label tree (native), its numpy reference, the mean of several top-k lists
(:mod:`xmc.search.merge`) and the per-level beam recall
of any tree search (:mod:`xmc.search.recall`)."""
from xmc.search.reference import exhaustive_scores
from xmc.search.searcher import ACTIVATIONS, BeamSearcher

__all__ = ["ACTIVATIONS", "BeamSearcher", "exhaustive_scores"]
