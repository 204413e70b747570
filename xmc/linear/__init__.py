"""Linear probabilistic label trees: per-node liblinear-style classifiers trained in C++."""
from xmc.linear.params import PLTParams
from xmc.linear.plt import PLTLinear

__all__ = ["PLTLinear", "PLTParams"]
