"""xmc.search: beam search over a PLT's label tree (native), and its numpy reference."""
from xmc.search.reference import exhaustive_scores
from xmc.search.searcher import ACTIVATIONS, BeamSearcher

__all__ = ["ACTIVATIONS", "BeamSearcher", "exhaustive_scores"]
